"""Official Cityscapes annotations → ``*_gtFine_labelTrainIds.png``, with cityscapesscripts' label table.

From ``*_gtFine_polygons.json`` (drawn by cityscapesscripts' own ``createLabelImage``) or, where there is
no JSON, from ``*_gtFine_labelIds.png`` through the label id → train id table
(:func:`paddleseg.utils.cityscapes_labels.train_id_table`). Classes without a train id (trainId 255 or
-1) become 255.
"""
from functools import partial
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from paddleseg.datasets.cityscapes import LABEL_ID_SUFFIX, LABEL_SUFFIX, POLYGON_SUFFIX
from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError
from paddleseg.utils.cityscapes_labels import train_id_table


def train_ids_from_polygons(json_path: Union[str, Path]) -> np.ndarray:
    annotation = Annotation()
    try:
        annotation.fromJsonFile(str(json_path))
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{json_path}: not a readable Cityscapes polygon file ({e})") from e
    try:
        # drawn as label ids, then mapped: drawing trainIds directly would write the license plate's
        # trainId -1 as 0 (road) in an 8-bit image; its id -1 is drawn as 0 (unlabeled), which maps to 255
        image = createLabelImage(annotation, "ids")
    except KeyError as e:
        raise DatasetError(f"{json_path}: unknown Cityscapes label {e}") from e
    return train_id_table()[np.asarray(image, dtype=np.uint8)]


def train_ids_from_label_ids(png_path: Union[str, Path]) -> np.ndarray:
    try:
        with Image.open(png_path) as im:
            ids = np.asarray(im)
    except OSError as e:
        raise DatasetError(f"{png_path}: unreadable label-id image ({e})") from e
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise DatasetError(f"{png_path}: a label-id image must be single-channel 8-bit, got {ids.dtype} "
                           f"{ids.shape}")
    return train_id_table()[ids]


def sources(gtfine: Path) -> List[Path]:
    """One source per annotated image: its polygon JSON, else its label-id PNG."""
    found = {}
    for path in sorted(gtfine.glob(f"*/*/*{LABEL_ID_SUFFIX}")):
        found[str(path)[: -len(LABEL_ID_SUFFIX)]] = path
    for path in sorted(gtfine.glob(f"*/*/*{POLYGON_SUFFIX}")):
        found[str(path)[: -len(POLYGON_SUFFIX)]] = path
    return [found[k] for k in sorted(found)]


def target_of(source: Path) -> Path:
    for suffix in (POLYGON_SUFFIX, LABEL_ID_SUFFIX):
        if source.name.endswith(suffix):
            return source.with_name(source.name[: -len(suffix)] + LABEL_SUFFIX)
    raise DatasetError(f"{source}: not a Cityscapes annotation ({POLYGON_SUFFIX} or {LABEL_ID_SUFFIX})")


def convert_one(source: Path, force: bool = False) -> bool:
    """Write the train-id PNG of one annotation; False if it was up to date and ``force`` is off."""
    target = target_of(source)
    if not force and target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return False
    if source.name.endswith(POLYGON_SUFFIX):
        train_ids = train_ids_from_polygons(source)
    else:
        train_ids = train_ids_from_label_ids(source)
    tmp = target.with_name(target.name + ".tmp.png")
    Image.fromarray(train_ids, mode="L").save(tmp)
    tmp.replace(target)
    return True


def convert_cityscapes(dataset_root: Union[str, Path], force: bool = False, workers: Optional[int] = None,
                       progress: bool = True) -> Tuple[int, int]:
    """Write every ``*_gtFine_labelTrainIds.png`` under ``dataset_root/gtFine``; returns (written, skipped)."""
    gtfine = Path(dataset_root) / "gtFine"
    if not gtfine.is_dir():
        raise DatasetError(f"{gtfine}: folder not found (expected the official gtFine/<split>/<city>/ layout)")
    found = sources(gtfine)
    if not found:
        raise DatasetError(f"{gtfine}: no *{POLYGON_SUFFIX} or *{LABEL_ID_SUFFIX} files in <split>/<city>/")
    done = parallel_map(partial(convert_one, force=force), found, workers, "converting", progress)
    return sum(done), len(done) - sum(done)
