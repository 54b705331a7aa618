"""Class weights from pixel frequencies, ESPNet's formula ``w = 1 / ln(1.10 + p)``, and writing them into
a config's ``CrossEntropyLoss.weight`` without touching the rest of the file."""
import os
import re
from functools import partial
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import yaml

from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import ConfigError, DatasetError
from paddleseg.transforms.io import read_label
from paddleseg.utils.atomic import atomic_write_text

ESPNET_C = 1.10


def label_histogram(path: str, num_classes: int) -> np.ndarray:
    """Pixels per class 0..num_classes-1 of one label file (255 and other values not counted)."""
    label = read_label(path)
    return np.bincount(label.ravel(), minlength=256)[:num_classes].astype(np.int64)


def class_histogram(label_paths: Sequence[str], num_classes: int, workers: Optional[int] = None,
                    progress: bool = True) -> np.ndarray:
    parts = parallel_map(partial(label_histogram, num_classes=num_classes), label_paths, workers,
                         "counting pixels", progress)
    return np.sum(parts, axis=0) if parts else np.zeros(num_classes, dtype=np.int64)


def weights_from_histogram(histogram: Sequence[int], c: float = ESPNET_C) -> np.ndarray:
    """``1 / ln(c + p)`` with ``p`` each class's share of the counted pixels."""
    histogram = np.asarray(histogram, dtype=np.float64)
    if histogram.sum() <= 0:
        raise DatasetError("no labelled pixels to compute class weights from (all ignored?)")
    return 1.0 / np.log(c + histogram / histogram.sum())


def compute_class_weights(dataset, workers: Optional[int] = None, progress: bool = True) -> np.ndarray:
    """Weights of ``dataset``'s classes from the histogram of its label files."""
    paths = [label for _, label in dataset.file_list if label is not None]
    if not paths:
        raise DatasetError(f"{type(dataset).__name__} ({dataset.mode}): no label files to count")
    return weights_from_histogram(class_histogram(paths, dataset.num_classes, workers, progress))


_TYPE_LINE = re.compile(r"^(?P<indent>\s*(?:-\s+)?)type:\s*CrossEntropyLoss\s*(#.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _ends_mapping(line: str, column: int) -> bool:
    """A non-blank line that is outside the mapping whose keys start at ``column``."""
    return bool(line.strip()) and (_indent(line) < column or
                                   (_indent(line) == column and line.lstrip().startswith("- ")))


def _weight_block(lines: List[str], start: int, column: int) -> range:
    """Line numbers of the ``weight:`` entry (with a block list below it) of the mapping from ``start``."""
    for j in range(start, len(lines)):
        if _ends_mapping(lines[j], column):
            break
        if _indent(lines[j]) == column and lines[j].lstrip().startswith("weight:"):
            k = j + 1
            while k < len(lines) and lines[k].strip() and (
                    _indent(lines[k]) > column or
                    (_indent(lines[k]) == column and lines[k].lstrip().startswith("- "))):
                k += 1
            return range(j, k)
    return range(0)


def check_config_writable(config_path: Union[str, Path]) -> None:
    """Fail before the (slow) counting if :func:`write_weights_to_config` could not replace the file:
    it writes a temporary file beside the file a symlink points to, then renames it."""
    target = Path(os.path.realpath(config_path))
    if not target.is_file():
        raise ConfigError(f"{config_path}: not a file")
    for needed in (target, target.parent):
        if not os.access(needed, os.W_OK):
            raise ConfigError(f"{config_path}: cannot write the weights into it ({needed} is not writable)")


def write_weights_to_config(config_path: Union[str, Path], weights: Sequence[float], decimals: int = 4) -> int:
    """Set ``weight:`` of every ``CrossEntropyLoss`` under ``loss.types`` in the file; returns how many.

    Only the weight lines change (a ``weight:`` key is added after ``type: CrossEntropyLoss`` when absent);
    the result is parsed back and compared with the original before it replaces the file atomically
    (:func:`~paddleseg.utils.atomic.atomic_write_text`: the file keeps its mode, a symlink stays a link
    and its target is rewritten). On any error the file is unchanged."""
    path = Path(config_path)
    try:
        text = path.read_text(encoding="utf-8")
        original = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the config: {e}") from e
    values = [round(float(w), decimals) for w in weights]
    flow = "[" + ", ".join(f"{v:.{decimals}f}" for v in values) + "]"
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    count, i = 0, 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        match = _TYPE_LINE.match(line.rstrip("\n"))
        if not match:
            continue
        count += 1
        column = len(match.group("indent"))
        if not line.endswith("\n"):
            out[-1] = line + "\n"
        block = _weight_block(lines, i, column)
        weight_line = " " * column + f"weight: {flow}\n"
        if block:
            out.extend(lines[i:block[0]])
            out.append(weight_line)
            i = block[-1] + 1
        else:
            out.append(weight_line)
    if not count:
        raise ConfigError(f"{path}: no 'type: CrossEntropyLoss' entry in this file (loss.types); add one, or "
                          f"run on the file that defines the loss (it may come from a _base_ file)")
    new_text = "".join(out)
    check_unchanged_but_weights(path, original, yaml.safe_load(new_text), values)
    try:
        atomic_write_text(path, new_text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the config ({e.strerror or e}); the file is unchanged") from e
    return count


def check_unchanged_but_weights(path: Path, old, new, values: List[float]) -> None:
    def strip(cfg):
        cfg = yaml.safe_load(yaml.safe_dump(cfg))
        for item in (cfg.get("loss") or {}).get("types") or []:
            if isinstance(item, dict) and item.get("type") == "CrossEntropyLoss":
                item.pop("weight", None)
        return cfg

    types = (new.get("loss") or {}).get("types") or []
    written = [t.get("weight") for t in types if isinstance(t, dict) and t.get("type") == "CrossEntropyLoss"]
    if strip(old) != strip(new) or not written or any(w != values for w in written):
        raise ConfigError(f"{path}: could not rewrite the CrossEntropyLoss weight safely (unusual layout); "
                          f"the file is unchanged. Set loss.types[..].weight by hand to {values}")
