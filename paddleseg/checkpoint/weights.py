"""Loading model weights: our checkpoints and both released ESPNetV2 formats, strictly by default.

Every file is read with :func:`~paddleseg.checkpoint.safe_load.safe_load`, which cannot run code.

Upstream PaddleSeg skips keys that are missing, unexpected or of the wrong shape with a warning, so a
checkpoint for another scale or class count "loads" and silently evaluates random weights. Here any
such key is an error that names it; ``strict=False`` (for fine-tuning with another number of
classes) loads what matches and reports what it skipped.
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import paddle

from paddleseg.checkpoint import released
from paddleseg.checkpoint.safe_load import safe_load
from paddleseg.errors import CheckpointError
from paddleseg.utils.regular_file import describe_kind

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pdparams"
_SHOWN = 8  # keys listed per kind in an error message


@dataclass
class LoadReport:
    """What :func:`load_entire_model` did: loaded keys and, in non-strict mode, what it skipped."""

    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        def listing(keys):
            more = f" … and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
            return ", ".join(keys[:_SHOWN]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s) (in the model, not in the file): {listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s) (in the file, not in the model): "
                         f"{listing(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k} file {list(f)} vs model {list(m)}" for k, f, m in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {listing(shapes)}")
        return "; ".join(parts)


def resolve_weights_path(path: Union[str, Path]) -> Path:
    """The weights file of a checkpoint given as a ``.pdparams`` file, as a folder (``iter_N/``,
    ``best_model/``) holding ``model.pdparams``, as an ``http(s)://`` URL or as the name of a released
    model (both downloaded once into the verified cache of :mod:`~paddleseg.checkpoint.released`);
    :func:`checkpoint_folder` is the other direction. A local file or folder wins over a released name."""
    text = str(path)
    if released.is_url(text):
        return released.fetch(text)
    path = Path(path)
    if text in released.RELEASED and not path.exists():
        return released.released_weights(text)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        if path.exists():  # a FIFO, a device (/dev/zero), a socket
            raise CheckpointError(f"{path}: is {describe_kind(path.stat().st_mode)}, not a checkpoint file")
        raise CheckpointError(f"{path}: checkpoint file not found{released.name_hint(text)}")
    return path


def checkpoint_folder(path: Union[str, Path]) -> Path:
    """The folder of a checkpoint given as its folder or as its ``model.pdparams``."""
    path = Path(path)
    return path.parent if path.is_file() and path.name == MODEL_FILE else path


def read_state_dict(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Read a ``.pdparams`` file into ``{key: array}`` without running code from it, with a clear
    error for a bad or unsafe file."""
    path = resolve_weights_path(path)
    state = safe_load(path)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: holds no state dict (got {type(state).__name__})")
    return state


def check_weight(source: Union[str, Path], key: str, value: object, shape: Tuple[int, ...],
                 dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype`` for the model weight ``key`` of ``shape``, or a CheckpointError
    naming ``source`` and ``key``: it must be a floating-point array of that shape with finite values
    (an ``int``, a string, a bool or complex array, NaN or inf would load as garbage or fail inside
    Paddle). Half and double precision are converted, as PyTorch's ``load_state_dict`` does."""
    where = f"{source}: weight '{key}'"
    if not isinstance(value, np.ndarray):
        raise CheckpointError(f"{where} is a {type(value).__name__}, not an array")
    if value.dtype.kind != "f":
        raise CheckpointError(f"{where} has the dtype {value.dtype}; weights are floating-point numbers")
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(f"{where} has shape {list(value.shape)}, the model's is {list(shape)}")
    if not np.isfinite(value).all():
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        raise CheckpointError(f"{where} holds {bad} NaN or infinite value(s) (a diverged training run?); "
                              f"the model would predict garbage")
    return value.astype(dtype, copy=False)


def _format_hint(file_keys: List[str], model_keys: List[str]) -> str:
    """Name the likely cause when the file is the other released format."""
    def flavour(keys):
        if any("._prelu.act_func." in k for k in keys):
            return "upstream PaddleSeg (model type ESPNetV2)"
        if any("._act._weight" in k and "._bn." in "".join(keys) for k in keys):
            return "the reference reproduction (model type EESPNetHead with backbone EESPNet)"
        return None

    theirs, ours = flavour(file_keys), flavour(model_keys)
    if theirs and ours and theirs != ours:
        return f" The file is in the format of {theirs}; the config builds {ours}."
    return ""


def _numpy_dtype(tensor: paddle.Tensor) -> np.dtype:
    """The NumPy dtype of a model tensor (float32 for the models here; bfloat16 has no NumPy dtype)."""
    name = str(tensor.dtype).replace("paddle.", "")
    return np.dtype(name) if name in ("float16", "float32", "float64") else np.dtype("float32")


def load_entire_model(model: paddle.nn.Layer, path: Union[str, Path], strict: bool = True,
                      key_map: Optional[Callable[[str], Optional[str]]] = None) -> LoadReport:
    """Load weights from ``path`` into ``model``.

    Args:
        model: the built model (its ``state_dict`` keys are the contract).
        path: a ``.pdparams`` file, a checkpoint folder holding ``model.pdparams``, an ``http(s)://``
            URL or a released model name (:data:`~paddleseg.checkpoint.released.RELEASED`).
        strict: fail on any missing, unexpected or mis-shaped key (default). With False, load the
            keys that match and log the rest, e.g. to fine-tune on a different number of classes.
        key_map: renames the file's keys to the model's before matching; a key mapped to None is
            not part of this model and is left out (e.g. a backbone loading a whole model's file).

    Returns:
        A :class:`LoadReport`. Raises :class:`CheckpointError` naming the file and keys.
    """
    file = resolve_weights_path(path)
    state = read_state_dict(file)
    if key_map is not None:
        state = {mapped: value for key, value in state.items() if (mapped := key_map(key)) is not None}
    own = model.state_dict()
    report = LoadReport()
    usable = {}
    for key, target in own.items():
        if key not in state:
            report.missing.append(key)
            continue
        value = state[key]
        shape = tuple(getattr(value, "shape", ()))
        if isinstance(value, np.ndarray) and shape != tuple(target.shape):
            report.mismatched.append((key, shape, tuple(target.shape)))
            continue
        usable[key] = check_weight(file, key, value, tuple(target.shape), _numpy_dtype(target))
    report.unexpected = [k for k in state if k not in own]
    report.loaded = list(usable)
    if not report.complete:
        message = f"{file}: does not fit the model: {report.describe()}.{_format_hint(list(state), list(own))}"
        if strict:
            raise CheckpointError(message + " (strict loading; use the non-strict mode to fine-tune with "
                                            "what matches)")
        logger.warning("%s Loaded %d of %d model keys.", message, len(usable), len(own))
    model.set_state_dict(usable)
    logger.info("Loaded %d weights from %s", len(usable), file)
    return report
