"""Reading images and labels from disk: images as RGB uint8, labels as single-channel uint8.

Files are read, and their headers checked against the pixel limit, by :mod:`paddleseg.deploy.images`
(the deployment runtime's reader, the one implementation): only regular files, nothing decoded above
``max_pixels`` (:class:`ImageTooLarge`), any file name. On top of it, for training's speed:

The common case, an 8-bit RGB image or 8-bit grey label in PNG (all of Cityscapes), is decoded with
libspng (pyspng), faster than OpenCV's decoder (docs/performance.md) and already in RGB order; PNG is
lossless, so the pixels are the same. Every other file, and any file libspng refuses, goes through
OpenCV / Pillow, which also produce the error messages.
"""
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pyspng
from PIL import Image

from paddleseg.deploy.errors import ImageTooLarge  # noqa: F401  (raised here; callers catch it from here)
from paddleseg.deploy.images import MAX_PIXELS, check_pixels, decode, header_pixels, open_image, read_checked  # noqa: F401
from paddleseg.errors import DatasetError

PathLike = Union[str, Path]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB, _GREY = 2, 0  # PNG colour types


def _fast_png(data: bytes, colour_type: int) -> Optional[np.ndarray]:
    """The pixels of an 8-bit PNG of ``colour_type`` via libspng, or None to use the general reader."""
    # IHDR: bit depth at byte 24, colour type at byte 25
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[24] != 8 or data[25] != colour_type:
        return None
    try:
        return pyspng.load(data)
    except RuntimeError:  # truncated or corrupt: the general reader names the problem
        return None


def read_image(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3); grey images are expanded, alpha dropped.

    Raises :class:`ImageTooLarge` without decoding above ``max_pixels`` pixels (None: no limit)."""
    data = read_checked(path, max_pixels)
    img = _fast_png(data, _RGB)
    return img if img is not None else decode(data, path)


def _webp_is_lossy(im: Image.Image) -> bool:
    """A WebP file is lossless when its image chunk is ``VP8L``, lossy when it is ``VP8 `` (after an
    optional ``VP8X`` header and ``ALPH`` chunk). Call it before ``im.load()``, which closes the file (a
    closed file counts as lossy)."""
    fp = getattr(im, "fp", None)
    if fp is None:
        return True
    position = fp.tell()
    try:
        fp.seek(12)
        head = fp.read(4096)
    finally:
        fp.seek(position)
    lossless, lossy = head.find(b"VP8L"), head.find(b"VP8 ")
    return lossy >= 0 and (lossless < 0 or lossy < lossless)


def lossy_format(im: Image.Image) -> Optional[str]:
    """The name of ``im``'s file format if it compresses lossily (JPEG, lossy WebP, JPEG-in-TIFF), else
    None. What a label file is, is read from its content, not its name."""
    fmt = im.format or ""
    if fmt in ("JPEG", "MPO", "JPEG2000"):
        return fmt
    if fmt == "WEBP" and _webp_is_lossy(im):
        return "lossy WebP"
    if fmt == "TIFF" and str(im.info.get("compression", "")).lower().startswith("jpeg"):
        return "JPEG-compressed TIFF"
    return None


def read_label(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS) -> np.ndarray:
    """A label file as a uint8 array (H, W) of class ids; palette PNGs give their indices, not colours.

    Raises :class:`ImageTooLarge` without decoding above ``max_pixels`` pixels (None: no limit)."""
    data = read_checked(path, max_pixels, "label image")
    label = _fast_png(data, _GREY)
    if label is not None:
        return label
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked above
            im = open_image(data)
        with im:
            lossy = lossy_format(im)
            if lossy:
                named = f", though the file is named {Path(path).suffix}" if Path(path).suffix.lower() in (
                    ".png", ".bmp", ".tif", ".tiff") else ""
                raise DatasetError(f"{path}: the label image is stored as {lossy}{named}: lossy compression "
                                   f"changes class ids near every edge and invents new ones; save labels as PNG")
            if im.mode not in ("L", "P"):
                raise DatasetError(f"{path}: a label must be a single-channel 8-bit image (mode L or P), "
                                   f"got mode {im.mode}")
            label = np.asarray(im)
    except Image.DecompressionBombError as e:  # above Pillow's own limit, with max_pixels raised past it
        raise ImageTooLarge(f"{path}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated or corrupt files
        raise DatasetError(f"{path}: unreadable or truncated label image ({e})") from e
    return label
