"""An export's ``deploy.yaml``: read, every value checked, and the model files it names found.

    deploy = load_deploy(Path("output/export/deploy.yaml"))
    deploy.transforms, deploy.output_op, deploy.palette, deploy.model_file ...

export.py writes the ``Deploy`` section (model, params, onnx, openvino, input_name, input_shape, output_op,
num_classes, transforms, palette, label_ids, digests, verified_precisions); upstream PaddleSeg's exports have only
``model``, ``params`` and ``transforms``, and run too: a missing ``output_op`` means "labels if the
model gives (N, H, W), else the argmax over the channels", as upstream's ``--with_argmax`` does.

Every problem is a :class:`~paddleseg.deploy.errors.DeployError` naming the file, the key
(``Deploy.transforms[1].target_size``) and the value. A model file must be a regular file inside the
export folder (``../../etc/passwd`` is refused); whether its content is what it claims is checked
when a backend loads it (:mod:`paddleseg.deploy.model_files`). A key this code does not use is named
in a warning, not ignored silently.
"""
import logging
import math
import os
import re
import stat
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.precision import VerifiedPrecision, parse_verified
from paddleseg.utils import yaml_io

logger = logging.getLogger(__name__)

DEPLOY_FILE = "deploy.yaml"
OUTPUT_OPS = ("argmax", "softmax", "none")
INTERPOLATIONS = ("NEAREST", "LINEAR", "CUBIC", "AREA", "LANCZOS4")  # Resize.interp, as the training transform
MAX_SIDE = 16384  # pixels per side a Resize may ask for (OpenCV's resize takes up to 32767)
MAX_CLASSES = 256  # labels are written as 8-bit PNGs
KNOWN_KEYS = ("model", "params", "onnx", "onnx_opset", "openvino", "input_name", "input_shape", "output_op",
              "output_dtype", "num_classes", "transforms", "palette", "label_ids", "digests", "verified_precisions")
TRANSFORM_KEYS = {"Normalize": ("mean", "std"), "Resize": ("target_size", "interp", "keep_ratio")}
SHA256 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Normalize:
    """``(x / 255 - mean) / std`` per RGB channel."""
    mean: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: Tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Resize:
    """Every image to ``width`` x ``height`` (the aspect ratio is not kept)."""
    width: int
    height: int
    interp: str = "LINEAR"


@dataclass(frozen=True)
class DeployConfig:
    """The checked ``Deploy`` section of ``file``; model files as absolute paths inside ``folder``."""
    file: Path
    folder: Path
    model_file: Path
    params_file: Path
    onnx_file: Optional[Path] = None
    input_name: str = "x"
    input_shape: Tuple[int, int, int, int] = (-1, 3, -1, -1)
    output_op: Optional[str] = None  # None: not said (upstream's exports); see the module docstring
    num_classes: Optional[int] = None
    transforms: Tuple[Any, ...] = ()
    palette: Tuple[Tuple[int, int, int], ...] = ()
    label_ids: Optional[Tuple[int, ...]] = None
    digests: Dict[str, str] = field(default_factory=dict)  # file name in folder -> SHA-256
    openvino_file: Optional[Path] = None  # an OpenVINO IR (.xml, its .bin beside it)
    # backend -> precision -> what its accuracy check measured (paddleseg.deploy.precision)
    verified: Dict[str, Dict[str, VerifiedPrecision]] = field(default_factory=dict)

    def resize_hw(self) -> Optional[Tuple[int, int]]:
        """(H, W) every image is resized to before the model, or None (it keeps its size)."""
        sizes = [(t.height, t.width) for t in self.transforms if isinstance(t, Resize)]
        return sizes[-1] if sizes else None


class _Checker:
    """Checks values of one deploy.yaml; every error names the file and the key path."""

    def __init__(self, file: Path):
        self.file = file

    def fail(self, key: str, problem: str) -> DeployError:
        return DeployError(f"{self.file}: Deploy.{key}: {problem}")

    def integer(self, key: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected an integer from {low} to {high}, got {value!r}")
        return value

    def numbers(self, key: str, value: Any, count: int) -> Tuple[float, ...]:
        ok = isinstance(value, (list, tuple)) and len(value) == count and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if not ok:
            raise self.fail(key, f"expected {count} finite numbers, got {value!r}")
        return tuple(float(v) for v in value)

    def int_list(self, key: str, value: Any, low: int, high: int, max_len: int) -> List[int]:
        if not isinstance(value, (list, tuple)):
            raise self.fail(key, f"expected a list of integers, got {value!r}")
        if len(value) > max_len:
            raise self.fail(key, f"{len(value)} entries, at most {max_len} allowed")
        return [self.integer(f"{key}[{i}]", v, low, high) for i, v in enumerate(value)]

    def choice(self, key: str, value: Any, choices: Sequence[str]) -> str:
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value


def _keys(check: _Checker, key: str, given: Dict, known: Sequence[str]) -> None:
    unknown = [k for k in given if k not in known]
    for k in unknown:
        close = get_close_matches(str(k), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise check.fail(f"{key}.{k}", f"unknown key{hint}; known: {', '.join(known)}")


def _transform(check: _Checker, key: str, t: Any):
    if not isinstance(t, dict):
        raise check.fail(key, f"expected a mapping such as {{type: Normalize}}, got {t!r}")
    kind = t.get("type")
    if kind not in TRANSFORM_KEYS:
        raise check.fail(f"{key}.type", f"transform {kind!r} is not supported here "
                                        f"({', '.join(TRANSFORM_KEYS)})")
    _keys(check, key, {k: v for k, v in t.items() if k != "type"}, TRANSFORM_KEYS[kind])
    if kind == "Normalize":
        mean = check.numbers(f"{key}.mean", t.get("mean", [0.5] * 3), 3)
        std = check.numbers(f"{key}.std", t.get("std", [0.5] * 3), 3)
        if any(s == 0 for s in std):
            raise check.fail(f"{key}.std", f"a standard deviation of 0 divides by zero: {list(std)}")
        return Normalize(mean, std)
    if t.get("keep_ratio", False) is not False:
        raise check.fail(f"{key}.keep_ratio", "Resize with keep_ratio is not supported here (only a fixed size)")
    size = t.get("target_size")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise check.fail(f"{key}.target_size", f"expected [width, height], got {size!r}")
    width, height = (check.integer(f"{key}.target_size", v, 1, MAX_SIDE) for v in size)
    return Resize(width, height, check.choice(f"{key}.interp", t.get("interp", "LINEAR"), INTERPOLATIONS))


def _model_file(check: _Checker, key: str, name: Any, folder: Path) -> Path:
    """``folder/name`` if ``name`` is a relative path to a regular file inside ``folder``."""
    if not isinstance(name, str) or not name.strip():
        raise check.fail(key, f"expected a file name in {folder}, got {name!r}")
    real_folder = os.path.realpath(folder)
    path = Path(os.path.realpath(folder / name))
    if Path(name).is_absolute() or os.path.commonpath([real_folder, path]) != real_folder:
        raise check.fail(key, f"{name!r} is outside the export folder {folder}: the model files must sit in it")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DeployError(f"{folder}: incomplete export, missing {name} (export it again)") from None
    except OSError as e:
        raise check.fail(key, f"{name} cannot be read ({e.strerror or e})") from e
    if not stat.S_ISREG(mode):
        raise check.fail(key, f"{name} is not a regular file")
    return folder / name


def _digests(check: _Checker, value: Any) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and SHA256.match(v)
                                              for k, v in value.items()):
        raise check.fail("digests", "expected file name: SHA-256 (64 hexadecimal digits) pairs")
    return dict(value)


def parse_deploy(file: Path, deploy: Any) -> DeployConfig:
    """The :class:`DeployConfig` of a loaded ``Deploy`` section (``file`` names it in errors)."""
    check, folder = _Checker(file), file.parent
    if not isinstance(deploy, dict):
        raise DeployError(f"{file}: no 'Deploy' section (is {folder} a folder written by export.py?)")
    unknown = [k for k in deploy if k not in KNOWN_KEYS]
    if unknown:
        logger.warning("%s: Deploy.%s not used here (known: %s)", file, ", Deploy.".join(map(str, unknown)),
                       ", ".join(KNOWN_KEYS))
    model = _model_file(check, "model", deploy.get("model"), folder)
    params = _model_file(check, "params", deploy.get("params"), folder)
    onnx = _model_file(check, "onnx", deploy["onnx"], folder) if deploy.get("onnx") is not None else None
    openvino = (_model_file(check, "openvino", deploy["openvino"], folder) if deploy.get("openvino") is not None
                else None)
    verified = parse_verified(file, deploy.get("verified_precisions"))
    for backend, records in verified.items():
        for precision, record in records.items():
            if record.model is not None:
                _model_file(check, f"verified_precisions.{backend}.{precision}.model", record.model, folder)
    name = deploy.get("input_name", "x")
    if not isinstance(name, str) or not name:
        raise check.fail("input_name", f"expected the model input's name, got {name!r}")
    shape = tuple(check.int_list("input_shape", deploy.get("input_shape", [-1, 3, -1, -1]), -1, 1 << 16, 4))
    if len(shape) != 4 or shape[1] != 3 or 0 in shape:
        raise check.fail("input_shape", f"expected N 3 H W (positive, or -1 for any), got {list(shape)}")
    output_op = deploy.get("output_op")
    if output_op is not None:
        check.choice("output_op", output_op, OUTPUT_OPS)
    classes = deploy.get("num_classes")
    if classes is not None:
        check.integer("num_classes", classes, 1, MAX_CLASSES)
    transforms = deploy.get("transforms") or []
    if not isinstance(transforms, list):
        raise check.fail("transforms", f"expected a list of transforms, got {transforms!r}")
    palette = deploy.get("palette") or []
    if not isinstance(palette, list) or len(palette) > MAX_CLASSES:
        what = f"{len(palette)} colours" if isinstance(palette, list) else repr(palette)
        raise check.fail("palette", f"expected at most {MAX_CLASSES} [r, g, b] colours, got {what}")
    colours = tuple(tuple(check.int_list(f"palette[{i}]", c, 0, 255, 3)) for i, c in enumerate(palette))
    for i, c in enumerate(colours):
        if len(c) != 3:
            raise check.fail(f"palette[{i}]", f"expected [r, g, b], got {list(c)}")
    label_ids = deploy.get("label_ids")
    if label_ids is not None:
        label_ids = tuple(check.int_list("label_ids", label_ids, 0, 255, MAX_CLASSES))
    return DeployConfig(
        file=file, folder=folder, model_file=model, params_file=params, onnx_file=onnx, input_name=name,
        input_shape=shape, output_op=output_op, num_classes=classes,
        transforms=tuple(_transform(check, f"transforms[{i}]", t) for i, t in enumerate(transforms)),
        palette=colours, label_ids=label_ids, digests=_digests(check, deploy.get("digests")), openvino_file=openvino,
        verified=verified)


def load_deploy(file: Path) -> DeployConfig:
    """Read and check the export's ``deploy.yaml`` ``file`` (module docstring)."""
    file = Path(file)
    if not file.exists():
        raise DeployError(f"{file}: not found (is {file.parent} a folder written by export.py?)")
    try:
        data = yaml_io.load_file(file)
    except yaml_io.YAMLLimitError as e:  # an alias bomb, a recursive or too deep structure
        raise DeployError(f"{file}{yaml_io.position(e)}: refused: {yaml_io.problem(e)}") from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DeployError(f"{file}: not an export's deploy.yaml ({' '.join(str(e).split())})") from e
    except OSError as e:  # not a regular file, larger than a deploy.yaml can be, unreadable
        raise DeployError(f"{file}: cannot be read ({e.strerror or e})") from e
    return parse_deploy(file, data.get("Deploy") if isinstance(data, dict) else None)
