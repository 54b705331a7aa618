"""Model inference on one normalised image: whole image, sliding window, multi-scale and flips.

    logits = inference(model, im)                                 # (1, C, H, W), im (1, 3, H, W)
    probs = aug_inference(model, im, scales=(0.75, 1.0, 1.25), flip_horizontal=True)

The model must be in eval mode; it returns a list whose first element is the logits. Results always
have the input's spatial size, whatever the window or scale.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn.functional as F

Size = Union[int, Sequence[int]]


def _pair(value: Size, name: str) -> Tuple[int, int]:
    """``(width, height)`` from an int or a ``[width, height]`` pair (PaddleSeg's order)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or [width, height], got {value!r}")
    return pair


def _to_size(logits: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
    if tuple(logits.shape[2:]) == (height, width):
        return logits
    return F.interpolate(logits, size=[height, width], mode="bilinear", align_corners=False)


def window_starts(length: int, window: int, stride: int) -> List[int]:
    """Start offsets of windows of ``window`` pixels every ``stride`` pixels covering ``length``;
    the last window ends at the border (one window if the image is smaller than it)."""
    if window >= length:
        return [0]
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def slide_inference(model: paddle.nn.Layer, im: paddle.Tensor, *, crop_size: Size,
                    stride: Size) -> paddle.Tensor:
    """Logits averaged over overlapping ``crop_size`` windows (``[width, height]``) moved by
    ``stride``. Windows larger than the image are clipped to it (the model takes any size)."""
    crop_w, crop_h = _pair(crop_size, "crop_size")
    stride_w, stride_h = _pair(stride, "stride")
    height, width = im.shape[2:]
    total: Optional[paddle.Tensor] = None
    count = paddle.zeros([1, 1, height, width], dtype="float32")
    for top in window_starts(height, crop_h, stride_h):
        for left in window_starts(width, crop_w, stride_w):
            bottom, right = min(top + crop_h, height), min(left + crop_w, width)
            logits = _to_size(model(im[:, :, top:bottom, left:right])[0], bottom - top, right - left)
            padded = F.pad(logits, [left, width - right, top, height - bottom])
            total = padded if total is None else total + padded
            count[:, :, top:bottom, left:right] += 1
    return total / count


def inference(model: paddle.nn.Layer, im: paddle.Tensor, *, is_slide: bool = False,
              crop_size: Optional[Size] = None, stride: Optional[Size] = None) -> paddle.Tensor:
    """Logits (1, C, H, W) for a normalised image ``im`` (1, 3, H, W), at the image's size.

    ``is_slide``: average over sliding windows (:func:`slide_inference`; needs ``crop_size`` and
    ``stride`` as ``[width, height]``)."""
    height, width = im.shape[2:]
    if is_slide:
        if crop_size is None or stride is None:
            raise ValueError("sliding-window inference needs crop_size and stride")
        return slide_inference(model, im, crop_size=crop_size, stride=stride)
    return _to_size(model(im)[0], height, width)


def aug_inference(model: paddle.nn.Layer, im: paddle.Tensor, *, scales: Sequence[float] = (1.0,),
                  flip_horizontal: bool = False, flip_vertical: bool = False, is_slide: bool = False,
                  crop_size: Optional[Size] = None, stride: Optional[Size] = None) -> paddle.Tensor:
    """Test-time augmentation: the image at every scale in ``scales`` (bilinear resize), each also
    flipped if asked; returns the mean of the softmax probabilities (1, C, H, W) at the input size,
    so its argmax is the prediction."""
    if not scales:
        raise ValueError("aug_inference needs at least one scale")
    height, width = im.shape[2:]
    flips: List[List[int]] = [[]]
    if flip_horizontal:
        flips.append([3])
    if flip_vertical:
        flips.append([2])
    total, n = None, 0
    for scale in scales:
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scales must be positive and finite, got {scale}")
        size = [max(1, int(round(height * scale))), max(1, int(round(width * scale)))]
        scaled = im if size == [height, width] else F.interpolate(im, size=size, mode="bilinear",
                                                                  align_corners=False)
        for axes in flips:
            x = paddle.flip(scaled, axes) if axes else scaled
            logits = inference(model, x, is_slide=is_slide, crop_size=crop_size, stride=stride)
            if axes:
                logits = paddle.flip(logits, axes)
            probs = F.softmax(_to_size(logits, height, width), axis=1)
            total = probs if total is None else total + probs
            n += 1
    return total / n
