"""Transforms, registered for YAML configs: geometric ones plan pixel steps that move the image and every
target alike, photometric ones change the image only; :class:`Compose` runs a list of them on a sample
(see its module docstring for adding a target such as an edge map). Reading files is in
:mod:`paddleseg.transforms.io`."""
from paddleseg.transforms.compose import Compose
from paddleseg.transforms.geometry import (
                                           GeometricTransform,
                                           RandomHorizontalFlip,
                                           RandomPaddingCrop,
                                           RandomRotation,
                                           RandomScaleAspect,
                                           Resize,
                                           ResizeByLong,
                                           ResizeByShort,
                                           ResizeStepScaling,
)
from paddleseg.transforms.io import read_image, read_label
from paddleseg.transforms.photometric import Normalize, PhotometricTransform, RandomBlur, RandomDistort

__all__ = ["Compose", "GeometricTransform", "Normalize", "PhotometricTransform", "RandomBlur", "RandomDistort",
           "RandomHorizontalFlip", "RandomPaddingCrop", "RandomRotation", "RandomScaleAspect", "Resize",
           "ResizeByLong", "ResizeByShort", "ResizeStepScaling", "read_image", "read_label"]
