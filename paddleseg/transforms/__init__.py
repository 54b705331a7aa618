"""Transforms: pure functions ``(img, label, rng) -> (img, label)`` on an image and its label, registered
for YAML configs. Reading files is in :mod:`paddleseg.transforms.io`."""
from paddleseg.transforms.compose import Compose
from paddleseg.transforms.geometry import (RandomHorizontalFlip, RandomPaddingCrop, RandomRotation,
                                           RandomScaleAspect, Resize, ResizeByLong, ResizeByShort,
                                           ResizeStepScaling)
from paddleseg.transforms.io import read_image, read_label
from paddleseg.transforms.photometric import Normalize, RandomBlur, RandomDistort

__all__ = ["Compose", "Normalize", "RandomBlur", "RandomDistort", "RandomHorizontalFlip", "RandomPaddingCrop",
           "RandomRotation", "RandomScaleAspect", "Resize", "ResizeByLong", "ResizeByShort", "ResizeStepScaling",
           "read_image", "read_label"]
