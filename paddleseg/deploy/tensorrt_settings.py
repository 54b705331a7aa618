"""What ``--use_trt`` asks for: the range of input shapes TensorRT builds engines for, the precision,
and where converted programs are kept.

    shapes = check_shape_range(min_shape, opt_shape, max_shape)      # the three flags, or None
    trt = TensorRT(resolve_shape_range(deploy, shapes), "fp16", cache_dir)

A TensorRT engine takes the shapes it was built for only. Where the export fixes the input size (its
``input_shape``, or a Resize in deploy.yaml) the range is that one size; otherwise it must be given.
Images outside the range are skipped by name (:meth:`ShapeRange.contains`).
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.errors import DeployError

TRT_WORKSPACE = 1 << 30  # bytes TensorRT may use while building an engine (Paddle's default)
TRT_SHAPE_FLAGS = ("--trt_min_shape", "--trt_opt_shape", "--trt_max_shape")


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in shape)


@dataclass(frozen=True)
class ShapeRange:
    """The input shapes (N, C, H, W) a TensorRT engine is built for: any between ``min`` and ``max``,
    fastest at ``opt``."""
    min: Tuple[int, ...]
    opt: Tuple[int, ...]
    max: Tuple[int, ...]

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max))

    def __str__(self) -> str:
        if self.min == self.max:
            return shape_text(self.min)
        return f"{shape_text(self.min)} to {shape_text(self.max)} (best at {shape_text(self.opt)})"


@dataclass(frozen=True)
class TensorRT:
    """What ``--use_trt`` asks for: the shape range, ``fp32`` or ``fp16``, and where converted
    programs are kept."""
    shapes: ShapeRange
    precision: str
    cache_dir: Path


def default_trt_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paddleseg-infer" / "tensorrt"


def check_shape_range(min_shape: Optional[Sequence[int]], opt_shape: Optional[Sequence[int]],
                      max_shape: Optional[Sequence[int]]) -> Optional[ShapeRange]:
    """The range the three ``--trt_*_shape`` arguments give (None if none is given); DeployError
    unless all three are given, each N=1 (one image at a time) and C=3, with min <= opt <= max."""
    shapes = dict(zip(TRT_SHAPE_FLAGS, (min_shape, opt_shape, max_shape)))
    missing = [flag for flag, shape in shapes.items() if shape is None]
    if len(missing) == 3:
        return None
    if missing:
        raise DeployError(f"{' and '.join(missing)} missing: {', '.join(TRT_SHAPE_FLAGS[:2])} and "
                          f"{TRT_SHAPE_FLAGS[2]} go together (N C H W each)")
    for flag, shape in shapes.items():
        if shape[0] != 1:
            raise DeployError(f"{flag} {' '.join(map(str, shape))}: N must be 1 (tools/infer.py runs one image "
                              f"at a time)")
        if shape[1] != 3:
            raise DeployError(f"{flag} {' '.join(map(str, shape))}: C must be 3 (the model takes RGB images)")
    low, best, high = (tuple(int(v) for v in s) for s in (min_shape, opt_shape, max_shape))
    for axis, name in ((2, "H"), (3, "W")):
        if not low[axis] <= best[axis] <= high[axis]:
            raise DeployError(f"TensorRT shape range: {name} must be min <= opt <= max, got {low[axis]}, {best[axis]} "
                              f"and {high[axis]} ({', '.join(TRT_SHAPE_FLAGS)})")
    return ShapeRange(low, best, high)


def resolve_shape_range(deploy: DeployConfig, given: Optional[ShapeRange]) -> ShapeRange:
    """The range to build for: ``given`` (checked against the export), else the one input size the
    export allows (a fixed ``input_shape`` or a Resize in deploy.yaml). DeployError if neither."""
    export_shape = list(deploy.input_shape)
    resized = deploy.resize_hw()
    if given is None:
        hw = resized or (tuple(export_shape[2:]) if min(export_shape[2:]) > 0 else None)
        if hw is None:
            raise DeployError(f"--use_trt: this export takes any input size (input_shape {export_shape} in "
                              f"deploy.yaml), so TensorRT needs the range of sizes to build for: give "
                              f"{', '.join(TRT_SHAPE_FLAGS)} (N C H W each), e.g. --trt_min_shape 1 3 256 512 "
                              f"--trt_opt_shape 1 3 1024 2048 --trt_max_shape 1 3 1024 2048")
        shape = (1, 3, *hw)
        return ShapeRange(shape, shape, shape)
    for axis, name in ((1, "C"), (2, "H"), (3, "W")):
        fixed = export_shape[axis]
        if fixed > 0 and not given.min[axis] == given.opt[axis] == given.max[axis] == fixed:
            raise DeployError(f"TensorRT shape range {given}: this export's input_shape is {export_shape} "
                              f"(deploy.yaml), so {name} must be {fixed} in all three of {', '.join(TRT_SHAPE_FLAGS)}")
    if resized and not given.contains((1, 3, *resized)):
        raise DeployError(f"TensorRT shape range {given}: deploy.yaml resizes every image to {resized[1]}x{resized[0]} "
                          f"(W x H), outside the range; give a range that holds 1 3 {resized[0]} {resized[1]}, or "
                          f"leave out {', '.join(TRT_SHAPE_FLAGS)}")
    return given
