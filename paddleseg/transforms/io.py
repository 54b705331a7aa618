"""Reading images and labels from disk: images as RGB uint8 (OpenCV), labels as single-channel uint8."""
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image

from paddleseg.errors import DatasetError

PathLike = Union[str, Path]


def read_image(path: PathLike) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3); grey images are expanded, alpha dropped."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if img is None:
        reason = "file not found" if not Path(path).is_file() else "unreadable or truncated image"
        raise DatasetError(f"{path}: {reason}")
    return img


def read_label(path: PathLike) -> np.ndarray:
    """A label file as a uint8 array (H, W) of class ids; palette PNGs give their indices, not colours."""
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
