"""Compose: a list of transforms applied to a sample, ending in CHW float32 / int64.

A sample is a dict of arrays: ``"img"``, the (H, W, C) image, and its targets, each (H, W): ``"label"``
and any other per-pixel map. A transform is one of two kinds, and Compose treats each kind one way:

- geometric (:class:`~paddleseg.transforms.geometry.GeometricTransform`): ``plan(rng, width, height)``
  draws the transform's random numbers from the size alone and returns pixel steps
  (:mod:`paddleseg.transforms.plan`) that move the image and every target alike;
- photometric (:class:`~paddleseg.transforms.photometric.PhotometricTransform`): ``image(img, rng)``
  changes the image only.

For a run of consecutive geometric transforms, Compose first plans each one in list order, then moves
the pixels once. Planning draws every random number and moving draws none, so the numbers drawn are
the ones the transforms draw when run one by one, whatever the steps are merged into. With ``fuse``
on, :func:`paddleseg.transforms.plan.fuse` merges a bilinear scale directly followed by a crop (the
``ResizeStepScaling``, ``RandomPaddingCrop`` of the shipped configs) into one step that resamples only
the crop window, never building the scaled full image. ``fuse=False`` applies every step on its own;
only interpolation rounding differs.

Adding a second target, such as an edge map:

1. put it in the sample next to the label, ``compose.apply({"img": img, "label": label, "edge": edge},
   rng)``, where the dataset reads the sample (``__call__`` is the image-and-label shorthand);
2. every key other than ``"img"`` is resampled as a label (:func:`kind_of`): nearest neighbour, padded
   with the transform's label padding value (the ignore index). So geometric transforms move the edge
   map exactly as the label and photometric ones leave it alone; nothing else changes;
3. a target that needs other rules, say a float edge map resampled bilinearly and padded with 0, gets a
   kind of its own in :mod:`~paddleseg.transforms.plan` (handled in each step's ``apply``), and
   :func:`kind_of` maps its key to that kind.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

from paddleseg.cvlibs import manager
from paddleseg.transforms.geometry import GeometricTransform
from paddleseg.transforms.photometric import PhotometricTransform
from paddleseg.transforms.plan import IMAGE, LABEL, Step, apply_steps, fuse

Sample = Dict[str, np.ndarray]


def kind_of(key: str) -> str:
    """How the geometric steps resample the sample's array ``key``: the image as IMAGE, targets as LABEL."""
    return IMAGE if key == "img" else LABEL


@manager.TRANSFORMS.add_component
class Compose:
    """Apply ``transforms`` in order; return the image as (3, H, W) float32 and the label as (H, W) int64.

    Images stay uint8 for as long as the transforms allow (``Normalize`` makes them float32). Runs of
    geometric transforms are planned first and their steps fused (see the module docstring);
    ``fuse=False`` applies every step on its own, drawing the same random numbers.
    """

    def __init__(self, transforms: list, fuse: bool = True):
        if not isinstance(transforms, (list, tuple)):
            raise TypeError(f"Compose: transforms must be a list of transforms, got {type(transforms).__name__}")
        for t in transforms:
            if not isinstance(t, (GeometricTransform, PhotometricTransform)):
                raise TypeError(f"Compose: {t!r} is not a transform: a transform subclasses GeometricTransform "
                                f"(moves pixels) or PhotometricTransform (changes the image only)")
        self.transforms = list(transforms)
        self.fuse = fuse

    def __call__(self, img: np.ndarray, label: Optional[np.ndarray],
                 rng: np.random.Generator) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        sample = self.apply({"img": img} if label is None else {"img": img, "label": label}, rng)
        img = np.ascontiguousarray(np.transpose(sample["img"], (2, 0, 1)), dtype=np.float32)
        label = sample.get("label")
        return img, None if label is None else label.astype(np.int64)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """The transformed ``sample`` (``"img"`` and any targets), arrays in their own layout and dtype."""
        height, width = sample["img"].shape[:2]
        for key, array in sample.items():
            if array.shape[:2] != (height, width):
                raise ValueError(f"Compose: sample[{key!r}] is {array.shape[1]}x{array.shape[0]}, "
                                 f"the image {width}x{height}")
        sample = dict(sample)
        planned: List[Step] = []  # steps of the current geometric run, not applied yet
        for t in self.transforms:
            if isinstance(t, GeometricTransform):
                for step in t.plan(rng, width, height):
                    width, height = step.output_size(width, height)
                    planned.append(step)
            else:
                sample = self.move(sample, planned)
                planned = []
                sample["img"] = t.image(sample["img"], rng)
        return self.move(sample, planned)

    def move(self, sample: Sample, steps: List[Step]) -> Sample:
        """Every array of ``sample`` after the geometric ``steps`` (fused if ``self.fuse``)."""
        if not steps:
            return sample
        steps = fuse(steps) if self.fuse else steps
        return {key: apply_steps(steps, array, kind_of(key)) for key, array in sample.items()}

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
