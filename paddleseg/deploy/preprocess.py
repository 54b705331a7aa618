"""The preprocessing deploy.yaml describes, as one function of an RGB image.

    preprocess = make_preprocess(deploy.transforms)
    x = preprocess(image)          # RGB uint8 (H, W, 3) -> (1, 3, h, w) float32, C-contiguous

Normalize divides by 255 and standardises per channel, in float32 as the training transform does;
Resize goes to a fixed [width, height] with OpenCV's interpolation of the same name.
"""
from typing import Callable, List, Sequence, Union

import cv2
import numpy as np

from paddleseg.deploy.config import Normalize, Resize

Preprocess = Callable[[np.ndarray], np.ndarray]
CV2_INTERPOLATION = {"NEAREST": cv2.INTER_NEAREST, "LINEAR": cv2.INTER_LINEAR, "CUBIC": cv2.INTER_CUBIC,
                     "AREA": cv2.INTER_AREA, "LANCZOS4": cv2.INTER_LANCZOS4}


def _step(t: Union[Normalize, Resize]) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(t, Normalize):
        mean, std = np.asarray(t.mean, dtype=np.float32), np.asarray(t.std, dtype=np.float32)
        return lambda img: (img.astype(np.float32) / np.float32(255.0) - mean) / std
    size, interpolation = (t.width, t.height), CV2_INTERPOLATION[t.interp]
    return lambda img: cv2.resize(img, size, interpolation=interpolation)


def _normalized_planes(img: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(img / 255 - mean) / std`` of a uint8 (H, W, C) image as (1, C, H, W) float32, bit for bit the
    same arithmetic as :func:`_step`'s Normalize followed by the transpose, one contiguous plane at a time
    (about 10x faster than the array-wide passes and the transposing copy: docs/performance.md)."""
    out = np.empty((1, img.shape[2]) + img.shape[:2], dtype=np.float32)
    for c, plane in enumerate(cv2.split(img)):
        o = out[0, c]
        np.divide(plane, np.float32(255.0), out=o, dtype=np.float32)
        np.subtract(o, mean[c], out=o)
        np.divide(o, std[c], out=o)
    return out


def make_preprocess(transforms: Sequence[Union[Normalize, Resize]]) -> Preprocess:
    """RGB uint8 (H, W, 3) -> (1, 3, h, w) float32 through ``transforms`` in order."""
    transforms = list(transforms)
    last = transforms[-1] if transforms else None
    fused = isinstance(last, Normalize) and len(last.mean) == len(last.std)
    steps: List[Callable[[np.ndarray], np.ndarray]] = [_step(t) for t in transforms]
    if fused:
        mean, std = np.asarray(last.mean, dtype=np.float32), np.asarray(last.std, dtype=np.float32)

    def preprocess(img: np.ndarray) -> np.ndarray:
        for step in steps[:-1] if fused else steps:
            img = step(img)
        if fused:
            if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == len(mean):
                return _normalized_planes(img, mean, std)
            img = steps[-1](img)
        return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)

    return preprocess
