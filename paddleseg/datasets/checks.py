"""Content checks of a data set: every image readable, its label the same size and within the classes.

Structural checks (folders, file pairs) belong to each dataset's ``validate``; this module reads the
files, so it is run once by ``tools/check_dataset.py`` (or by training on request), not at every start.
"""
from functools import partial
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError
from paddleseg.transforms.io import read_label

FilePair = Tuple[str, Optional[str]]
MAX_LISTED = 10


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of a fully decoded image; raises DatasetError if it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        reason = "file not found" if not Path(path).is_file() else "unreadable or truncated image"
        raise DatasetError(f"{path}: {reason}")
    return img.shape[:2]


def bad_values_message(counts: np.ndarray, num_classes: int, ignore_index: int) -> Optional[str]:
    """'values 19 (12 px), 40 (3 px)' for the label values outside 0..num_classes-1 and ignore_index."""
    valid = np.zeros(len(counts), dtype=bool)
    valid[:num_classes] = True
    if 0 <= ignore_index < len(counts):
        valid[ignore_index] = True
    bad = np.flatnonzero((counts > 0) & ~valid)
    if not len(bad):
        return None
    listed = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:MAX_LISTED])
    more = f" and {len(bad) - MAX_LISTED} more values" if len(bad) > MAX_LISTED else ""
    return (f"label values outside 0..{num_classes - 1} and {ignore_index}: {listed}{more}; "
            f"{int(counts[bad].sum())} pixels in all")


def check_pair(pair: FilePair, num_classes: int, ignore_index: int) -> Optional[str]:
    """The problem with one (image, label) pair as a message naming the file, or None if it is fine."""
    img_path, label_path = pair
    try:
        size = image_size(img_path)
        if label_path is None:
            return None
        label = read_label(label_path)
    except DatasetError as e:
        return str(e)
    if label.shape[:2] != size:
        return (f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from the image's "
                f"{size[1]}x{size[0]} ({img_path})")
    message = bad_values_message(np.bincount(label.ravel(), minlength=256), num_classes, ignore_index)
    return f"{label_path}: {message}" if message else None


def check_contents(file_list: Sequence[FilePair], num_classes: int, ignore_index: int = 255,
                   workers: Optional[int] = None, progress: bool = True, raise_error: bool = True) -> List[str]:
    """Read every pair; return the problems (one message per bad pair), or raise :class:`DatasetError`
    listing them when ``raise_error``."""
    fn = partial(check_pair, num_classes=num_classes, ignore_index=ignore_index)
    problems = [p for p in parallel_map(fn, file_list, workers, "checking", progress) if p]
    if problems and raise_error:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(f"{len(problems)} of {len(file_list)} samples are invalid:\n  {listed}{more}")
    return problems
