"""Softmax cross-entropy for semantic segmentation, plain and with online hard example mining (OHEM).

Both losses take logits ``(N, C, H, W)`` and an int64 label map ``(N, H, W)`` (a label ``(N, 1, H, W)`` is
accepted too) and return a 0-D tensor. Pixels whose label is ``ignore_index`` contribute nothing, and
a batch without a single valid pixel gives a loss of 0, not NaN. The per-pixel loss comes from one
fused ``paddle.nn.functional.cross_entropy`` call (softmax computed once, no one-hot copies).
"""
from typing import Optional

import paddle
import paddle.nn.functional as F

from paddleseg.cvlibs import arguments, manager
from paddleseg.errors import ConfigError

_CHANNEL_AXIS = {"NCHW": 1, "NHWC": -1}


def _label_map(logits: paddle.Tensor, label: paddle.Tensor, channel_axis: int) -> paddle.Tensor:
    """``label`` as (N, H, W) int64, checked against the spatial shape of ``logits``."""
    if label.ndim == 4 and label.shape[1 if channel_axis == 1 else 3] == 1:
        label = label.squeeze(1 if channel_axis == 1 else 3)
    spatial = logits.shape[2:] if channel_axis == 1 else logits.shape[1:3]
    if label.ndim != 3 or label.shape[0] != logits.shape[0] or list(label.shape[1:]) != list(spatial):
        raise ValueError(f"label of shape {list(label.shape)} does not fit logits of shape {list(logits.shape)}: "
                         f"expected (N, H, W) = {[logits.shape[0]] + list(spatial)}")
    return label if label.dtype == paddle.int64 else label.astype("int64")


def _masked_mean(values: paddle.Tensor, weights: paddle.Tensor) -> paddle.Tensor:
    """``sum(values) / sum(weights)``, 0 when the weights sum to 0 (then every value is 0 too)."""
    return values.sum() / weights.sum().clip(min=1e-12)


@manager.LOSSES.add_component
class CrossEntropyLoss:
    """Softmax cross-entropy with an optional per-class weight and an ignored label.

    The result is the weighted mean over the pixels whose label is not ``ignore_index``::

        loss = sum_i w[y_i] * (-log softmax(x_i)[y_i]) / sum_i w[y_i]      (i over non-ignored pixels)

    i.e. normalised by the sum of the weights of those pixels, not by their count (with no ``weight``
    every ``w`` is 1 and this is the plain mean). No valid pixel: the loss is 0.

    Args:
        weight: one weight per class (length C), e.g. inverse class frequencies; None: all 1.
        ignore_index: the label of pixels that do not count.
        data_format: 'NCHW' (class axis 1) or 'NHWC' (class axis last) for the logits.
    """

    def __init__(self, weight: Optional[list] = None, ignore_index: int = 255, data_format: str = "NCHW"):
        self.data_format = arguments.one_of("CrossEntropyLoss", "data_format", data_format, list(_CHANNEL_AXIS))
        if weight is not None:
            if not isinstance(weight, (list, tuple)) or not weight:
                raise ValueError(f"CrossEntropyLoss.weight must be a list of one weight per class, got {weight!r}")
            weight = [float(arguments.non_negative("CrossEntropyLoss", f"weight[{i}]", w))
                      for i, w in enumerate(weight)]
            if not any(weight):
                raise ValueError(f"CrossEntropyLoss.weight must not be all 0, got {weight}")
        self.weight = weight
        self.ignore_index = arguments.number("CrossEntropyLoss", "ignore_index", ignore_index, integer=True)
        self._weight_tensor: Optional[paddle.Tensor] = None

    def _class_weight(self, num_classes: int) -> Optional[paddle.Tensor]:
        if self.weight is None:
            return None
        if len(self.weight) != num_classes:
            raise ConfigError(f"CrossEntropyLoss.weight has {len(self.weight)} entries but the logits have "
                              f"{num_classes} classes")
        if self._weight_tensor is None:
            self._weight_tensor = paddle.to_tensor(self.weight, dtype="float32")
        return self._weight_tensor

    def __call__(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        axis = _CHANNEL_AXIS[self.data_format]
        label = _label_map(logits, label, axis)
        weight = self._class_weight(logits.shape[axis])
        # reduction='none' gives w[y] * -log p(y) per pixel and 0 at ignored pixels
        per_pixel = F.cross_entropy(logits, label, weight=weight, ignore_index=self.ignore_index,
                                    reduction="none", axis=axis)
        valid = label != self.ignore_index
        if weight is None:
            pixel_weight = valid.astype(per_pixel.dtype)
        else:
            safe_label = paddle.where(valid, label, paddle.zeros_like(label))
            pixel_weight = weight.astype(per_pixel.dtype)[safe_label] * valid.astype(per_pixel.dtype)
        return _masked_mean(per_pixel, pixel_weight)


@manager.LOSSES.add_component
class OhemCrossEntropyLoss:
    """Cross-entropy over the hard pixels only (online hard example mining).

    A valid pixel is kept when the softmax probability of its true class is below ``thresh``; when that
    keeps fewer than ``min_kept`` pixels, the ``min_kept`` pixels with the lowest true-class probability
    are kept instead (every pixel tied with the ``min_kept``-th is kept too). The loss is the plain mean
    of ``-log p(y)`` over the kept pixels; the selection itself carries no gradient. No valid pixel: 0.

    Args:
        thresh: pixels with a true-class probability below this are hard.
        min_kept: at least this many of the hardest valid pixels per batch are kept.
        ignore_index: the label of pixels that do not count.
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 10000, ignore_index: int = 255):
        self.thresh = arguments.probability("OhemCrossEntropyLoss", "thresh", thresh)
        self.min_kept = arguments.non_negative("OhemCrossEntropyLoss", "min_kept", min_kept, integer=True)
        self.ignore_index = arguments.number("OhemCrossEntropyLoss", "ignore_index", ignore_index, integer=True)

    def __call__(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        label = _label_map(logits, label, 1)
        per_pixel = F.cross_entropy(logits, label, ignore_index=self.ignore_index, reduction="none", axis=1)
        valid = label != self.ignore_index
        with paddle.no_grad():
            # p(y) = exp(-loss): the softmax is not computed a second time; ignored pixels get 2 (never hard)
            prob = paddle.where(valid, paddle.exp(-per_pixel.detach()), paddle.full_like(per_pixel, 2.0))
            kept = valid & (prob < self.thresh)
            num_kept = min(self.min_kept, int(valid.sum()))
            if num_kept > 0:
                kth_prob = paddle.kthvalue(prob.flatten(), num_kept)[0]
                kept = kept | (prob <= kth_prob)
            kept = kept.astype(per_pixel.dtype)
        return _masked_mean(per_pixel * kept, kept)

