"""From a model's output to label maps at the image's size.

    labels = to_labels(output, "argmax", batch=2)      # (N, H, W) uint8 train ids
    label = fit_to_image(labels[0], image.shape[:2])   # nearest-neighbour, where a Resize changed the size

``output_op`` is deploy.yaml's: ``argmax`` means the model gives labels (N, H, W); ``softmax`` and
``none`` give scores (N, C, H, W) whose argmax over C is taken here; None (an upstream export that does
not say) goes by the output's rank. A shape that fits none of these, or labels that do not fit in
8 bits, is a DeployError naming the shape: it means the export is not what deploy.yaml says.
"""
from typing import Optional, Sequence

import cv2
import numpy as np

from paddleseg.deploy.errors import DeployError


def to_labels(output: np.ndarray, output_op: Optional[str], batch: int) -> np.ndarray:
    """(N, H, W) uint8 train ids of the model ``output`` for a batch of ``batch`` inputs."""
    output = np.asarray(output)
    said = {"argmax": 3, "softmax": 4, "none": 4}.get(output_op)
    rank = output.ndim if said is None and output.ndim in (3, 4) else said
    if output.ndim != rank or output.shape[0] != batch:
        expected = "(N, H, W) labels" if rank == 3 else "(N, C, H, W) scores"
        what = f"output_op {output_op}" if output_op else "its output"
        raise DeployError(f"the model gave an output of shape {list(output.shape)} for {batch} input(s); with "
                          f"{what} it should give {expected}: deploy.yaml does not describe this model")
    labels = output if rank == 3 else channel_argmax(output)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DeployError(f"the model gave label {int(labels.max())} (or {int(labels.min())}): labels are "
                          f"written as 8-bit PNGs, 0..255")
    return labels.astype(np.uint8)


def channel_argmax(scores: np.ndarray) -> np.ndarray:
    """``scores.argmax(axis=1)`` of (N, C, H, W) scores: one pass per class with OpenCV's vectorised
    compare and max, as uint8 (numpy's argmax over a middle axis copies the array first and was ~8x
    slower for 19 classes: docs/performance.md). Ties keep the first class, as numpy does; NaN or
    infinite scores, more than 256 classes, or scores that are not float32 go to numpy."""
    n, classes = scores.shape[:2]
    if (scores.dtype != np.float32 or classes > 256 or scores.size == 0 or scores.ndim != 4
            or not cv2.checkRange(scores.reshape(-1, scores.shape[-1]), quiet=True)[0]):
        return scores.argmax(axis=1)
    labels = np.zeros((n,) + scores.shape[2:], dtype=np.uint8)
    for scores_i, labels_i in zip(scores, labels):
        best = scores_i[0].copy()
        for k in range(1, classes):  # k beats every earlier class where higher: the maximum sets it there
            higher = cv2.compare(scores_i[k], best, cv2.CMP_GT)
            cv2.max(best, scores_i[k], dst=best)
            cv2.max(labels_i, cv2.bitwise_and(higher, k), dst=labels_i)
    return labels


def fit_to_image(label: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    """``label`` (h, w) at the image's ``hw`` (nearest neighbour; unchanged when it already is)."""
    if tuple(label.shape) == tuple(hw):
        return label
    return cv2.resize(label, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_NEAREST)
