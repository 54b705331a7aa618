"""Geometric plans: the pixel steps a geometric transform decided on for one sample, and how they are fused.

A geometric transform first *plans* (draws its random numbers from ``rng`` and the current size alone)
and returns a list of steps; a step then moves the pixels of each array of the sample without drawing
anything. Each array has a *kind* that decides how a step resamples and pads it:

- ``IMAGE``: the step's interpolation (bilinear unless a transform asks otherwise), padded with the
  transform's image padding value (a uint8 image padded with a fractional value becomes float32);
- ``LABEL``: nearest neighbour, so no new ids appear, padded with the transform's label padding value
  (the ignore index).

:func:`fuse` is the only place where steps are merged: a bilinear :class:`Scale` directly followed by a
:class:`Crop` becomes one :class:`ScaleCrop`, which resamples only the window the crop keeps. Because
all random numbers were drawn when planning, fusing cannot change what was drawn; only the
interpolation rounding differs from running the two steps one after the other.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

IMAGE = "image"
LABEL = "label"
KINDS = (IMAGE, LABEL)
LABEL_INTERPOLATION = cv2.INTER_NEAREST_EXACT  # cv2.resize; warpAffine has only INTER_NEAREST


def padded(array: np.ndarray, kind: str, image_pad: float, label_pad: int) -> Tuple[np.ndarray, float]:
    """The array and the padding value of its kind, the array as float32 if it is uint8 and the value
    is not a whole number (an image padded with 127.5)."""
    value = float(image_pad if kind == IMAGE else label_pad)
    if array.dtype == np.uint8 and value != round(value):
        return array.astype(np.float32), value
    return array, value


class Step:
    """One pixel operation of a plan. ``apply`` draws no random numbers and works on one array of
    either kind; ``output_size`` gives the (width, height) it produces from an input of that size."""

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        raise NotImplementedError

    def apply(self, array: np.ndarray, kind: str) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Scale(Step):
    """Resize to ``width`` x ``height`` (``cv2.resize``, pixel centres aligned); images with ``interp``."""
    width: int
    height: int
    interp: int = cv2.INTER_LINEAR

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        return self.width, self.height

    def apply(self, array: np.ndarray, kind: str) -> np.ndarray:
        if (array.shape[1], array.shape[0]) == (self.width, self.height):
            return array
        interp = self.interp if kind == IMAGE else LABEL_INTERPOLATION
        return cv2.resize(array, (self.width, self.height), interpolation=interp)


@dataclass(frozen=True)
class Crop(Step):
    """The ``width`` x ``height`` window at (``x``, ``y``) of the array padded right and bottom to at
    least that size (the padding only matters when the window reaches past the array)."""
    x: int
    y: int
    width: int
    height: int
    image_pad: float = 0.0
    label_pad: int = 255

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        return self.width, self.height

    def apply(self, array: np.ndarray, kind: str) -> np.ndarray:
        pad_h, pad_w = max(self.height - array.shape[0], 0), max(self.width - array.shape[1], 0)
        if pad_h or pad_w:
            array, value = padded(array, kind, self.image_pad, self.label_pad)
            array = cv2.copyMakeBorder(array, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(value,) * 4)
        return array[self.y:self.y + self.height, self.x:self.x + self.width]


@dataclass(frozen=True)
class Mirror(Step):
    """Flip left-right."""

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        return width, height

    def apply(self, array: np.ndarray, kind: str) -> np.ndarray:
        return cv2.flip(array, 1)


@dataclass(frozen=True, eq=False)
class Warp(Step):
    """``cv2.warpAffine`` by the 2x3 ``matrix`` onto a ``width`` x ``height`` canvas; images bilinear,
    labels nearest; pixels from outside the array get the kind's padding value."""
    matrix: np.ndarray
    width: int
    height: int
    image_pad: float
    label_pad: int

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        return self.width, self.height

    def apply(self, array: np.ndarray, kind: str) -> np.ndarray:
        array, value = padded(array, kind, self.image_pad, self.label_pad)
        interp = cv2.INTER_LINEAR if kind == IMAGE else cv2.INTER_NEAREST
        return cv2.warpAffine(array, self.matrix, (self.width, self.height), flags=interp,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(value,) * 4)


@dataclass(frozen=True)
class ScaleCrop(Step):
    """``crop`` of the array bilinearly scaled by ``scale``, without building the scaled array.

    The window is sampled at the same source points as ``cv2.resize`` (pixel centres aligned) with
    ``cv2.warpAffine``: images bilinear, labels nearest. Results match the two steps up to interpolation
    rounding (about 2 grey levels; labels differ only at nearest-neighbour ties on region borders)."""
    scale: Scale
    crop: Crop

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        return self.crop.width, self.crop.height

    def apply(self, array: np.ndarray, kind: str) -> np.ndarray:
        h, w = array.shape[:2]
        sw, sh = self.scale.width, self.scale.height
        x0, y0, cw, ch = self.crop.x, self.crop.y, self.crop.width, self.crop.height
        vw, vh = min(cw, sw - x0), min(ch, sh - y0)  # the part of the window inside the scaled array
        fx, fy = w / sw, h / sh
        matrix = np.array([[fx, 0, (x0 + 0.5) * fx - 0.5], [0, fy, (y0 + 0.5) * fy - 0.5]])
        interp = cv2.INTER_LINEAR if kind == IMAGE else cv2.INTER_NEAREST
        window = cv2.warpAffine(array, matrix, (vw, vh), flags=interp | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
        if (vw, vh) == (cw, ch):
            return window
        window, value = padded(window, kind, self.crop.image_pad, self.crop.label_pad)
        out = np.full((ch, cw) + window.shape[2:], value, dtype=window.dtype)
        out[:vh, :vw] = window
        return out


def fuse(steps: Sequence[Step]) -> List[Step]:
    """The same steps with every bilinear :class:`Scale` directly followed by a :class:`Crop` merged
    into one :class:`ScaleCrop`; nothing else is merged."""
    fused: List[Step] = []
    for step in steps:
        if (isinstance(step, Crop) and fused and isinstance(fused[-1], Scale)
                and fused[-1].interp == cv2.INTER_LINEAR):
            fused[-1] = ScaleCrop(fused[-1], step)
        else:
            fused.append(step)
    return fused


def apply_steps(steps: Sequence[Step], array: np.ndarray, kind: str) -> np.ndarray:
    """``array`` after every step in order, resampled and padded as its ``kind`` (IMAGE or LABEL)."""
    if kind not in KINDS:
        raise ValueError(f"unknown array kind {kind!r}; expected one of {', '.join(KINDS)}")
    for step in steps:
        array = step.apply(array, kind)
    return array
