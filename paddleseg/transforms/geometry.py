"""Geometric transforms: resizing, random scaling, padding and cropping, flipping, rotation.

Each one *plans*: ``plan(rng, width, height)`` draws its random numbers from the size alone and returns
the pixel steps of :mod:`paddleseg.transforms.plan`, which then move the image and every target (the
label, an edge map, ...) alike. Calling a transform on its own, ``t(img, label, rng)``, plans and
applies at once; :class:`~paddleseg.transforms.compose.Compose` plans a run of them first and may fuse
steps. Labels are resampled with (centre-aligned) nearest neighbour only, so no new class ids appear.
Images stay in their dtype (uint8 stays uint8).
"""
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.cvlibs import arguments, manager
from paddleseg.transforms.plan import IMAGE, LABEL, Crop, Mirror, Scale, Step, Warp, apply_steps

MAX_SCALE = 16  # ResizeStepScaling's largest factor: training images beyond 16x their size are a typo

INTERPOLATIONS = {
    "NEAREST": cv2.INTER_NEAREST,
    "LINEAR": cv2.INTER_LINEAR,
    "CUBIC": cv2.INTER_CUBIC,
    "AREA": cv2.INTER_AREA,
    "LANCZOS4": cv2.INTER_LANCZOS4,
}

Pair = Tuple[np.ndarray, Optional[np.ndarray]]


class GeometricTransform:
    """A transform that moves pixels. Subclasses implement ``plan``: every random number the transform
    needs is drawn there, from ``rng`` and the input size only, never from pixel values, so planning a
    run of transforms before moving any pixel draws exactly what running them one by one draws."""

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        raise NotImplementedError

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        steps = self.plan(rng, img.shape[1], img.shape[0])
        return apply_steps(steps, img, IMAGE), None if label is None else apply_steps(steps, label, LABEL)


def scaled_size(width: int, height: int, scale: float) -> Tuple[int, int]:
    """(width, height) times ``scale``, rounded half to even, at least 1."""
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


@manager.TRANSFORMS.add_component
class Resize(GeometricTransform):
    """Resize to ``target_size`` = [width, height]; ``keep_ratio`` fits inside it keeping the aspect ratio.
    ``interp`` is NEAREST, LINEAR, CUBIC, AREA, LANCZOS4 or RANDOM (one of those per sample)."""

    def __init__(self, target_size: Sequence[int] = (512, 512), interp: str = "LINEAR", keep_ratio: bool = False):
        self.target_size = arguments.size_pair("Resize", "target_size", target_size)
        self.interp = arguments.one_of("Resize", "interp", interp, list(INTERPOLATIONS) + ["RANDOM"])
        self.keep_ratio = keep_ratio

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        if self.interp == "RANDOM":
            interp = list(INTERPOLATIONS.values())[rng.integers(len(INTERPOLATIONS))]
        else:
            interp = INTERPOLATIONS[self.interp]
        w, h = self.target_size
        if self.keep_ratio:
            w, h = scaled_size(width, height, min(w / width, h / height))
        return [Scale(w, h, interp)]


@manager.TRANSFORMS.add_component
class ResizeByShort(GeometricTransform):
    """Scale so that the short side is ``short_size`` (the long side at most ``max_size`` if > 0)."""

    def __init__(self, short_size: int, max_size: int = -1):
        self.short_size = arguments.side("ResizeByShort", "short_size", short_size)
        self.max_size = arguments.number("ResizeByShort", "max_size", max_size, integer=True)  # <= 0: no limit

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        scale = self.short_size / min(height, width)
        if self.max_size > 0 and max(height, width) * scale > self.max_size:
            scale = self.max_size / max(height, width)
        return [Scale(*scaled_size(width, height, scale))]


@manager.TRANSFORMS.add_component
class ResizeByLong(GeometricTransform):
    """Scale so that the long side is ``long_size``."""

    def __init__(self, long_size: int):
        self.long_size = arguments.side("ResizeByLong", "long_size", long_size)

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        return [Scale(*scaled_size(width, height, self.long_size / max(height, width)))]


@manager.TRANSFORMS.add_component
class ResizeStepScaling(GeometricTransform):
    """Scale by a random factor: one of min, min+step, …, max (``scale_step_size`` 0: uniform in [min, max])."""

    def __init__(self, min_scale_factor: float = 0.75, max_scale_factor: float = 1.25,
                 scale_step_size: float = 0.25):
        arguments.positive("ResizeStepScaling", "min_scale_factor", min_scale_factor)
        arguments.number("ResizeStepScaling", "max_scale_factor", max_scale_factor, min_scale_factor, MAX_SCALE)
        arguments.non_negative("ResizeStepScaling", "scale_step_size", scale_step_size)
        self.min_scale_factor = min_scale_factor
        self.max_scale_factor = max_scale_factor
        self.scale_step_size = scale_step_size
        if scale_step_size > 0 and min_scale_factor < max_scale_factor:
            steps = int((max_scale_factor - min_scale_factor) / scale_step_size + 1)
            self.factors = np.linspace(min_scale_factor, max_scale_factor, steps)
        else:
            self.factors = None

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        if self.min_scale_factor == self.max_scale_factor:
            scale = self.min_scale_factor
        elif self.factors is None:
            scale = rng.uniform(self.min_scale_factor, self.max_scale_factor)
        else:
            scale = self.factors[rng.integers(len(self.factors))]
        return [Scale(*scaled_size(width, height, scale))]


@manager.TRANSFORMS.add_component
class RandomPaddingCrop(GeometricTransform):
    """Pad to at least ``crop_size`` = [width, height] (image right/bottom with ``im_padding_value``, label
    with ``label_padding_value``), then cut a random ``crop_size`` window."""

    def __init__(self, crop_size: Sequence[int] = (512, 512), im_padding_value: float = 127.5,
                 label_padding_value: int = 255):
        self.crop_size = arguments.size_pair("RandomPaddingCrop", "crop_size", crop_size)
        self.im_padding_value = arguments.number("RandomPaddingCrop", "im_padding_value", im_padding_value)
        self.label_padding_value = arguments.label_value("RandomPaddingCrop", "label_padding_value",
                                                         label_padding_value)

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        cw, ch = self.crop_size
        y = int(rng.integers(max(height, ch) - ch + 1))
        x = int(rng.integers(max(width, cw) - cw + 1))
        return [Crop(x, y, cw, ch, self.im_padding_value, self.label_padding_value)]


@manager.TRANSFORMS.add_component
class RandomHorizontalFlip(GeometricTransform):
    """Mirror left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = arguments.probability("RandomHorizontalFlip", "prob", prob)

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        return [Mirror()] if rng.random() < self.prob else []


@manager.TRANSFORMS.add_component
class RandomScaleAspect(GeometricTransform):
    """Crop a random window of area ``min_scale``..1 of the image and aspect ratio ``aspect_ratio``..1/
    ``aspect_ratio``, resized back to the original size (up to 10 tries; unchanged if none fits)."""

    def __init__(self, min_scale: float = 0.5, aspect_ratio: float = 0.33):
        self.min_scale = arguments.probability("RandomScaleAspect", "min_scale", min_scale)
        self.aspect_ratio = arguments.number("RandomScaleAspect", "aspect_ratio", aspect_ratio, 0, 1)

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        if self.min_scale == 0 or self.aspect_ratio == 0:
            return []
        h, w = height, width
        for _ in range(10):
            area = h * w * rng.uniform(self.min_scale, 1.0)
            aspect = rng.uniform(self.aspect_ratio, 1.0 / self.aspect_ratio)
            dw, dh = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
            if rng.random() < 0.5:
                dw, dh = dh, dw
            if 0 < dh < h and 0 < dw < w:
                y, x = int(rng.integers(h - dh + 1)), int(rng.integers(w - dw + 1))
                return [Crop(x, y, dw, dh), Scale(w, h)]
        return []


@manager.TRANSFORMS.add_component
class RandomRotation(GeometricTransform):
    """Rotate by a random angle in [-max_rotation, max_rotation] degrees; the canvas grows to hold the whole
    rotated image, corners padded (image ``im_padding_value``, label ``label_padding_value``)."""

    def __init__(self, max_rotation: float = 15, im_padding_value: float = 127.5, label_padding_value: int = 255):
        self.max_rotation = arguments.number("RandomRotation", "max_rotation", max_rotation, 0, 180)
        self.im_padding_value = arguments.number("RandomRotation", "im_padding_value", im_padding_value)
        self.label_padding_value = arguments.label_value("RandomRotation", "label_padding_value", label_padding_value)

    def plan(self, rng: np.random.Generator, width: int, height: int) -> List[Step]:
        if self.max_rotation <= 0:
            return []
        angle = rng.uniform(-self.max_rotation, self.max_rotation)
        h, w = height, width
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        nw, nh = int(round(h * sin + w * cos)), int(round(h * cos + w * sin))
        matrix[0, 2] += (nw - w) / 2
        matrix[1, 2] += (nh - h) / 2
        return [Warp(matrix, nw, nh, self.im_padding_value, self.label_padding_value)]
