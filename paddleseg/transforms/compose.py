"""Compose: a list of transforms applied to an (image, label) pair, ending in CHW float32 / int64."""
from typing import Optional, Tuple

import numpy as np

from paddleseg.cvlibs import manager
from paddleseg.transforms.geometry import RandomPaddingCrop, ResizeStepScaling, scale_and_crop


@manager.TRANSFORMS.add_component
class Compose:
    """Apply ``transforms`` in order; return the image as (3, H, W) float32 and the label as (H, W) int64.

    Every transform is a pure function ``(img, label, rng) -> (img, label)``. Images stay uint8 for as
    long as the transforms allow (``Normalize`` makes them float32). A ``ResizeStepScaling`` directly
    followed by ``RandomPaddingCrop`` runs as one step that only resamples the cropped window: it draws
    the same random numbers and gives the same result (up to interpolation rounding) without
    materialising the scaled full image. ``fuse=False`` runs every transform on its own.
    """

    def __init__(self, transforms: list, fuse: bool = True):
        if not isinstance(transforms, (list, tuple)):
            raise TypeError(f"Compose: transforms must be a list of transforms, got {type(transforms).__name__}")
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not a transform (not callable)")
        self.transforms = list(transforms)
        self.fuse = fuse

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray],
                 rng: np.random.Generator) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        i, ts = 0, self.transforms
        while i < len(ts):
            if (self.fuse and isinstance(ts[i], ResizeStepScaling) and i + 1 < len(ts)
                    and isinstance(ts[i + 1], RandomPaddingCrop)):
                img, label = scale_and_crop(ts[i], ts[i + 1], img, label, rng)
                i += 2
            else:
                img, label = ts[i](img, label, rng)
                i += 1
        img = np.ascontiguousarray(np.transpose(img, (2, 0, 1)), dtype=np.float32)
        if label is not None:
            label = label.astype(np.int64)
        return img, label

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"

