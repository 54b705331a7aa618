"""Writing a converted data set: single-channel class-id PNGs, the images, the file lists and the class
names, all at once or not at all.

    OUT/images/<name>.<ext>     the images, copied byte for byte (not hard-linked: the output never
                                shares a file with the input, so editing one cannot change the other)
    OUT/labels/<name>.png       class ids 0..k-1, ignored pixels at the ignore index (8-bit grey PNG)
    OUT/train.txt, val.txt      "images/<name>.<ext> labels/<name>.png" per line, read by the Dataset type
    OUT/classes.txt             one class name per line, in id order (when the names are known)

``<name>`` is the image's path under its folder, without the extension. The folder is built in a hidden
``.OUT.partial-<pid>`` beside ``OUT`` and renamed into place at the end
(:func:`paddleseg.utils.atomic.atomic_folder`): a failure or an interruption leaves no half-written
``OUT``. ``OUT`` must be new or an empty folder, and outside the input folders.

The inputs are only read. Identical images (by pixels) go to the same split, so a duplicate cannot be
both trained on and scored.
"""
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from paddleseg.datasets.doctor.encodings import read_raw_label
from paddleseg.datasets.doctor.label_maps import LabelMap
from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError, UserError
from paddleseg.utils.atomic import atomic_folder
from paddleseg.utils.output_targets import check_parent_writable

PathLike = Union[str, Path]
IMAGES, LABELS, TRAIN_LIST, VAL_LIST, CLASSES = "images", "labels", "train.txt", "val.txt", "classes.txt"


# ------------------------------------------------------------------------------------------------
# where the labels come from
# ------------------------------------------------------------------------------------------------
@dataclass
class FileLabel:
    """A label file turned into class ids by ``label_map``."""

    path: str
    label_map: LabelMap

    def read(self) -> Tuple[np.ndarray, int]:
        """(uint8 (H, W) class ids, pixels changed by snapping)."""
        return self.label_map.apply(read_raw_label(self.path), self.path)


@dataclass
class Sample:
    """One output pair: the image to copy (``image``, or ``image_bytes`` to write as ``name + image_ext``),
    where its ids come from (an object with ``read() -> (ids, changed pixels)``), its name, and optionally
    a split ('train' / 'val') and a group (samples of one group go to the same split)."""

    name: str
    image: Optional[str]
    label: object
    image_bytes: Optional[bytes] = None
    image_ext: str = ""
    split: Optional[str] = None
    group: Optional[str] = None

    @property
    def image_name(self) -> str:
        return f"{self.name}{self.image_ext or Path(self.image).suffix}"


@dataclass
class Conversion:
    """What was written: counts per split, the list separator, the class pixels of the written labels
    (ignored pixels not counted), the pixels per class of the images holding it (for median frequency
    weights), the label sizes ((height, width)) and the pixels changed by snapping."""

    out: Path
    num_classes: int
    ignore_index: int
    class_names: Optional[List[str]]
    train: int
    val: int
    separator: str
    class_pixels: np.ndarray
    present_pixels: np.ndarray
    sizes: List[Tuple[int, int]] = field(default_factory=list)
    snapped_pixels: int = 0
    palette: Optional[List[Tuple[int, int, int]]] = None  # the masks' colour of each class, when known

    @property
    def train_list(self) -> Path:
        return self.out / TRAIN_LIST

    @property
    def val_list(self) -> Optional[Path]:
        return self.out / VAL_LIST if self.val else None


# ------------------------------------------------------------------------------------------------
# checks before anything is read or written
# ------------------------------------------------------------------------------------------------
def check_output_folder(out: PathLike, inputs: Sequence[PathLike], flag: str = "--convert") -> None:
    """UserError unless ``out`` can be created as a converted set: new or an empty folder, not an input
    folder, inside one or holding one, and in a writable place. Reads only."""
    given = Path(out)
    target = Path(os.path.realpath(given))
    for folder in inputs:
        src = Path(os.path.realpath(folder))
        if target == src or src in target.parents:
            raise UserError(f"{flag} {given}: is inside the input folder {folder}; the inputs are never written to, "
                            f"give a folder outside it")
        if target in src.parents:
            raise UserError(f"{flag} {given}: holds the input folder {folder}; give a new, empty folder elsewhere")
    if target.exists() and not target.is_dir():
        raise UserError(f"{flag} {given}: is a file; give a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise UserError(f"{flag} {given}: is not empty; give a new or empty folder (nothing in it is replaced)")
    check_parent_writable(target, f"{flag} {given}")


def choose_separator(samples: Sequence[Sample]) -> str:
    """' ' unless a file name holds a space (then a tab); DatasetError when names hold both or a line break."""
    names = [n for s in samples for n in (s.image_name, s.name)]
    for n in names:
        if "\n" in n or "\r" in n:
            raise DatasetError(f"{n!r}: a file name with a line break cannot be listed in a file list")
    if not any(" " in n for n in names):
        return " "
    both = next((n for n in names if " " in n and "\t" in n), None)
    if both is not None or any("\t" in n for n in names):
        raise DatasetError(f"{both or next(n for n in names if chr(9) in n)!r}: file names hold both spaces and "
                           f"tabs; no list separator is left")
    return "\t"


def split_samples(samples: Sequence[Sample], val_fraction: float, seed: int) -> List[str]:
    """'train' or 'val' per sample: the given split, else groups (a sample without one is its own)
    shuffled with ``seed`` and cut at ``val_fraction`` (at least one of each when there are two groups or
    more and the fraction is above 0)."""
    if all(s.split for s in samples):
        return [s.split for s in samples]
    groups: Dict[str, List[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group or f"#{i}", []).append(i)
    keys = list(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    wanted = int(round(val_fraction * len(samples)))
    if val_fraction > 0 and len(keys) >= 2:
        wanted = max(wanted, 1)
    splits = ["train"] * len(samples)
    taken = 0
    for rank, g in enumerate(order):
        if taken >= wanted or rank == len(order) - 1:  # the last group always trains
            break
        for i in groups[keys[g]]:
            splits[i] = "val"
            taken += 1
    return splits


def unique_names(samples: List[Sample]) -> None:
    """Give samples that would share an output name (a.jpg and a.png) names with their extension."""
    seen = {}
    for s in samples:
        if s.name in seen:
            s.name = f"{s.name}_{(s.image_ext or Path(s.image).suffix).lstrip('.')}"
        while s.name in seen:
            s.name += "_"
        seen[s.name] = True


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def _write_sample(job: Tuple[str, Sample, int, int]) -> Tuple[np.ndarray, Tuple[int, int], int]:
    """Write one pair into the work folder; returns (its class pixels, its size, pixels snapped)."""
    folder, sample, num_classes, ignore_index = job
    ids, changed = sample.label.read()
    bad = (ids >= num_classes) & (ids != ignore_index)
    if bad.any():
        raise DatasetError(f"{sample.name}: class ids {np.unique(ids[bad])[:5].tolist()} at or above num_classes "
                           f"{num_classes}")
    image_out = Path(folder) / IMAGES / sample.image_name
    label_out = Path(folder) / LABELS / f"{sample.name}.png"
    image_out.parent.mkdir(parents=True, exist_ok=True)
    label_out.parent.mkdir(parents=True, exist_ok=True)
    if sample.image_bytes is not None:
        image_out.write_bytes(sample.image_bytes)
    else:
        shutil.copyfile(sample.image, image_out)
    Image.fromarray(ids, mode="L").save(label_out)
    counted = ids[(ids != ignore_index) & (ids < num_classes)]
    return np.bincount(counted.ravel(), minlength=num_classes)[:num_classes], ids.shape, changed


def write_converted_set(out: PathLike, samples: List[Sample], num_classes: int, ignore_index: int = 255,
                        class_names: Optional[Sequence[str]] = None, val_fraction: float = 0.2, seed: int = 0,
                        inputs: Sequence[PathLike] = (), extra_files: Optional[Dict[str, str]] = None,
                        workers: Optional[int] = None, progress: bool = True,
                        palette: Optional[Sequence[Sequence[int]]] = None) -> Conversion:
    """Write ``samples`` as a converted set in ``out`` (module docstring); ``extra_files`` (name -> text)
    are written beside the lists; ``palette``: each class's colour in the source masks, kept for the
    config (pictures then use the user's colours). UserError (nothing written) for an ``out`` that may not be used, a
    sample that cannot be converted, or a disk that fails."""
    if not samples:
        raise DatasetError("no pair can be converted (see the findings)")
    check_output_folder(out, inputs)
    unique_names(samples)
    separator = choose_separator(samples)
    splits = split_samples(samples, val_fraction, seed)
    names = list(class_names) if class_names else None
    try:
        with atomic_folder(out) as tmp:
            jobs = [(str(tmp), s, num_classes, ignore_index) for s in samples]
            results = parallel_map(_write_sample, jobs, workers, "converting", progress)
            for split, path in (("train", TRAIN_LIST), ("val", VAL_LIST)):
                lines = [f"{IMAGES}/{s.image_name}{separator}{LABELS}/{s.name}.png"
                         for s, part in zip(samples, splits) if part == split]
                if lines:
                    (tmp / path).write_text("\n".join(lines) + "\n", encoding="utf-8")
            if names:
                (tmp / CLASSES).write_text("\n".join(names) + "\n", encoding="utf-8")
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
            check_output_folder(out, inputs)  # nothing appeared in OUT meanwhile that the rename would replace
    except OSError as e:
        raise UserError(f"--convert {out}: the converted set could not be written ({e.strerror or e}); nothing "
                        f"was written") from e
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    present = np.zeros(num_classes, dtype=np.int64)
    for counts, size, _ in results:
        class_pixels += counts
        present[counts > 0] += size[0] * size[1]
    return Conversion(Path(out), num_classes, ignore_index, names, splits.count("train"), splits.count("val"),
                      separator, class_pixels, present, [size for _, size, _ in results],
                      sum(changed for _, _, changed in results),
                      [tuple(int(v) for v in c) for c in palette] if palette else None)
