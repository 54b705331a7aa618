"""Reading ``.pdparams`` / ``.pdopt`` files without running code from them.

``paddle.load`` unpickles, and a pickle can call any importable function while it loads: a
``model.pdparams`` whose pickle calls ``os.system`` runs it in whatever loads the file. What Paddle
3.3's ``paddle.save`` writes for a model state dict, an optimizer state (accumulators plus the LR
scheduler's ``state_dict``) and both released ESPNetV2 checkpoints only needs NumPy's array, scalar
and dtype reconstruction, ``OrderedDict`` and ``tuple`` (checked by listing every global those
pickles name), plus ``_codecs.encode`` for bytes in protocol-2 pickles. :class:`RestrictedUnpickler` allows exactly those globals and refuses every other one before
it is imported, naming it, the way PyTorch's ``torch.load(weights_only=True)`` does.

What the loader returns is plain data: ``{key: numpy.ndarray}`` for weights, with nested dicts,
lists, strings and numbers for optimizer and scheduler state.
"""
import io
import pickle
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from paddleseg.errors import CheckpointError

# (module, name) -> the object the unpickler may use. numpy 1.x pickles name ``numpy.core``, numpy 2.x
# ``numpy._core``; both resolve to numpy 2's objects without importing the deprecated alias.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # pickle protocol 2 (older paddle.save default) writes bytes as _codecs.encode(str, "latin1")
    ("_codecs", "encode"): __import__("codecs").encode,
}
# Paddle's own bookkeeping keys inside a saved dict
_NAME_TABLE = "StructuredToParameterName@@"
_BIG_PARAMS = "UnpackBigParamInfor@@"  # (sic) parameters over 4 GB saved in slices


class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for something a checkpoint never holds (code to run)."""


class _Refused(pickle.UnpicklingError):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only containers, numbers, strings and NumPy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {pid!r}")


def safe_load(path: Union[str, Path]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` and return plain data (see module doc).

    Raises :class:`UnsafeCheckpointError` naming the refused global, :class:`CheckpointError` for a
    file that is not a Paddle pickle (truncated, corrupt, another format)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(io.BufferedReader(f), encoding="latin1").load()
    except _Refused as e:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: its pickle asks for {e.what}, which no Paddle checkpoint contains "
            f"(loading it could run code); only weights, optimizer and LR-schedule state are read") from e
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: cannot be read as a Paddle checkpoint (truncated or corrupt?): {e}") from e
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from e
    except Exception as e:  # a damaged stream raises EOFError, ValueError, TypeError, IndexError, ...
        raise CheckpointError(f"{path}: cannot be read as a Paddle checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e
    _refuse_object_arrays(path, obj)
    return _unpack(obj) if isinstance(obj, dict) else obj


def _refuse_object_arrays(path: Path, obj: Any) -> None:
    """Arrays of Python objects are never saved by Paddle; their contents were unpickled under the same
    restrictions, but numeric code downstream must not meet them."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise CheckpointError(f"{path}: holds an array of Python objects, which a Paddle checkpoint never does")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _unpack(state: Dict) -> Dict:
    """Undo what ``paddle.save`` does to a dict: re-join sliced big parameters, drop the name table, and
    turn ``(name, array)`` tensor tuples (tensors inside non-state-dict containers) into arrays."""
    state = dict(state)
    big = state.pop(_BIG_PARAMS, None)
    if isinstance(big, dict):
        for key, info in big.items():
            slices = [state.pop(part) for part in info["slices"]]
            state[key] = np.concatenate(slices).reshape(info["OriginShape"])
    state.pop(_NAME_TABLE, None)
    for key, value in state.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) \
                and isinstance(value[1], np.ndarray):
            state[key] = value[1]
    return state
