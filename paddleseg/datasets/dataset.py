"""The generic file-list dataset: a text file of ``image_path label_path`` lines under ``dataset_root``."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.cvlibs import arguments, manager
from paddleseg.datasets.checks import bad_values_message, check_contents
from paddleseg.errors import DatasetError
from paddleseg.transforms.compose import Compose
from paddleseg.transforms.io import read_image, read_label

MODES = ("train", "val", "test")


def as_compose(transforms, where: str) -> Compose:
    if isinstance(transforms, Compose):
        return transforms
    if not isinstance(transforms, (list, tuple)):
        raise ValueError(f"{where}.transforms must be a list of transforms, got {type(transforms).__name__}")
    return Compose(list(transforms))


def check_label_values(label: np.ndarray, num_classes: int, ignore_index: int, path: str) -> None:
    """Raise :class:`DatasetError` naming ``path`` and the values if a uint8 ``label`` holds a value
    outside 0..num_classes-1 and ``ignore_index`` (the loss would fail on it with an IndexError deep
    in Paddle). Cheap (docs/performance.md): the histogram is only taken when the maximum is
    out of range and is not the ignored value 255."""
    high = int(label.max()) if label.size else 0
    if high < num_classes:
        return
    if ignore_index == 255 and int((label + np.uint8(1)).max()) <= num_classes:  # 255 wraps round to 0
        return
    counts = cv2.calcHist([label], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    message = bad_values_message(counts, num_classes, ignore_index)
    if message:
        raise DatasetError(f"{path}: {message} (tools/check_dataset.py checks every file)")


def check_class_names(name: str, class_names: Optional[Sequence[str]], num_classes: int) -> Optional[Tuple[str, ...]]:
    """``class_names`` as a tuple of ``num_classes`` non-empty strings, or None."""
    if class_names is None:
        return None
    if (not isinstance(class_names, (list, tuple)) or len(class_names) != num_classes
            or not all(isinstance(n, str) and n.strip() for n in class_names)):
        raise ValueError(f"{name}.class_names must be a list of {num_classes} names (one per class), got "
                         f"{class_names!r}")
    return tuple(class_names)


def check_palette(name: str, palette: Optional[Sequence[Sequence[int]]],
                  num_classes: int) -> Optional[Tuple[Tuple[int, int, int], ...]]:
    """``palette`` as a tuple of ``num_classes`` (r, g, b) colours of 0..255, or None."""
    if palette is None:
        return None
    expected = f"a list of {num_classes} [r, g, b] colours (one per class, values 0..255)"
    if not isinstance(palette, (list, tuple)) or len(palette) != num_classes:
        raise ValueError(f"{name}.palette must be {expected}, got {palette!r:.200}")
    for colour in palette:
        if (not isinstance(colour, (list, tuple)) or len(colour) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in colour)):
            raise ValueError(f"{name}.palette must be {expected}, got the colour {colour!r:.80}")
    return tuple(tuple(int(v) for v in colour) for colour in palette)


class SegmentationDataset:
    """What every dataset shares: a ``file_list`` of (image, label) paths, loading one sample, its
    per-sample random generator, and the checks.

    ``ds[i]`` is ``{'img': float32 (3, H, W), 'label': int64 (H, W), 'img_path', 'label_path'}`` (no
    ``'label'`` in test mode). Sample ``i`` draws its augmentation from
    ``np.random.default_rng((ds.seed, ds.epoch, i))``: the same for any number of loader workers,
    different in every epoch. ``class_names``: one name per class for tables and reports, or None
    (classes are then shown by their index). ``palette``: one [r, g, b] colour per class for pictures
    (reports, predict.py, exports), or None (Cityscapes' colours, then generated ones).
    """

    def __init__(self, transforms, num_classes: int, mode: str, ignore_index: int = 255,
                 class_names: Optional[Sequence[str]] = None, palette: Optional[Sequence[Sequence[int]]] = None):
        name = type(self).__name__  # the argument checks raise ValueError; built from a config: ConfigError
        self.mode = arguments.one_of(name, "mode", mode, MODES)
        self.transforms = as_compose(transforms, name)
        self.num_classes = arguments.number(name, "num_classes", num_classes, 1, 255, integer=True)
        self.ignore_index = arguments.label_value(name, "ignore_index", ignore_index)
        self.class_names = check_class_names(name, class_names, self.num_classes)
        self.palette = check_palette(name, palette, self.num_classes)
        self.seed = 0
        self.epoch = 0
        self.file_list: List[Tuple[str, Optional[str]]] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.file_list)

    def rng(self, idx: int) -> np.random.Generator:
        return np.random.default_rng((int(self.seed), int(self.epoch), int(idx)))

    def __getitem__(self, idx: int) -> Dict:
        img_path, label_path = self.file_list[idx]
        img = read_image(img_path)
        label = read_label(label_path) if label_path is not None and self.mode != "test" else None
        if label is not None:
            if label.shape != img.shape[:2]:
                raise DatasetError(f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from the "
                                   f"image's {img.shape[1]}x{img.shape[0]} ({img_path})")
            check_label_values(label, self.num_classes, self.ignore_index, label_path)
        img, label = self.transforms(img, label, self.rng(idx))
        sample = {"img": img, "img_path": img_path, "label_path": label_path}
        if label is not None:
            sample["label"] = label
        return sample

    def check_contents(self, workers: Optional[int] = None, progress: bool = True,
                       raise_error: bool = True, cache: Optional[Path] = None) -> List[str]:
        """Read every file: readable, sizes match, label values in 0..num_classes-1 or ignore_index.
        ``cache``: skip files that passed before and have not changed (:class:`CheckCache`)."""
        pairs = self.file_list if self.mode != "test" else [(i, None) for i, _ in self.file_list]
        return check_contents(pairs, self.num_classes, self.ignore_index, workers, progress, raise_error, cache)


@manager.DATASETS.add_component
class Dataset(SegmentationDataset):
    """A custom data set from file lists: each line is ``image_path<separator>label_path`` relative to
    ``dataset_root`` (the label may be left out in test mode). ``class_names``: optional, one per class
    (tables and reports show the index otherwise); ``palette``: optional, one [r, g, b] per class (the
    colours of pictures; tools/check_dataset.py --write_config writes the colours of colour masks)."""

    def __init__(self, dataset_root: str, transforms: list, num_classes: int, mode: str = "train",
                 train_path: Optional[str] = None, val_path: Optional[str] = None,
                 test_path: Optional[str] = None, separator: str = " ", ignore_index: int = 255,
                 class_names: Optional[List[str]] = None, palette: Optional[List[List[int]]] = None):
        super().__init__(transforms, num_classes, mode, ignore_index, class_names, palette)
        self.dataset_root = Path(dataset_root)
        if not isinstance(separator, str) or not separator:
            raise ValueError(f"Dataset.separator must be a non-empty string, got {separator!r}")
        self.separator = separator
        list_path = {"train": train_path, "val": val_path, "test": test_path}[mode]
        if list_path is None:
            raise ValueError(f"Dataset: mode '{mode}' needs {mode}_path, the file list of that split")
        self.list_path = Path(list_path)
        self.validate()

    def validate(self) -> None:
        """Structural checks: root and list exist, every listed file exists (labels outside test mode)."""
        if not self.dataset_root.is_dir():
            raise DatasetError(f"dataset_root {self.dataset_root}: folder not found")
        if not self.list_path.is_file():
            raise DatasetError(f"{self.list_path}: file list not found")
        self.file_list = parse_file_list(self.list_path, self.dataset_root, self.separator,
                                         need_labels=self.mode != "test")
        if not self.file_list:
            raise DatasetError(f"{self.list_path}: no samples listed")
        missing = [p for pair in self.file_list for p in pair if p is not None and not Path(p).is_file()]
        if missing:
            raise DatasetError(f"{self.list_path}: {len(missing)} listed files not found, e.g. "
                               f"{', '.join(missing[:3])}")


def parse_file_list(list_path: Path, root: Path, separator: str,
                    need_labels: bool) -> List[Tuple[str, Optional[str]]]:
    pairs = []
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(separator)
        if len(parts) > 2 or (need_labels and len(parts) != 2):
            expected = "'image label'" if need_labels else "'image [label]'"
            raise DatasetError(f"{list_path}:{number}: expected {expected} separated by {separator!r}, "
                               f"got {line.strip()!r}")
        img = str(root / parts[0])
        label = str(root / parts[1]) if len(parts) == 2 else None
        pairs.append((img, label))
    return pairs

