"""Reading images and labels from disk: images as RGB uint8 (OpenCV), labels as single-channel uint8.

The common case, an 8-bit RGB image or 8-bit grey label in PNG (all of Cityscapes), is decoded with
libspng (pyspng), about a fifth faster than OpenCV's decoder and already in RGB order; PNG is
lossless, so the pixels are the same. Every other file, and any file libspng refuses, goes through
OpenCV / Pillow, which also produce the error messages.
"""
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import pyspng
from PIL import Image

from paddleseg.errors import DatasetError

PathLike = Union[str, Path]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB, _GREY = 2, 0  # PNG colour types


def _fast_png(path: PathLike, colour_type: int) -> Optional[np.ndarray]:
    """The pixels of an 8-bit PNG of ``colour_type`` via libspng, or None to use the general reader."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    # IHDR: bit depth at byte 24, colour type at byte 25
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[24] != 8 or data[25] != colour_type:
        return None
    try:
        return pyspng.load(data)
    except RuntimeError:  # truncated or corrupt: the general reader names the problem
        return None


def read_image(path: PathLike) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3); grey images are expanded, alpha dropped."""
    img = _fast_png(path, _RGB)
    if img is not None:
        return img
    img = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if img is None:
        reason = "file not found" if not Path(path).is_file() else "unreadable or truncated image"
        raise DatasetError(f"{path}: {reason}")
    return img


def read_label(path: PathLike) -> np.ndarray:
    """A label file as a uint8 array (H, W) of class ids; palette PNGs give their indices, not colours."""
    label = _fast_png(path, _GREY)
    if label is not None:
        return label
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DatasetError(f"{path}: a label must be a single-channel 8-bit image (mode L or P), "
                                   f"got mode {im.mode}")
            label = np.asarray(im)
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: file not found") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated or corrupt files
        raise DatasetError(f"{path}: unreadable or truncated label image ({e})") from e
    return label
