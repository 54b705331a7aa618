"""Class weights from pixel frequencies: ESPNet's formula ``w = 1 / ln(1.10 + p)`` and median frequency
balancing. Writing them into a config's ``CrossEntropyLoss.weight`` is :mod:`paddleseg.cvlibs.config_rewrite`'s
job (or the data-set doctor's, for the config it writes)."""
from functools import partial
from typing import Optional, Sequence

import numpy as np

from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError
from paddleseg.transforms.io import read_label

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


def median_frequency_weights(class_pixels: Sequence[int], present_pixels: Sequence[int]) -> np.ndarray:
    """Median frequency balancing (Eigen & Fergus, 2015): ``freq(c)`` is class ``c``'s pixels over the pixels
    of the images in which ``c`` appears, and ``w(c) = median(freq) / freq(c)``, the median taken over the
    classes that appear. A class that never appears gets 0 (it has no pixel to weigh)."""
    class_pixels = np.asarray(class_pixels, dtype=np.float64)
    present_pixels = np.asarray(present_pixels, dtype=np.float64)
    seen = (class_pixels > 0) & (present_pixels > 0)
    weights = np.zeros(len(class_pixels))
    if not seen.any():
        raise DatasetError("no labelled pixels to compute class weights from (all ignored?)")
    freq = class_pixels[seen] / present_pixels[seen]
    weights[seen] = np.median(freq) / freq
    return weights
