"""Reading input images: only regular files, the pixel count checked from the header before anything
is decoded, any file name (bytes that are not UTF-8 included).

    image = read_rgb(path)               # RGB uint8 (H, W, 3); ImageError names the path and the problem
    data = read_checked(path)            # the file's bytes, once its header passed the pixel limit
    pixels = decode(data, path, cv2.IMREAD_UNCHANGED)

A list file may name a FIFO or a device: it is opened without blocking and refused unless it is a
regular file (:mod:`paddleseg.utils.regular_file`), so nothing hangs. Some kilobytes of compressed
zeros can claim 20000x20000 pixels and take gigabytes to decode (a "decompression bomb"): Pillow reads
only the header first, and a file claiming more than ``max_pixels`` raises :class:`ImageTooLarge`. The
default limit is Pillow's own. The pixels are decoded by OpenCV from the bytes in memory
(``cv2.imdecode``): OpenCV's own file functions crash on a path that is not valid UTF-8.

:mod:`paddleseg.transforms.io` (training and evaluation) reads through these functions too.
"""
import io
import re
import sys
import warnings
from pathlib import Path
from typing import BinaryIO, Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from paddleseg.deploy.errors import ImageError, ImageTooLarge
from paddleseg.utils.regular_file import NotRegularFileError, open_regular

PathLike = Union[str, Path]
# Pillow's own limit (2 * Image.MAX_IMAGE_PIXELS, where it raises DecompressionBombError): 178956970
MAX_PIXELS = 2 * 89_478_485


def _header(f: BinaryIO, path: PathLike, kind: str) -> Tuple[int, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                width, height = im.size
        return width * height, f"{width}x{height}"
    except Image.DecompressionBombError as e:
        # Pillow refuses files above its own limit before giving the size; its message has the count
        # (tests/test_deploy_images.py fails if that changes; until then an unknown count counts as too many)
        found = re.search(r"\((\d+) pixels\)", str(e))
        return (int(found.group(1)) if found else sys.maxsize), ""
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: unreadable or truncated {kind} (not an image format Pillow knows)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: unreadable or truncated {kind} ({e})") from e


def _open(path: PathLike, kind: str) -> BinaryIO:
    try:
        return open_regular(path)
    except FileNotFoundError as e:
        raise ImageError(f"{path}: file not found") from e
    except NotRegularFileError as e:
        raise ImageError(str(e)) from e  # names the path and what it is: a FIFO, a device, a folder
    except OSError as e:
        raise ImageError(f"{path}: cannot be read ({e.strerror or e})") from e


def header_pixels(path: PathLike, kind: str = "image") -> Tuple[int, str]:
    """The number of pixels ``path`` holds according to its header (nothing is decoded), and its size
    as text (``'4000x3000'``; empty when only the count is known). ImageError if the file is missing,
    not a regular file, or its header is not an image's (``kind`` names the file in messages)."""
    with _open(path, kind) as f:
        return _header(f, path, kind)


def _check(pixels: int, size: str, path: PathLike, max_pixels: Optional[int], kind: str) -> None:
    if max_pixels is not None and pixels > max_pixels:
        described = f"{size} = {pixels}" if size else str(pixels)
        raise ImageTooLarge(f"{path}: {kind} of {described} pixels is above the limit of {max_pixels} pixels; "
                            f"not decoded (a decompression bomb?)")


def check_pixels(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS, kind: str = "image") -> None:
    """Raise :class:`ImageTooLarge` if ``path``'s header claims more than ``max_pixels`` pixels (None:
    no limit), ImageError if it has no readable image header."""
    _check(*header_pixels(path, kind), path, max_pixels, kind)


def read_checked(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS, kind: str = "image") -> bytes:
    """The bytes of the image file ``path`` after its header passed :func:`check_pixels`: one open,
    and nothing beyond the header read from a file that is refused."""
    with _open(path, kind) as f:
        _check(*_header(f, path, kind), path, max_pixels, kind)
        f.seek(0)
        try:
            return f.read()
        except OSError as e:
            raise ImageError(f"{path}: cannot be read ({e.strerror or e})") from e


def decode(data: bytes, path: PathLike, flags: int = cv2.IMREAD_COLOR_RGB, kind: str = "image") -> np.ndarray:
    """The pixels of an encoded image (``flags`` as for ``cv2.imdecode``); ImageError naming ``path``."""
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    if img is None:
        raise ImageError(f"{path}: unreadable or truncated {kind}")
    return img


def read_rgb(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3); grey images are expanded, alpha dropped.

    Raises :class:`ImageTooLarge` without decoding above ``max_pixels`` pixels (None: no limit), and
    :class:`ImageError` for any other file that cannot be used."""
    return decode(read_checked(path, max_pixels), path)


def open_image(data: bytes) -> Image.Image:
    """Pillow's view of bytes :func:`read_checked` returned (for labels: palette indices, modes)."""
    return Image.open(io.BytesIO(data))
