"""Pickles built by hand to attack the checkpoint loader: forged dtypes that would make NumPy read file
bytes as object pointers, cycles, shared sub-lists that multiply, arrays that claim more data than the
file holds, views, deep nesting. Each is refused with a CheckpointError naming the file (in-process),
and the scripts turn them into one ``error:`` line and exit 2 under an address-space cap. Valid
pickles of every form Paddle writes still load (tests/test_checkpoint_safe_load.py has the released
checkpoints)."""
import hashlib
import json
import pickle
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from paddleseg.checkpoint import UnsafeCheckpointError, safe_load
from paddleseg.errors import CheckpointError

from conftest import REPO, write_train_config
from fault_helpers import PYTHON, assert_user_error, memory_limit, peak_rss, run_script, run_with_fault, train_args


# --- a small pickle assembler (protocol 3 opcodes) ------------------------------------------------
def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def raw(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def integer(n: int) -> bytes:
    if -2 ** 31 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    data = n.to_bytes(16, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


NONE, TRUE, FALSE, REDUCE, BUILD = b"N", b"\x88", b"\x89", b"R", b"b"


def dtype(code: str, order: str = "<", flags: int = 0, fields: bytes = NONE) -> bytes:
    """numpy.dtype(code, False, True) with the state BUILD applies; ``flags`` and ``fields`` forgeable."""
    return (glob("numpy", "dtype") + tup(text(code), FALSE, TRUE) + REDUCE
            + tup(integer(3), text(order), NONE, fields, NONE, integer(-1), integer(-1), integer(flags)) + BUILD)


def array(shape, dtype_ops: bytes, data: bytes, fortran: bytes = FALSE) -> bytes:
    return (glob("numpy._core.multiarray", "_reconstruct") + tup(glob("numpy", "ndarray"), tup(integer(0)), raw(b"b"))
            + REDUCE + tup(integer(1), tup(*map(integer, shape)), dtype_ops, fortran, raw(data)) + BUILD)


def scalar(dtype_ops: bytes, data: bytes) -> bytes:
    return glob("numpy._core.multiarray", "scalar") + tup(dtype_ops, raw(data)) + REDUCE


def mapping(**items: bytes) -> bytes:
    return b"}(" + b"".join(text(k) + v for k, v in items.items()) + b"u"


def pickle_of(body: bytes) -> bytes:
    return b"\x80\x03" + body + b"."


def nested_lists(levels: int) -> bytes:
    """L0 = []; Li = [L(i-1), L(i-1)]: 3*levels bytes that expand to 2**levels lists."""
    out = b"]q\x00"
    for i in range(1, levels + 1):
        out += b"0]q" + bytes([i]) + b"(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"e"
    return out


# name -> (pickle bytes, what the error says)
HOSTILE = {
    # issue's 118-byte file: an object scalar whose dtype state cleared its flags; NumPy would read 8 file
    # bytes as a PyObject* and crash (or call a forged function)
    "forged_object_scalar": (pickle_of(mapping(a=scalar(dtype("O8", "|", flags=0), b"AAAAAAAA"))), "Python objects"),
    "forged_flags_on_float": (pickle_of(mapping(a=scalar(dtype("f8", flags=63), b"A" * 8))), "dtype state"),
    "dtype_with_fields": (pickle_of(mapping(a=scalar(dtype("f8", fields=mapping(x=NONE)), b"A" * 8))), "dtype state"),
    "object_array_of_pointers": (pickle_of(mapping(w=array((2,), dtype("O8", "|"), b"A" * 16))), "Python objects"),
    "void_dtype": (pickle_of(mapping(w=array((2,), dtype("V8", "|"), b"A" * 16))), "not a plain numeric dtype"),
    "self_list": (b"\x80\x02]q\x00(h\x00h\x00e.", "contains itself"),
    "self_dict": (b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.", "contains itself"),
    "self_tuple_via_list": (b"\x80\x02]q\x00h\x00\x85q\x01a.", "contains itself"),
    "shared_lists_2_to_the_60": (pickle_of(nested_lists(60)), "sharing containers"),
    "array_claims_700M_elements": (pickle_of(mapping(w=array((700_000_000,), dtype("f8"), b""))), "bytes of data"),
    "array_claims_10_to_15": (pickle_of(mapping(w=array((10 ** 15,), dtype("u1", "|"), b"x"))), "bytes of data"),
    "zero_stride_view": (pickle_of(mapping(w=glob("numpy", "ndarray") + tup(
        tup(integer(10 ** 9)), dtype("f8"), raw(b"A" * 8), integer(0), tup(integer(0))) + REDUCE)), "a call of numpy.ndarray"),
    "set_of_a_view": (pickle_of(glob("builtins", "set") + tup(glob("numpy", "ndarray") + tup(
        tup(integer(10 ** 9), integer(10 ** 6)), dtype("f8"), raw(b"A" * 8), integer(0), tup(integer(0), integer(0)))
        + REDUCE) + REDUCE), "a call of numpy.ndarray"),
    "one_array_shared_many_times": (pickle_of(b"](" + array((4096,), dtype("u1", "|"), b"\0" * 4096) + b"q\x00"
                                              + b"h\x00" * 5000 + b"e"), "sharing one array"),
    "builtin_eval": (pickle_of(glob("builtins", "eval") + tup(text("1")) + REDUCE), "builtins.eval"),
    "newobj_opcode": (pickle_of(glob("collections", "OrderedDict") + b")\x81"), "opcode NEWOBJ"),
    "persistent_id": (pickle_of(text("x") + b"Q"), "opcode BINPERSID"),
    "build_on_a_dict": (pickle_of(b"}" + mapping(x=NONE) + BUILD), "BUILD"),
    "array_state_twice": (pickle_of(array((1,), dtype("u1", "|"), b"a")
                                    + tup(integer(1), tup(integer(1)), dtype("u1", "|"), FALSE, raw(b"a")) + BUILD),
                          "state twice"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pickles_are_refused_naming_the_file(tmp_path, name):
    data, fragment = HOSTILE[name]
    path = tmp_path / f"{name}.pdparams"
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError) as error:
        safe_load(path)
    assert f"{name}.pdparams: refused to load" in str(error.value) and fragment in str(error.value), str(error.value)


def test_the_forged_scalar_is_as_small_as_reported(tmp_path):
    assert len(HOSTILE["forged_object_scalar"][0]) < 200


@pytest.mark.timeout(60)
def test_deep_nesting_is_refused_without_recursion(tmp_path):
    path = tmp_path / "deep.pdparams"
    path.write_bytes(b"\x80\x02" + b"]" * 20000 + b"a" * 19999 + b".")
    with pytest.raises(UnsafeCheckpointError, match="nested more than 64 deep"):
        safe_load(path)


@pytest.mark.parametrize("info, fragment", [
    (integer(7), "is a int, not a mapping"),
    (mapping(w=mapping(OriginShape=tup(integer(4)), slices=b"](" + text("w@@.0") + text("w@@.9") + b"e")),
     "names the slice 'w@@.9', which is missing"),
    (mapping(w=mapping(OriginShape=tup(integer(5)), slices=b"](" + text("w@@.0") + text("w@@.1") + b"e")),
     "its slices hold 4 values, its shape [5] needs 5"),
    (mapping(w=mapping(OriginShape=tup(integer(4)), slices=b"](" + text("w@@.0") + text("w@@.0") + b"e")),
     "used twice"),
    (mapping(w=mapping(shape=tup(integer(4)))), "is not {'OriginShape'"),
], ids=["int", "missing-slice", "wrong-size", "slice-twice", "no-shape"])
def test_bad_big_parameter_tables_are_clear_errors(tmp_path, info, fragment):
    body = mapping(**{"w@@.0": array((2,), dtype("f4"), b"\0" * 8), "w@@.1": array((2,), dtype("f4"), b"\0" * 8),
                      "UnpackBigParamInfor@@": info})
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle_of(body))
    with pytest.raises(CheckpointError) as error:
        safe_load(path)
    assert "big.pdparams: its 'UnpackBigParamInfor@@' entry" in str(error.value) and fragment in str(error.value)


def test_sliced_big_parameters_are_joined(tmp_path):
    values = np.arange(6, dtype="float32")
    body = mapping(**{"w@@.0": array((4,), dtype("f4"), values[:4].tobytes()),
                      "w@@.1": array((2,), dtype("f4"), values[4:].tobytes()),
                      "UnpackBigParamInfor@@": mapping(w=mapping(OriginShape=tup(integer(2), integer(3)),
                                                                 slices=b"](" + text("w@@.0") + text("w@@.1") + b"e"))})
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle_of(body))
    loaded = safe_load(path)
    assert list(loaded) == ["w"]
    np.testing.assert_array_equal(loaded["w"], values.reshape(2, 3))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_protocol_and_byte_order_loads_exactly(tmp_path, protocol):
    state = {"w": np.arange(12, dtype=">f4").reshape(3, 4), "f": np.asfortranarray(np.ones((2, 3), "float64")),
             "h": np.arange(3, dtype="float16"), "i": np.arange(3, dtype="int64"), "b": np.array([True, False]),
             "e": np.zeros((0, 5), "float32"), "s": np.float32(2.5), "z": np.int64(-3), "n": None,
             "nested": {"last_epoch": 3, "t": (1, "x"), "l": [1.5, b"\x00"], "set": {1, 2}, "fs": frozenset("ab")}}
    path = tmp_path / "all.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=protocol))
    loaded = safe_load(path)
    for key in ("w", "f", "h", "i", "b", "e"):
        np.testing.assert_array_equal(loaded[key], state[key])
        assert loaded[key].dtype == state[key].dtype and loaded[key].flags.writeable, key
    assert loaded["s"] == np.float32(2.5) and type(loaded["s"]) is np.float32 and loaded["z"] == -3
    assert loaded["nested"] == state["nested"] and loaded["n"] is None


def test_python_2_builtin_names_are_mapped(tmp_path):
    """Protocol-2 pickles of Python 2 name ``__builtin__.set``; pickle's fix_imports maps it, so do we."""
    path = tmp_path / "py2.pdparams"
    path.write_bytes(pickle.dumps({"s": {1, 2}}, protocol=2, fix_imports=True))
    assert b"__builtin__" in path.read_bytes()
    assert safe_load(path) == {"s": {1, 2}}


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder"])
def test_non_regular_files_are_named_for_what_they_are(tmp_path, kind):
    import os

    path = tmp_path / "model.pdparams"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    expected = {"fifo": "is a FIFO", "dev_zero": "is a character device", "folder": "is a folder"}[kind]
    with pytest.raises(CheckpointError, match=expected):
        safe_load(path)


# --- the scripts, under an address-space cap ------------------------------------------------------
@pytest.mark.slow
def test_all_hostile_pickles_stay_within_memory_and_time(tmp_path):
    """One child, capped at its size after import plus 1 GB, loads every hostile file: each is refused
    (no crash, no MemoryError), and its peak resident memory stays far below the cap."""
    for name, (data, _) in HOSTILE.items():
        (tmp_path / f"{name}.pdparams").write_bytes(data)
    script = memory_limit("paddleseg.checkpoint") + textwrap.dedent(f"""
        import pathlib, time
        from paddleseg.checkpoint import UnsafeCheckpointError, safe_load
        for path in sorted(pathlib.Path({str(tmp_path)!r}).glob('*.pdparams')):
            start = time.monotonic()
            try:
                safe_load(path)
                print('LOADED', path.name)
            except UnsafeCheckpointError:
                print('REFUSED', path.name, round(time.monotonic() - start, 3))
    """)
    done = subprocess.run([PYTHON, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    refused = [line.split() for line in done.stdout.splitlines() if line.startswith("REFUSED")]
    assert sorted(r[1] for r in refused) == sorted(f"{n}.pdparams" for n in HOSTILE), done.stdout
    assert peak_rss(done.stderr) < 1_000_000_000


@pytest.mark.slow
def test_val_refuses_the_forged_scalar_with_one_error_line(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(HOSTILE["forged_object_scalar"][0])
    done = run_with_fault(memory_limit("paddle"), "val.py", "--config", config, "--model_path", evil,
                          cwd=tmp_path, timeout=120)
    assert_user_error(done, "evil.pdparams: refused to load", "Python objects")


@pytest.mark.slow
def test_resume_with_an_object_array_as_ema_is_refused(tmp_path, tiny_cityscapes):
    """The EMA entry of model.pdopt forged as an object array of fake pointers, digests rewritten to
    match: train.py --resume_model --use_ema names the file instead of crashing in the EMA."""
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=2)
    out = tmp_path / "run"
    first = run_script("train.py", *train_args(config, out, "--save_interval", "2", "--skip_data_check", "--use_ema"),
                       cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = out / "iter_2"
    (checkpoint / "model.pdopt").write_bytes(pickle_of(mapping(
        LR_Scheduler=mapping(last_epoch=integer(2)), EMA=mapping(w=array((2,), dtype("O8", "|"), b"A" * 16)))))
    state = json.loads((checkpoint / "train_state.json").read_text())
    state["files"]["model.pdopt"] = hashlib.sha256((checkpoint / "model.pdopt").read_bytes()).hexdigest()
    (checkpoint / "train_state.json").write_text(json.dumps(state))
    done = run_script("train.py", *train_args(config, out, "--resume_model", checkpoint, "--iters", "4",
                                              "--skip_data_check", "--use_ema"), cwd=tmp_path, timeout=300)
    assert_user_error(done, "model.pdopt: refused to load", "Python objects")
    assert sys.platform != "win32"
