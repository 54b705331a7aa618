"""Showing predictions: colour palettes, pseudo-colour label images and overlays on the photo.

    palette = get_palette(19)                       # Cityscapes colours, (256, 3) uint8
    save_pseudo_color(pred, "out/a.png", palette)   # 8-bit palette PNG: pixel values stay class ids
    blended = overlay(image_rgb, pred, palette)     # RGB uint8

The pictures themselves (colorize, overlay, atomic saving) are the deployment runtime's
(:mod:`paddleseg.deploy.outputs`), the one implementation; the palette of a training config is here.
"""
from typing import Optional, Sequence

import numpy as np

from paddleseg.deploy.outputs import OVERLAY_WEIGHT, colorize, overlay, save_gray, save_pseudo_color, save_rgb
from paddleseg.utils.cityscapes_labels import IGNORE_INDEX, NUM_CLASSES, PALETTE

__all__ = ["OVERLAY_WEIGHT", "class_palette", "colorize", "get_palette", "overlay", "save_gray", "save_pseudo_color", "save_rgb"]


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


def class_palette(num_classes: int, colours: Optional[Sequence[Sequence[int]]] = None,
                  custom_color: Optional[Sequence[int]] = None) -> np.ndarray:
    """:func:`get_palette` with a data set's ``colours`` (one (r, g, b) per class, or None) over it, and
    ``custom_color`` (flat r, g, b, ...: predict.py's --custom_color) over those."""
    palette = get_palette(num_classes, [v for c in colours for v in c] if colours else None)
    if custom_color is not None:
        palette[:len(custom_color) // 3] = get_palette(num_classes, custom_color)[:len(custom_color) // 3]
    return palette
