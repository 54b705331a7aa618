"""Reading images and labels from disk: images as RGB uint8 (OpenCV), labels as single-channel uint8.

The common case, an 8-bit RGB image or 8-bit grey label in PNG (all of Cityscapes), is decoded with
libspng (pyspng), about a fifth faster than OpenCV's decoder and already in RGB order; PNG is
lossless, so the pixels are the same. Every other file, and any file libspng refuses, goes through
OpenCV / Pillow, which also produce the error messages.

Before anything is decoded the size is read from the file's header (Pillow reads only the header on
``Image.open``): a file of more than ``max_pixels`` pixels raises :class:`ImageTooLarge`. Some
kilobytes of compressed zeros can otherwise claim 20000x20000 pixels and take gigabytes to decode
(a "decompression bomb"). The default limit is Pillow's own.
"""
import re
import sys
import warnings
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np
import pyspng
from PIL import Image, UnidentifiedImageError

from paddleseg.errors import DatasetError

PathLike = Union[str, Path]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB, _GREY = 2, 0  # PNG colour types
# Pillow's own limit (2 * Image.MAX_IMAGE_PIXELS, where it raises DecompressionBombError): 178956970
MAX_PIXELS = 2 * 89_478_485


class ImageTooLarge(DatasetError):
    """An image whose header claims more pixels than the limit; it was not decoded."""


def header_pixels(path: PathLike, kind: str = "image") -> Tuple[int, str]:
    """The number of pixels ``path`` holds according to its header (nothing is decoded), and its size
    as text (``'4000x3000'``; empty when only the count is known). DatasetError if the file is missing
    or its header is not an image's (``kind`` names the file in it: ``'image'``, ``'label image'``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
        return width * height, f"{width}x{height}"
    except Image.DecompressionBombError as e:
        # Pillow refuses files above its own limit before giving the size; its message has the count
        # (tests/test_io.py fails if that changes; until then an unknown count counts as too many)
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(found.group(1)) if found else sys.maxsize
        return pixels, ""
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: file not found") from e
    except UnidentifiedImageError as e:
        raise DatasetError(f"{path}: unreadable or truncated {kind} (not an image format Pillow knows)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable or truncated {kind} ({e})") from e


def check_pixels(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS, kind: str = "image") -> None:
    """Raise :class:`ImageTooLarge` if ``path``'s header claims more than ``max_pixels`` pixels (None:
    no limit), DatasetError if it has no readable image header."""
    pixels, size = header_pixels(path, kind)
    if max_pixels is not None and pixels > max_pixels:
        described = f"{size} = {pixels}" if size else str(pixels)
        raise ImageTooLarge(f"{path}: {kind} of {described} pixels is above the limit of {max_pixels} pixels; "
                            f"not decoded (a decompression bomb?)")


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


def read_image(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3); grey images are expanded, alpha dropped.

    Raises :class:`ImageTooLarge` without decoding above ``max_pixels`` pixels (None: no limit)."""
    check_pixels(path, max_pixels)
    img = _fast_png(path, _RGB)
    if img is not None:
        return img
    img = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if img is None:
        reason = "file not found" if not Path(path).is_file() else "unreadable or truncated image"
        raise DatasetError(f"{path}: {reason}")
    return img


def _webp_is_lossy(im: Image.Image) -> bool:
    """A WebP file is lossless when its image chunk is ``VP8L``, lossy when it is ``VP8 `` (after an
    optional ``VP8X`` header and ``ALPH`` chunk)."""
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
    check_pixels(path, max_pixels, "label image")
    label = _fast_png(path, _GREY)
    if label is not None:
        return label
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked above
            with Image.open(path) as im:
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
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: file not found") from e
    except Image.DecompressionBombError as e:  # above Pillow's own limit, with max_pixels raised past it
        raise ImageTooLarge(f"{path}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated or corrupt files
        raise DatasetError(f"{path}: unreadable or truncated label image ({e})") from e
    return label
