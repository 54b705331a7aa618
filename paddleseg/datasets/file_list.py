"""File lists for custom data (the ``Dataset`` type): pair images and labels of two folders by name."""
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from paddleseg.errors import DatasetError

PathLike = Union[str, Path]


def find_pairs(root: PathLike, image_dir: str, label_dir: Optional[str], image_suffix: str = ".jpg",
               label_suffix: str = ".png", pattern: str = "**/*") -> List[Tuple[str, Optional[str]]]:
    """(image, label) paths relative to ``root``: every ``image_dir/<pattern><image_suffix>`` with the label
    at the same relative path under ``label_dir`` with ``label_suffix`` (no label dir: test lists)."""
    root = Path(root)
    images_root = root / image_dir
    if not images_root.is_dir():
        raise DatasetError(f"{images_root}: image folder not found")
    images = sorted(p for p in images_root.glob(pattern + image_suffix) if p.is_file())
    if not images:
        raise DatasetError(f"{images_root}: no files match {pattern}{image_suffix}")
    pairs, missing = [], []
    for img in images:
        rel = img.relative_to(images_root)
        if label_dir is None:
            pairs.append((str(img.relative_to(root)), None))
            continue
        label = root / label_dir / rel.parent / (rel.name[: -len(image_suffix)] + label_suffix)
        if not label.is_file():
            missing.append(str(label))
        pairs.append((str(img.relative_to(root)), str(label.relative_to(root))))
    if missing:
        raise DatasetError(f"{len(missing)} of {len(images)} images have no label, e.g. {', '.join(missing[:3])}")
    return pairs


def split_pairs(pairs: List, fractions: Tuple[float, ...], seed: int = 0) -> List[List]:
    """Shuffle ``pairs`` with ``seed`` and cut them into parts of the given fractions (summing to 1)."""
    if abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    cuts = np.round(np.cumsum(fractions)[:-1] * len(pairs)).astype(int)
    return [[pairs[i] for i in part] for part in np.split(order, cuts)]


def write_file_list(path: PathLike, pairs: List[Tuple[str, Optional[str]]], separator: str = " ") -> None:
    lines = [img if label is None else f"{img}{separator}{label}" for img, label in pairs]
    bad = [line for line in lines if line.count(separator) > 1]
    if bad:
        raise DatasetError(f"the separator {separator!r} occurs in a file name: {bad[0]!r}; choose another one")
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
