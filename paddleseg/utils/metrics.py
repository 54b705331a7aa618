"""Segmentation metrics from one confusion matrix accumulated over a whole evaluation set.

This is the official Cityscapes protocol: one matrix for all images (not a mean of per-image or
per-batch scores); pixels whose ground truth is ``ignore_index`` are left out entirely, so predictions
on them are no false positives; a class absent from both ground truth and prediction has no IoU (NaN)
and is left out of the mean.

    cm = ConfusionMatrix(num_classes=19)
    for pred, label in batches:          # int arrays or tensors, (H, W) or (N, H, W)
        cm.update(pred, label)
    # several ranks: all-reduce the raw counts, then rebuild
    # cm = ConfusionMatrix.from_matrix(all_reduce_sum(cm.matrix))
    print(cm.miou(), cm.table(CITYSCAPES_CLASSES))
"""
from typing import Optional, Sequence

import numpy as np
import paddle
from prettytable import PrettyTable

from paddleseg.errors import DatasetError


def _as_numpy(values) -> np.ndarray:
    return values.numpy() if isinstance(values, paddle.Tensor) else np.asarray(values)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float64, NaN where the denominator is 0, without warnings."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean over the non-NaN entries; NaN (without a warning) when there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


class ConfusionMatrix:
    """An int64 (C, C) matrix: ``matrix[g, p]`` counts pixels of ground truth ``g`` predicted as ``p``.

    Args:
        num_classes: C; predictions and (non-ignored) labels must lie in 0..C-1.
        ignore_index: ground-truth value of pixels that do not count.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, ignore_index: int = 255) -> "ConfusionMatrix":
        """A confusion matrix holding ``matrix`` (e.g. the all-reduced sum of every rank's ``.matrix``)."""
        matrix = _as_numpy(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"a confusion matrix is square, got shape {matrix.shape}")
        result = cls(matrix.shape[0], ignore_index)
        result.matrix = matrix.astype(np.int64, copy=True)
        return result

    # -- accumulation ------------------------------------------------------------------------
    def update(self, pred, label) -> np.ndarray:
        """Count one prediction (H, W) or batch (N, H, W) of class indices against its label; returns
        the (C, C) counts this call added (one image's own matrix, for per-image scores)."""
        pred, label = _as_numpy(pred), _as_numpy(label)
        if pred.shape != label.shape:
            raise ValueError(f"prediction of shape {pred.shape} and label of shape {label.shape} differ")
        valid = label != self.ignore_index
        label, pred = label[valid], pred[valid]  # 1-D, only the counted pixels
        c = self.num_classes
        bad_label = (label < 0) | (label >= c)
        if bad_label.any():
            raise DatasetError(f"label values {np.unique(label[bad_label])[:10].tolist()} are neither classes "
                               f"0..{c - 1} nor ignore_index {self.ignore_index}")
        bad_pred = (pred < 0) | (pred >= c)
        if bad_pred.any():
            raise ValueError(f"prediction values {np.unique(pred[bad_pred])[:10].tolist()} are not classes 0..{c - 1}")
        pairs = label.astype(np.int64) * c + pred  # int64 index per counted pixel; no float copies
        counts = np.bincount(pairs, minlength=c * c).reshape(c, c)
        self.matrix += counts
        return counts

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add ``other``'s counts to this matrix (same classes and ignore_index); returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix (ignore_index {other.ignore_index}) "
                             f"into a {self.num_classes}-class one (ignore_index {self.ignore_index})")
        self.matrix += other.matrix
        return self

    def __iadd__(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        return self.merge(other)

    # -- counts ----------------------------------------------------------------------------
    @property
    def true_positives(self) -> np.ndarray:
        return np.diag(self.matrix)

    @property
    def ground_truth_pixels(self) -> np.ndarray:
        """Per class: pixels labelled with it (row sums)."""
        return self.matrix.sum(axis=1)

    @property
    def predicted_pixels(self) -> np.ndarray:
        """Per class: counted pixels predicted as it (column sums)."""
        return self.matrix.sum(axis=0)

    # -- scores ----------------------------------------------------------------------------
    def iou(self) -> np.ndarray:
        """Per class ``TP / (TP + FP + FN)``; NaN for a class absent from ground truth and prediction."""
        tp = self.true_positives
        return _ratio(tp, self.ground_truth_pixels + self.predicted_pixels - tp)

    def miou(self) -> float:
        """Mean IoU over the classes that have one (present in ground truth or prediction)."""
        return _nanmean(self.iou())

    def pixel_accuracy(self) -> float:
        """Correct pixels / counted pixels (NaN before any pixel was counted)."""
        return float(_ratio(self.true_positives.sum(), self.matrix.sum()))

    def class_precision(self) -> np.ndarray:
        """Per class ``TP / (TP + FP)``; NaN for a class never predicted."""
        return _ratio(self.true_positives, self.predicted_pixels)

    def class_recall(self) -> np.ndarray:
        """Per class ``TP / (TP + FN)``; NaN for a class absent from the ground truth."""
        return _ratio(self.true_positives, self.ground_truth_pixels)

    def dice(self) -> np.ndarray:
        """Per class ``2 TP / (2 TP + FP + FN)`` (the F1 score); NaN like :meth:`iou`."""
        return _ratio(2 * self.true_positives, self.ground_truth_pixels + self.predicted_pixels)

    def mean_dice(self) -> float:
        return _nanmean(self.dice())

    def kappa(self) -> float:
        """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of prediction vs ground truth."""
        total = float(self.matrix.sum())
        if total == 0:
            return float("nan")
        observed = self.true_positives.sum() / total
        expected = float((self.ground_truth_pixels.astype(np.float64) * self.predicted_pixels).sum()) / total ** 2
        return float(_ratio(observed - expected, 1.0 - expected))

    def table(self, class_names: Optional[Sequence[str]] = None) -> str:
        """A text table of IoU, precision and recall per class ('n/a' where undefined), then the means."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        table = PrettyTable(["Class", "IoU", "Precision", "Recall"])
        table.align["Class"] = "l"
        columns = (self.iou(), self.class_precision(), self.class_recall())
        for i, name in enumerate(names):
            table.add_row([name] + [_format(column[i]) for column in columns])
        table.add_row(["mean"] + [_format(_nanmean(column)) for column in columns])
        return table.get_string()


def _format(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.4f}"
