"""Photometric transforms: normalisation, colour distortion, blur. They change the image only; the label
and any other target pass through untouched.

Distortions work on uint8 with lookup tables and OpenCV colour conversions; a float image is rounded
to uint8 first (as PIL-based implementations do).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.cvlibs import arguments, manager

Pair = Tuple[np.ndarray, Optional[np.ndarray]]
_LEVELS = np.arange(256, dtype=np.float64)


def _as_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _lut(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


class PhotometricTransform:
    """A transform that changes the image's values only. Subclasses implement ``image(img, rng)``; the
    random numbers it draws come after those of the geometric transforms listed before it."""

    def image(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray], rng: np.random.Generator) -> Pair:
        return self.image(img, rng), label


@manager.TRANSFORMS.add_component
class Normalize(PhotometricTransform):
    """``(img / 255 - mean) / std`` per channel, as float32 (values of ``img`` in 0..255)."""

    def __init__(self, mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)):
        self.mean = arguments.numbers("Normalize", "mean", mean, 3)
        self.std = arguments.numbers("Normalize", "std", std, 3)
        for i, s in enumerate(self.std):
            arguments.positive("Normalize", f"std[{i}]", s)
        # per-channel table for uint8 images, computed as for float input so both paths agree exactly
        levels = (np.arange(256, dtype=np.float32) / np.float32(255.0))[:, None]
        table = ((levels - np.array(self.mean)) / np.array(self.std)).astype(np.float32)  # (256, 3)
        self._table = np.ascontiguousarray(table.reshape(256, 1, 3))  # cv2.LUT layout: float32 out
        self._mean = np.array(self.mean, dtype=np.float32)
        self._std = np.array(self.std, dtype=np.float32)

    def image(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if img.dtype == np.uint8:
            return cv2.LUT(img, self._table)
        img = img.astype(np.float32) / np.float32(255.0)
        return ((img - self._mean) / self._std).astype(np.float32)


@manager.TRANSFORMS.add_component
class RandomDistort(PhotometricTransform):
    """Random brightness, contrast, saturation, hue and sharpness changes, each applied with its
    probability, in a random order. A ``*_range`` of r draws the factor from [1 - r, 1 + r]; the hue
    shift is drawn from [-hue_range, hue_range] on a 0..255 hue circle."""

    def __init__(self, brightness_range: float = 0.5, brightness_prob: float = 0.5,
                 contrast_range: float = 0.5, contrast_prob: float = 0.5,
                 saturation_range: float = 0.5, saturation_prob: float = 0.5,
                 hue_range: int = 18, hue_prob: float = 0.5,
                 sharpness_range: float = 0.5, sharpness_prob: float = 0.0):
        factor_ranges = {"brightness_range": brightness_range, "contrast_range": contrast_range,
                         "saturation_range": saturation_range, "sharpness_range": sharpness_range}
        for name, value in factor_ranges.items():  # a factor from [1 - range, 1 + range] must not be negative
            arguments.number("RandomDistort", name, value, 0, 1)
        arguments.number("RandomDistort", "hue_range", hue_range, 0, 255)
        probs = {"brightness_prob": brightness_prob, "contrast_prob": contrast_prob,
                 "saturation_prob": saturation_prob, "hue_prob": hue_prob, "sharpness_prob": sharpness_prob}
        for name, value in probs.items():
            arguments.probability("RandomDistort", name, value)
        self.ops = [
            (self.brightness, brightness_prob, (1 - brightness_range, 1 + brightness_range)),
            (self.contrast, contrast_prob, (1 - contrast_range, 1 + contrast_range)),
            (self.saturation, saturation_prob, (1 - saturation_range, 1 + saturation_range)),
            (self.hue, hue_prob, (-hue_range, hue_range)),
            (self.sharpness, sharpness_prob, (1 - sharpness_range, 1 + sharpness_range)),
        ]

    def image(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = _as_uint8(img)
        for k in rng.permutation(len(self.ops)):
            op, prob, (low, high) = self.ops[k]
            factor = rng.uniform(low, high)
            if rng.random() < prob:
                img = op(img, factor)
        return img

    @staticmethod
    def brightness(img: np.ndarray, factor: float) -> np.ndarray:
        return cv2.LUT(img, _lut(_LEVELS * factor))

    @staticmethod
    def contrast(img: np.ndarray, factor: float) -> np.ndarray:
        mean = int(cv2.mean(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))[0] + 0.5)
        return cv2.LUT(img, _lut(mean + (_LEVELS - mean) * factor))

    @staticmethod
    def saturation(img: np.ndarray, factor: float) -> np.ndarray:
        grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(img, factor, grey, 1.0 - factor, 0.0)

    @staticmethod
    def hue(img: np.ndarray, shift: float) -> np.ndarray:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] = cv2.LUT(hsv[..., 0], ((np.arange(256) + int(round(shift))) % 256).astype(np.uint8))
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)

    @staticmethod
    def sharpness(img: np.ndarray, factor: float) -> np.ndarray:
        kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float32) / 13.0
        smooth = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        return cv2.addWeighted(img, factor, smooth, 1.0 - factor, 0.0)


@manager.TRANSFORMS.add_component
class RandomBlur(PhotometricTransform):
    """With probability about ``prob``, blur with an odd kernel of 3..9 pixels; ``blur_type`` is gaussian,
    median, blur (box) or random (one of them per sample)."""

    TYPES = ("gaussian", "median", "blur")

    def __init__(self, prob: float = 0.1, blur_type: str = "gaussian"):
        self.prob = arguments.probability("RandomBlur", "prob", prob)
        self.blur_type = arguments.one_of("RandomBlur", "blur_type", blur_type, self.TYPES + ("random",))

    def image(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return img
        size = min(int(rng.integers(3, 10)) | 1, 9)
        kind = self.TYPES[rng.integers(3)] if self.blur_type == "random" else self.blur_type
        if kind == "gaussian":
            img = cv2.GaussianBlur(img, (size, size), 0)
        elif kind == "median":
            img = cv2.medianBlur(_as_uint8(img), size)
        else:
            img = cv2.blur(img, (size, size))
        return img
