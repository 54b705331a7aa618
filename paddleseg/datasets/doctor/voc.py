"""Pascal VOC's segmentation layout as image/label pairs with their official splits.

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png            palette PNGs: indices are the 21 class ids, 255 the border
    ROOT/ImageSets/Segmentation/train.txt      one <id> per line (val.txt likewise)

``ROOT`` may also be a ``VOCdevkit`` folder holding one ``VOC20xx`` folder. Without the ImageSets lists,
every mask is paired with its image and the split is drawn at random. Images without a mask are not a
finding (most VOC images have none): only the listed ids are checked.
"""
from pathlib import Path
from typing import Dict, Tuple, Union

from paddleseg.datasets.doctor.pairing import Pairing, check_folder
from paddleseg.errors import DatasetError
from paddleseg.utils.regular_file import read_text

PathLike = Union[str, Path]
SPLITS = ("train", "val")
MAX_LIST_BYTES = 16 << 20


def voc_root(root: PathLike) -> Path:
    """``root`` itself, or its single ``VOC*`` child holding ``JPEGImages``."""
    path = check_folder(root, "--voc")
    if (path / "JPEGImages").is_dir():
        return path
    children = [c for c in sorted(path.iterdir()) if c.is_dir() and (c / "JPEGImages").is_dir()]
    if len(children) == 1:
        return children[0]
    raise DatasetError(f"--voc {root}: no JPEGImages folder (expected the VOC layout: JPEGImages/, SegmentationClass/, "
                       f"ImageSets/Segmentation/train.txt)")


def voc_pairing(root: PathLike) -> Tuple[Pairing, Dict[str, str], Path]:
    """(pairs with missing files, image path -> 'train'/'val' (empty without ImageSets), the labels folder)."""
    base = voc_root(root)
    images, labels = base / "JPEGImages", base / "SegmentationClass"
    if not labels.is_dir():
        raise DatasetError(f"--voc {root}: no SegmentationClass folder under {base}")
    lists = base / "ImageSets" / "Segmentation"
    pairing, splits = Pairing(), {}
    if any((lists / f"{s}.txt").is_file() for s in SPLITS):
        for split in SPLITS:
            path = lists / f"{split}.txt"
            if not path.is_file():
                continue
            try:
                ids = [line.strip().split()[0] for line in read_text(path, MAX_LIST_BYTES).splitlines() if line.strip()]
            except (OSError, UnicodeDecodeError) as e:
                raise DatasetError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from e
            for i in ids:
                image, label = images / f"{i}.jpg", labels / f"{i}.png"
                if not image.is_file():
                    pairing.missing_image.append(str(label)) if label.is_file() else None
                    if not label.is_file():
                        pairing.missing_label.append(str(image))
                    continue
                if not label.is_file():
                    pairing.missing_label.append(str(image))
                    continue
                pairing.pairs.append((str(image), str(label)))
                splits[str(image)] = split
    else:
        for label in sorted(labels.glob("*.png")):
            image = images / f"{label.stem}.jpg"
            if image.is_file():
                pairing.pairs.append((str(image), str(label)))
            else:
                pairing.missing_image.append(str(label))
    if not pairing.pairs:
        raise DatasetError(f"--voc {root}: no image has a mask in SegmentationClass")
    return pairing, splits, labels
