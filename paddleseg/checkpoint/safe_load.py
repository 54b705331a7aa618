"""Reading ``.pdparams`` / ``.pdopt`` files without running code from them, in bounded time and memory.

``paddle.load`` unpickles, and a pickle can call any importable function while it loads. Restricting
``pickle.Unpickler.find_class`` to NumPy's reconstruction functions is not enough either: those
functions trust their arguments. A pickled ``numpy.dtype`` state can clear an object dtype's flags,
after which ``numpy._core.multiarray.scalar`` or ``_reconstruct`` read eight bytes of the file as a
``PyObject*`` (a crash, and with a leaked address, a call of any function); ``_reconstruct`` with a
huge shape allocates gigabytes from a few bytes; an ``ndarray(shape, dtype, buffer, offset,
strides)`` view with zero strides claims any size.

So this module does not call the pickle machinery at all. :func:`safe_load` walks the file's opcodes
(``pickletools.genops``) with its own small stack machine that knows only what ``paddle.save`` writes
for a model state dict, an optimizer state (accumulators plus the LR scheduler's ``state_dict``, and
``EMA`` / ``GradScaler`` entries) and both released ESPNetV2 checkpoints:

- containers (dict, ``OrderedDict``, list, tuple, set, frozenset), ``None``, booleans, integers,
  floats, strings and bytes (``_codecs.encode`` for bytes in protocol-2 pickles);
- dtypes, only plain numeric ones (``b1 i1..i8 u1..u8 f2 f4 f8 c8 c16``) taken from a fixed table.
  The pickled dtype state is checked field by field (byte order, no fields, no sub-array, flags 0)
  and never applied: only its byte order is used;
- arrays, only as ``_reconstruct(ndarray, (0,), b'b')`` followed by a state whose raw byte buffer has
  exactly ``prod(shape) * itemsize`` bytes (or protocol 5's ``_frombuffer`` of such a buffer), copied
  into a new array; NumPy scalars from a buffer of exactly one item.

Any other global, opcode or argument is refused before anything is built from it, naming it. The
result is checked as a whole before it is returned: no cycles, nesting at most :data:`MAX_DEPTH`
deep, the arrays (counted once per reference) no larger than the file, the elements (counted once
per reference, so that shared sub-lists cannot multiply) no more than the opcodes that made them.
Every opcode adds at most one object, so time and memory are bounded by the file's size.

What the loader returns is plain data: ``{key: numpy.ndarray}`` for weights, with nested dicts,
lists, strings and numbers for optimizer and scheduler state.
"""
import math
import pickletools
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from paddleseg.errors import CheckpointError
from paddleseg.utils.regular_file import NotRegularFileError, open_regular

MAX_DEPTH = 64  # nesting of containers (a state dict is 2-4 deep)
MAX_OPCODES = 4_000_000  # a checkpoint of 365 arrays takes 12k; an optimizer state of 100k arrays ~ 3.5M
_SLACK_ELEMENTS = 1024  # a few elements more than opcodes (empty containers, the top-level object)

# Paddle's own bookkeeping keys inside a saved dict
_NAME_TABLE = "StructuredToParameterName@@"
_BIG_PARAMS = "UnpackBigParamInfor@@"  # (sic) parameters over 4 GB saved in slices

# The only dtypes a checkpoint holds, by the code NumPy pickles them with.
_DTYPES = {code: np.dtype(code) for code in
           ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")}
_BYTE_ORDERS = {"<", ">", "=", "|"}

# Globals the stack machine understands, by what they stand for. numpy 1.x pickles name
# ``numpy.core``, numpy 2.x ``numpy._core``; Python 2 pickles name ``__builtin__``.
_RECONSTRUCT, _NDARRAY, _DTYPE, _SCALAR, _FROMBUFFER, _ENCODE = (
    "array reconstruction", "ndarray", "dtype", "scalar", "array from buffer", "bytes from text")
_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _ENCODE,
    ("collections", "OrderedDict"): OrderedDict,
}
for _module in ("builtins", "__builtin__"):
    for _type in (tuple, list, dict, set, frozenset, bytes):
        _GLOBALS[(_module, _type.__name__)] = _type
_CONTAINERS = (dict, list, tuple, set, frozenset)
_LEAVES = (type(None), bool, int, float, str, bytes, np.generic)


class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for something a checkpoint never holds (code to run)."""


class _Refused(Exception):
    """Something no Paddle checkpoint contains: a global, an opcode, or arguments out of shape."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _Corrupt(Exception):
    """The opcodes do not fit together (a damaged file, not a hostile one)."""


class _Global:
    def __init__(self, kind: Any, name: str):
        self.kind, self.name = kind, name


class _DTypeNode:
    """A dtype from the table; its byte order comes from the state that BUILD gives it."""

    def __init__(self, code: str):
        self.dtype = _DTYPES[code]
        self.built = False

    def build(self, state: Any) -> None:
        if self.built:
            raise _Refused("a dtype given its state twice")
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and state[1] in _BYTE_ORDERS and state[2:5] == (None, None, None)
                and state[5] == -1 and state[6] == -1 and state[7] == 0 and type(state[7]) is int):
            raise _Refused(f"a dtype state other than a plain number's: {_short(state)}")
        order = state[1]
        if order == "|" and self.dtype.itemsize > 1:
            raise _Refused(f"byte order '|' for the {self.dtype.itemsize}-byte dtype {self.dtype}")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)
        self.built = True


class _ArrayNode:
    """``_reconstruct(ndarray, (0,), b'b')``: an array waiting for its state."""

    def __init__(self):
        self.array: Optional[np.ndarray] = None

    def build(self, state: Any) -> None:
        if self.array is not None:
            raise _Refused("an array given its state twice")
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and type(state[3]) is bool):
            raise _Refused(f"an array state other than (1, shape, dtype, fortran, bytes): {_short(state)}")
        _, shape, dtype, fortran, data = state
        self.array = _array_from_buffer(data, dtype, shape, "F" if fortran else "C")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):  # Python 2's str, decoded as latin-1 (encoding="latin1")
        return data.encode("latin-1")
    raise _Refused(f"array data that is not a byte buffer ({type(data).__name__})")


def _dtype_of(node: Any) -> np.dtype:
    if not isinstance(node, _DTypeNode):
        raise _Refused(f"a dtype argument that is not a dtype ({type(node).__name__})")
    return node.dtype


def _array_from_buffer(data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """A new array of ``shape`` filled from ``data``, which must hold exactly its bytes."""
    dtype = _dtype_of(dtype)
    if not (isinstance(shape, tuple) and len(shape) <= 32
            and all(type(n) is int and n >= 0 for n in shape)):
        raise _Refused(f"an array shape that is not a tuple of at most 32 sizes: {_short(shape)}")
    data = _as_bytes(data)
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise _Refused(f"an array of shape {shape} ({dtype}) with {len(data)} bytes of data "
                       f"instead of {count * dtype.itemsize}")
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape, order=order)


def _reduce(func: Any, args: Any) -> Any:
    """What ``REDUCE`` makes of ``func(*args)`` for the globals the machine knows."""
    if not isinstance(func, _Global):
        raise _Refused(f"a call of something that is not a known global ({type(func).__name__})")
    if not isinstance(args, tuple):
        raise _Refused(f"{func.name} called with arguments that are not a tuple")
    kind = func.kind
    if kind is _DTYPE:
        if len(args) == 3 and isinstance(args[0], str) and args[0].startswith("O"):
            raise _Refused(f"an array of Python objects (numpy.dtype{_short(args)})")
        if not (len(args) == 3 and args[0] in _DTYPES and args[1] is False and args[2] is True):
            raise _Refused(f"numpy.dtype{_short(args)}, not a plain numeric dtype")
        return _DTypeNode(args[0])
    if kind is _RECONSTRUCT:
        if not (len(args) == 3 and isinstance(args[0], _Global) and args[0].kind is _NDARRAY
                and args[1] == (0,) and args[2] in (b"b", "b")):
            raise _Refused(f"numpy _reconstruct{_short(args)}, not an empty ndarray waiting for its data")
        return _ArrayNode()
    if kind is _SCALAR:
        if len(args) != 2:
            raise _Refused(f"numpy scalar with {len(args)} arguments")
        dtype, data = _dtype_of(args[0]), _as_bytes(args[1])
        if len(data) != dtype.itemsize:
            raise _Refused(f"a {dtype} scalar of {len(data)} bytes")
        return np.frombuffer(data, dtype=dtype)[0]
    if kind is _FROMBUFFER:
        if not (len(args) == 4 and args[3] in ("C", "F")):
            raise _Refused(f"numpy _frombuffer with arguments {_short(args)}")
        return _array_from_buffer(args[0], args[1], args[2], args[3])
    if kind is bytes:  # protocol 2 writes b"" as bytes()
        if args not in ((), (b"",)):
            raise _Refused(f"bytes{_short(args)}")
        return b""
    if kind is _ENCODE:
        if not (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
            raise _Refused(f"_codecs.encode{_short(args)}")
        return args[0].encode("latin-1")
    if kind in _CONTAINERS or kind is OrderedDict:
        if len(args) > 1:
            raise _Refused(f"{func.name} called with {len(args)} arguments")
        items = args[0] if args else ()
        if isinstance(items, (_DTypeNode, _ArrayNode, _Global)) or not isinstance(items, (list, tuple)):
            raise _Refused(f"{func.name} of {type(items).__name__}")
        if kind is dict or kind is OrderedDict:
            if not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in items):
                raise _Refused(f"{func.name} of items that are not pairs")
            return kind((_hashable(k), v) for k, v in items)
        if kind in (set, frozenset):
            return kind(_hashable(item) for item in items)
        return kind(items)
    raise _Refused(f"a call of {func.name}")


def _hashable(key: Any) -> Any:
    """Dict keys and set members: only leaves (strings, numbers, None) and tuples of them."""
    if isinstance(key, (str, int, float, bytes, type(None))) or (
            isinstance(key, tuple) and all(isinstance(k, (str, int, float, bytes, type(None))) for k in key)):
        return key
    raise _Refused(f"a dict key or set member of type {type(key).__name__}")


def _pop_mark(stack: List[Any], marks: List[int]) -> List[Any]:
    if not marks:
        raise _Corrupt("an opcode that needs a MARK found none")
    start = marks.pop()
    items = stack[start:]
    del stack[start:]
    return items


def _pop(stack: List[Any], marks: List[int], n: int = 1) -> List[Any]:
    floor = marks[-1] if marks else 0
    if len(stack) - n < floor:
        raise _Corrupt("stack underflow")
    items = stack[len(stack) - n:]
    del stack[len(stack) - n:]
    return items


_PUSH_ARG = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
             "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES",
             "BINBYTES8"}
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}  # Python 2 str: latin-1 text (as encoding="latin1")


def _run(stream) -> Any:
    """Execute the opcodes of ``stream`` on the restricted stack machine; the pickled object."""
    stack: List[Any] = []
    marks: List[int] = []
    memo: Dict[int, Any] = {}
    opcodes = 0
    for opcode, arg, _ in pickletools.genops(stream):
        opcodes += 1
        if opcodes > MAX_OPCODES:
            raise _Refused(f"more than {MAX_OPCODES} pickle opcodes")
        name = opcode.name
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _STRING_OPS:
            stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif name == "BYTEARRAY8":
            stack.append(bytearray(arg))
        elif name in ("PROTO", "FRAME"):
            continue
        elif name == "STOP":
            if len(stack) != 1 or marks:
                raise _Corrupt("the pickle ends with an unbalanced stack")
            return stack[0], opcodes
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "POP":
            if marks and marks[-1] == len(stack):
                marks.pop()
            else:
                _pop(stack, marks)
        elif name == "POP_MARK":
            _pop_mark(stack, marks)
        elif name == "DUP":
            stack.append(_pop(stack, marks)[0])
            stack.append(stack[-1])
        elif name == "NONE":
            stack.append(None)
        elif name == "NEWTRUE":
            stack.append(True)
        elif name == "NEWFALSE":
            stack.append(False)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "EMPTY_SET":
            stack.append(set())
        elif name == "TUPLE":
            stack.append(tuple(_pop_mark(stack, marks)))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            stack.append(tuple(_pop(stack, marks, int(name[-1]))))
        elif name == "LIST":
            stack.append(list(_pop_mark(stack, marks)))
        elif name == "DICT":
            items = _pop_mark(stack, marks)
            if len(items) % 2:
                raise _Corrupt("DICT with an odd number of items")
            stack.append({_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)})
        elif name == "FROZENSET":
            stack.append(frozenset(_hashable(x) for x in _pop_mark(stack, marks)))
        elif name in ("APPEND", "APPENDS"):
            items = _pop(stack, marks) if name == "APPEND" else _pop_mark(stack, marks)
            target = _pop(stack, marks)[0]
            if not isinstance(target, list):
                raise _Refused(f"{name} to a {type(target).__name__}")
            target.extend(items)
            stack.append(target)
        elif name in ("SETITEM", "SETITEMS"):
            items = _pop(stack, marks, 2) if name == "SETITEM" else _pop_mark(stack, marks)
            target = _pop(stack, marks)[0]
            if not isinstance(target, dict) or len(items) % 2:
                raise _Refused(f"{name} on a {type(target).__name__}")
            for i in range(0, len(items), 2):
                target[_hashable(items[i])] = items[i + 1]
            stack.append(target)
        elif name == "ADDITEMS":
            items = _pop_mark(stack, marks)
            target = _pop(stack, marks)[0]
            if not isinstance(target, set):
                raise _Refused(f"ADDITEMS to a {type(target).__name__}")
            target.update(_hashable(x) for x in items)
            stack.append(target)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = _pop(stack, marks)[0]
            stack.append(memo[arg])
        elif name == "MEMOIZE":
            memo[len(memo)] = _pop(stack, marks)[0]
            stack.append(memo[len(memo) - 1])
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise _Corrupt(f"memo entry {arg} read before it was written")
            stack.append(memo[arg])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                module, attr = _pop(stack, marks, 2)
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise _Corrupt("STACK_GLOBAL of something that is not two strings")
            kind = _GLOBALS.get((module, attr))
            if kind is None:
                raise _Refused(f"{module}.{attr}")
            stack.append(_Global(kind, f"{module}.{attr}"))
        elif name == "REDUCE":
            func, args = _pop(stack, marks, 2)
            stack.append(_reduce(func, args))
        elif name == "BUILD":
            state = _pop(stack, marks)[0]
            target = stack[-1] if len(stack) > (marks[-1] if marks else 0) else None
            if not isinstance(target, (_DTypeNode, _ArrayNode)):
                raise _Refused(f"BUILD (setting the state) of a {type(target).__name__}")
            target.build(state)
        else:  # INST, OBJ, NEWOBJ, NEWOBJ_EX, PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER
            raise _Refused(f"the pickle opcode {name}")
    raise _Corrupt("the pickle has no STOP opcode")


class _BoundedReader:
    """The file as ``pickletools.genops`` reads it, except that a length read from the file never asks
    for more than what is left: ``BufferedReader.read(n)`` allocates ``n`` bytes before reading, so a
    forged 8-byte length of 2**60 would otherwise be an allocation of that size."""

    def __init__(self, f, size: int):
        self.f, self.size = f, size

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.f.tell()
        return self.f.read(left if n < 0 else min(n, max(left, 0)))

    def readline(self) -> bytes:
        return self.f.readline()

    def tell(self) -> int:
        return self.f.tell()


class _Finisher:
    """Turns the machine's result into plain data and checks it: cycles, depth, and sizes counted once
    per reference (a sub-list shared a million times counts a million times)."""

    def __init__(self, max_bytes: int, max_elements: int):
        self.max_bytes, self.max_elements = max_bytes, max_elements
        self.bytes = self.elements = 0
        self.done: Dict[int, Any] = {}  # id -> finished value, for shared objects
        self.sizes: Dict[int, tuple] = {}  # id -> (elements, bytes) it expands to
        self.active: set = set()

    def finish(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _Refused(f"containers nested more than {MAX_DEPTH} deep")
        key = id(value)
        if key in self.active:
            raise _Refused("a container that contains itself (a cycle)")
        if key in self.done:  # shared: count its expanded size again, build nothing new
            elements, nbytes = self.sizes[key]
            self._count(elements, nbytes)
            return self.done[key]
        before = (self.elements, self.bytes)
        result = self._convert(value, depth)
        self._count(1, 0)
        self.done[key] = result
        self.sizes[key] = (self.elements - before[0], self.bytes - before[1])
        return result

    def _count(self, elements: int, nbytes: int) -> None:
        self.elements += elements
        self.bytes += nbytes
        if self.bytes > self.max_bytes:
            raise _Refused(f"arrays of more bytes ({self.bytes}) than the file has ({self.max_bytes}), "
                           f"by sharing one array many times")
        if self.elements > self.max_elements:
            raise _Refused(f"more elements ({self.elements}) than the pickle's opcodes can make "
                           f"({self.max_elements}), by sharing containers many times")

    def _convert(self, value: Any, depth: int) -> Any:
        if isinstance(value, _ArrayNode):
            if value.array is None:
                raise _Refused("an array that was never given its data")
            self._count(0, value.array.nbytes)
            return value.array
        if isinstance(value, np.ndarray):
            self._count(0, value.nbytes)
            return value
        if isinstance(value, (_DTypeNode, _Global)):
            raise _Refused(f"a bare {'dtype' if isinstance(value, _DTypeNode) else value.name} as data")
        if isinstance(value, _LEAVES):
            return value
        if isinstance(value, bytearray):
            return bytes(value)
        if not isinstance(value, _CONTAINERS):
            raise _Refused(f"an object of type {type(value).__name__}")
        self.active.add(id(value))
        try:
            if isinstance(value, dict):
                return type(value)((k, self.finish(v, depth + 1)) for k, v in value.items())
            return type(value)(self.finish(v, depth + 1) for v in value)
        finally:
            self.active.discard(id(value))


def safe_load(path: Union[str, Path]) -> Any:
    """Read the pickle ``path`` with the restricted stack machine (see module doc) and return plain data.

    Raises :class:`UnsafeCheckpointError` naming what was refused, :class:`CheckpointError` for a file
    that is not a Paddle pickle (truncated, corrupt, another format) or not a regular file."""
    path = Path(path)
    try:
        with open_regular(path) as f:
            size = f.seek(0, 2)
            f.seek(0)
            raw, opcodes = _run(_BoundedReader(f, size))
        obj = _Finisher(max_bytes=size, max_elements=2 * opcodes + _SLACK_ELEMENTS).finish(raw)
    except _Refused as e:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: its pickle asks for {e.what}, which no Paddle checkpoint contains "
            f"(loading it could run code or exhaust memory); only weights, optimizer and LR-schedule state "
            f"are read") from e
    except NotRegularFileError as e:
        raise CheckpointError(f"{e}; a checkpoint must be a regular file") from e
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: checkpoint file not found") from e
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from e
    except MemoryError as e:
        raise CheckpointError(f"{path}: too large to read into memory") from e
    except (_Corrupt, Exception) as e:  # damaged opcodes: ValueError, EOFError, UnicodeDecodeError, ...
        raise CheckpointError(f"{path}: cannot be read as a Paddle checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e
    return _unpack(path, obj) if isinstance(obj, dict) else obj


def _unpack(path: Path, state: Dict) -> Dict:
    """Undo what ``paddle.save`` does to a dict: re-join sliced big parameters, drop the name table, and
    turn ``(name, array)`` tensor tuples (tensors inside non-state-dict containers) into arrays."""
    state = dict(state)
    if _BIG_PARAMS in state:
        _join_big_parameters(path, state, state.pop(_BIG_PARAMS))
    state.pop(_NAME_TABLE, None)
    for key, value in state.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) \
                and isinstance(value[1], np.ndarray):
            state[key] = value[1]
    return state


def _join_big_parameters(path: Path, state: Dict, big: Any) -> None:
    """Join the 1-D slices that ``paddle.save`` cut parameters over 4 GB into (checked, never a view)."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: its '{_BIG_PARAMS}' entry (sliced big parameters) {why}")

    if not isinstance(big, dict):
        raise bad(f"is a {type(big).__name__}, not a mapping of parameter names")
    used = set()
    for key, info in big.items():
        if not (isinstance(info, dict) and isinstance(info.get("slices"), list)
                and isinstance(info.get("OriginShape"), (list, tuple))):
            raise bad(f"for '{key}' is not {{'OriginShape': shape, 'slices': [keys]}}")
        shape = tuple(info["OriginShape"])
        if not all(type(n) is int and n >= 0 for n in shape):
            raise bad(f"for '{key}' has the shape {_short(shape)}")
        parts = []
        for part in info["slices"]:
            if not isinstance(part, str) or part not in state or part in used:
                raise bad(f"for '{key}' names the slice {_short(part)}, which is missing or used twice")
            value = state[part]
            if not isinstance(value, np.ndarray) or value.ndim != 1:
                raise bad(f"for '{key}' names '{part}', which is not a 1-D array")
            if parts and value.dtype != parts[0].dtype:
                raise bad(f"for '{key}' joins slices of dtypes {parts[0].dtype} and {value.dtype}")
            used.add(part)
            parts.append(value)
        if not parts or sum(p.size for p in parts) != math.prod(shape):
            raise bad(f"for '{key}': its slices hold {sum(p.size for p in parts)} values, its shape "
                      f"{list(shape)} needs {math.prod(shape)}")
        for part in info["slices"]:
            del state[part]
        state[key] = np.concatenate(parts).reshape(shape)
