"""Geometric transforms: resizing, random scaling, padding and cropping, flipping, rotation.

The image and the label always move together; labels are resampled with (centre-aligned) nearest
neighbour only, so no new class ids appear. Images stay in their dtype (uint8 stays uint8).
"""
import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.cvlibs import arguments, manager

INTERPOLATIONS = {
    "NEAREST": cv2.INTER_NEAREST,
    "LINEAR": cv2.INTER_LINEAR,
    "CUBIC": cv2.INTER_CUBIC,
    "AREA": cv2.INTER_AREA,
    "LANCZOS4": cv2.INTER_LANCZOS4,
}
LABEL_INTERPOLATION = cv2.INTER_NEAREST_EXACT

Pair = Tuple[np.ndarray, Optional[np.ndarray]]


def resize_pair(img: np.ndarray, label: Optional[np.ndarray], size: Tuple[int, int],
                interp: int = cv2.INTER_LINEAR) -> Pair:
    """Resize to ``size`` = (width, height): the image with ``interp``, the label with nearest neighbour."""
    if (img.shape[1], img.shape[0]) == tuple(size):
        return img, label
    img = cv2.resize(img, size, interpolation=interp)
    if label is not None:
        label = cv2.resize(label, size, interpolation=LABEL_INTERPOLATION)
    return img, label


def _pad_value(img: np.ndarray, value: float) -> Tuple[np.ndarray, float]:
    """A padding value the image's dtype can hold exactly (a uint8 image padded with 127.5 becomes float32)."""
    if img.dtype == np.uint8 and float(value) != round(value):
        return img.astype(np.float32), float(value)
    return img, float(value)


@manager.TRANSFORMS.add_component
class Resize:
    """Resize to ``target_size`` = [width, height]; ``keep_ratio`` fits inside it keeping the aspect ratio.
    ``interp`` is NEAREST, LINEAR, CUBIC, AREA, LANCZOS4 or RANDOM (one of those per sample)."""

    def __init__(self, target_size: Sequence[int] = (512, 512), interp: str = "LINEAR", keep_ratio: bool = False):
        self.target_size = arguments.size_pair("Resize", "target_size", target_size)
        self.interp = arguments.one_of("Resize", "interp", interp, list(INTERPOLATIONS) + ["RANDOM"])
        self.keep_ratio = keep_ratio

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        if self.interp == "RANDOM":
            interp = list(INTERPOLATIONS.values())[rng.integers(len(INTERPOLATIONS))]
        else:
            interp = INTERPOLATIONS[self.interp]
        w, h = self.target_size
        if self.keep_ratio:
            scale = min(w / img.shape[1], h / img.shape[0])
            w, h = max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))
        return resize_pair(img, label, (w, h), interp)


@manager.TRANSFORMS.add_component
class ResizeByShort:
    """Scale so that the short side is ``short_size`` (the long side at most ``max_size`` if > 0)."""

    def __init__(self, short_size: int, max_size: int = -1):
        self.short_size = arguments.positive("ResizeByShort", "short_size", short_size, integer=True)
        self.max_size = arguments.number("ResizeByShort", "max_size", max_size, integer=True)  # <= 0: no limit

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        h, w = img.shape[:2]
        scale = self.short_size / min(h, w)
        if self.max_size > 0 and max(h, w) * scale > self.max_size:
            scale = self.max_size / max(h, w)
        return resize_pair(img, label, (max(1, round(w * scale)), max(1, round(h * scale))))


@manager.TRANSFORMS.add_component
class ResizeByLong:
    """Scale so that the long side is ``long_size``."""

    def __init__(self, long_size: int):
        self.long_size = arguments.positive("ResizeByLong", "long_size", long_size, integer=True)

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        h, w = img.shape[:2]
        scale = self.long_size / max(h, w)
        return resize_pair(img, label, (max(1, round(w * scale)), max(1, round(h * scale))))


@manager.TRANSFORMS.add_component
class ResizeStepScaling:
    """Scale by a random factor: one of min, min+step, …, max (``scale_step_size`` 0: uniform in [min, max])."""

    def __init__(self, min_scale_factor: float = 0.75, max_scale_factor: float = 1.25,
                 scale_step_size: float = 0.25):
        arguments.positive("ResizeStepScaling", "min_scale_factor", min_scale_factor)
        arguments.number("ResizeStepScaling", "max_scale_factor", max_scale_factor, min_scale_factor)
        arguments.non_negative("ResizeStepScaling", "scale_step_size", scale_step_size)
        self.min_scale_factor = min_scale_factor
        self.max_scale_factor = max_scale_factor
        self.scale_step_size = scale_step_size
        if scale_step_size > 0 and min_scale_factor < max_scale_factor:
            steps = int((max_scale_factor - min_scale_factor) / scale_step_size + 1)
            self.factors = np.linspace(min_scale_factor, max_scale_factor, steps)
        else:
            self.factors = None

    def draw_size(self, rng: np.random.Generator, width: int, height: int) -> Tuple[int, int]:
        """The random target (width, height) for an image of that size."""
        if self.min_scale_factor == self.max_scale_factor:
            scale = self.min_scale_factor
        elif self.factors is None:
            scale = rng.uniform(self.min_scale_factor, self.max_scale_factor)
        else:
            scale = self.factors[rng.integers(len(self.factors))]
        return max(1, int(round(scale * width))), max(1, int(round(scale * height)))

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        size = self.draw_size(rng, img.shape[1], img.shape[0])
        return resize_pair(img, label, size)


@manager.TRANSFORMS.add_component
class RandomPaddingCrop:
    """Pad to at least ``crop_size`` = [width, height] (image right/bottom with ``im_padding_value``, label
    with ``label_padding_value``), then cut a random ``crop_size`` window."""

    def __init__(self, crop_size: Sequence[int] = (512, 512), im_padding_value: float = 127.5,
                 label_padding_value: int = 255):
        self.crop_size = arguments.size_pair("RandomPaddingCrop", "crop_size", crop_size)
        self.im_padding_value = arguments.number("RandomPaddingCrop", "im_padding_value", im_padding_value)
        self.label_padding_value = arguments.label_value("RandomPaddingCrop", "label_padding_value",
                                                         label_padding_value)

    def draw_offset(self, rng: np.random.Generator, width: int, height: int) -> Tuple[int, int]:
        """The random (x, y) of the window's corner in the padded image of an image of that size."""
        cw, ch = self.crop_size
        y = int(rng.integers(max(height, ch) - ch + 1))
        x = int(rng.integers(max(width, cw) - cw + 1))
        return x, y

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        h, w = img.shape[:2]
        cw, ch = self.crop_size
        x, y = self.draw_offset(rng, w, h)
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        if pad_h or pad_w:
            img, value = _pad_value(img, self.im_padding_value)
            img = cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(value,) * 3)
            if label is not None:
                label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                           value=self.label_padding_value)
        img = img[y:y + ch, x:x + cw]
        if label is not None:
            label = label[y:y + ch, x:x + cw]
        return img, label


def scale_and_crop(scaling: ResizeStepScaling, crop: RandomPaddingCrop, img: np.ndarray,
                   label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
    """``crop(scaling(img, label))`` without building the scaled full image.

    Draws the same random numbers in the same order as the two transforms run one after the other and
    samples the source at the same points as ``cv2.resize`` (pixel centres aligned), so the result
    matches up to interpolation rounding; only the cropped window is resampled.
    """
    h, w = img.shape[:2]
    sw, sh = scaling.draw_size(rng, w, h)
    x0, y0 = crop.draw_offset(rng, sw, sh)
    cw, ch = crop.crop_size
    # part of the window inside the scaled image; the rest is padding
    vw, vh = min(cw, sw - x0), min(ch, sh - y0)
    fx, fy = w / sw, h / sh
    matrix = np.array([[fx, 0, (x0 + 0.5) * fx - 0.5], [0, fy, (y0 + 0.5) * fy - 0.5]])
    flags = cv2.WARP_INVERSE_MAP
    window = cv2.warpAffine(img, matrix, (vw, vh), flags=cv2.INTER_LINEAR | flags, borderMode=cv2.BORDER_REPLICATE)
    win_label = None
    if label is not None:
        win_label = cv2.warpAffine(label, matrix, (vw, vh), flags=cv2.INTER_NEAREST | flags,
                                   borderMode=cv2.BORDER_REPLICATE)
    if (vw, vh) == (cw, ch):
        return window, win_label
    window, value = _pad_value(window, crop.im_padding_value)
    out = np.full((ch, cw) + window.shape[2:], value, dtype=window.dtype)
    out[:vh, :vw] = window
    out_label = None
    if win_label is not None:
        out_label = np.full((ch, cw), crop.label_padding_value, dtype=win_label.dtype)
        out_label[:vh, :vw] = win_label
    return out, out_label


@manager.TRANSFORMS.add_component
class RandomHorizontalFlip:
    """Mirror left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = arguments.probability("RandomHorizontalFlip", "prob", prob)

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        if rng.random() < self.prob:
            img = cv2.flip(img, 1)
            if label is not None:
                label = cv2.flip(label, 1)
        return img, label


@manager.TRANSFORMS.add_component
class RandomScaleAspect:
    """Crop a random window of area ``min_scale``..1 of the image and aspect ratio ``aspect_ratio``..1/
    ``aspect_ratio``, resized back to the original size (up to 10 tries; unchanged if none fits)."""

    def __init__(self, min_scale: float = 0.5, aspect_ratio: float = 0.33):
        self.min_scale = arguments.probability("RandomScaleAspect", "min_scale", min_scale)
        self.aspect_ratio = arguments.number("RandomScaleAspect", "aspect_ratio", aspect_ratio, 0, 1)

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        if self.min_scale == 0 or self.aspect_ratio == 0:
            return img, label
        h, w = img.shape[:2]
        for _ in range(10):
            area = h * w * rng.uniform(self.min_scale, 1.0)
            aspect = rng.uniform(self.aspect_ratio, 1.0 / self.aspect_ratio)
            dw, dh = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
            if rng.random() < 0.5:
                dw, dh = dh, dw
            if 0 < dh < h and 0 < dw < w:
                y, x = int(rng.integers(h - dh + 1)), int(rng.integers(w - dw + 1))
                img = img[y:y + dh, x:x + dw]
                label = None if label is None else label[y:y + dh, x:x + dw]
                return resize_pair(img, label, (w, h))
        return img, label


@manager.TRANSFORMS.add_component
class RandomRotation:
    """Rotate by a random angle in [-max_rotation, max_rotation] degrees; the canvas grows to hold the whole
    rotated image, corners padded (image ``im_padding_value``, label ``label_padding_value``)."""

    def __init__(self, max_rotation: float = 15, im_padding_value: float = 127.5, label_padding_value: int = 255):
        self.max_rotation = arguments.number("RandomRotation", "max_rotation", max_rotation, 0, 180)
        self.im_padding_value = arguments.number("RandomRotation", "im_padding_value", im_padding_value)
        self.label_padding_value = arguments.label_value("RandomRotation", "label_padding_value", label_padding_value)

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        if self.max_rotation <= 0:
            return img, label
        angle = rng.uniform(-self.max_rotation, self.max_rotation)
        h, w = img.shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        nw, nh = int(round(h * sin + w * cos)), int(round(h * cos + w * sin))
        matrix[0, 2] += (nw - w) / 2
        matrix[1, 2] += (nh - h) / 2
        img, value = _pad_value(img, self.im_padding_value)
        img = cv2.warpAffine(img, matrix, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(value,) * 3)
        if label is not None:
            label = cv2.warpAffine(label, matrix, (nw, nh), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=self.label_padding_value)
        return img, label
