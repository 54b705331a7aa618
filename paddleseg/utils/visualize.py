"""Showing predictions: colour palettes, pseudo-colour label images and overlays on the photo.

    palette = get_palette(19)                       # Cityscapes colours, (256, 3) uint8
    save_pseudo_color(pred, "out/a.png", palette)   # 8-bit palette PNG: pixel values stay class ids
    blended = overlay(image_rgb, pred, palette)     # RGB uint8
"""
import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np
from PIL import Image

from paddleseg.utils.cityscapes_labels import IGNORE_INDEX, NUM_CLASSES, PALETTE

OVERLAY_WEIGHT = 0.6  # share of the photo in the overlay (PaddleSeg's default)


def get_palette(num_classes: int = NUM_CLASSES, custom_color: Optional[Sequence[int]] = None) -> np.ndarray:
    """A (256, 3) uint8 colour table indexed by class id.

    Classes 0..18 get the Cityscapes colours; further classes distinct generated colours; the ignore
    index (255) black. ``custom_color`` (``[r, g, b, r, g, b, …]``) overrides the first classes.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:NUM_CLASSES] = PALETTE
    used = {tuple(c) for c in PALETTE} | {(0, 0, 0)}
    candidate = 0
    for i in range(NUM_CLASSES, min(num_classes, IGNORE_INDEX)):
        color = (0, 0, 0)
        while color in used:  # next colour not taken: spread the bits of a counter over R, G, B
            candidate += 1
            rgb, value, shift = [0, 0, 0], candidate, 7
            while value:
                for c in range(3):
                    rgb[c] |= ((value >> c) & 1) << shift
                value >>= 3
                shift -= 1
            color = tuple(rgb)
        used.add(color)
        palette[i] = color
    palette[IGNORE_INDEX] = 0
    if custom_color is not None:
        colors = np.asarray(list(custom_color))
        if colors.size == 0 or colors.size % 3 or colors.min() < 0 or colors.max() > 255:
            raise ValueError(f"custom_color must be r, g, b triples of values 0..255, got {list(custom_color)}")
        colors = colors.reshape(-1, 3)[:256]
        palette[:len(colors)] = colors
    return palette


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) image of a class-id map (H, W)."""
    return palette[np.asarray(label, dtype=np.uint8)]


def overlay(image: np.ndarray, label: np.ndarray, palette: np.ndarray,
            weight: float = OVERLAY_WEIGHT) -> np.ndarray:
    """The RGB uint8 ``image`` blended with the colours of ``label``: ``weight`` of the photo."""
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape[:2]} differ in size")
    return cv2.addWeighted(image, weight, colorize(label, palette), 1.0 - weight, 0.0)


@contextlib.contextmanager
def _atomic(path: Union[str, Path]) -> Iterator[Path]:
    """A temporary name beside ``path`` (same suffix, so writers pick the same format) that replaces
    ``path`` only once it is completely written: a killed run never leaves a half-written image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_pseudo_color(label: np.ndarray, path: Union[str, Path], palette: np.ndarray) -> None:
    """Save a class-id map as an 8-bit palette PNG: shown in colour, read back as class ids."""
    image = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
    image.putpalette(palette.astype(np.uint8).flatten().tolist())
    with _atomic(path) as tmp:
        image.save(tmp)


def save_gray(label: np.ndarray, path: Union[str, Path]) -> None:
    """Save a (H, W) uint8 map as a single-channel PNG (raw ids)."""
    with _atomic(path) as tmp:
        Image.fromarray(np.asarray(label, dtype=np.uint8), mode="L").save(tmp)


def save_rgb(image: np.ndarray, path: Union[str, Path]) -> None:
    """Save an RGB uint8 image (format from the suffix)."""
    with _atomic(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: could not be written")
