"""Checks that a model file is what it claims before a runtime reads it.

    check_paddle_model(deploy)     # model.json (PIR program) or .pdmodel, and model.pdiparams
    check_onnx_model(deploy)       # model.onnx
    check_openvino_model(deploy, deploy.openvino_file)   # model.xml + model.bin (OpenVINO IR)

Paddle Inference crashes the whole process (a segmentation fault, no message) on a "program" that is
some other file (a JSON renamed ``.pdmodel``, ``/etc/passwd``), and a truncated file gives a C++
error many lines long. So, before a runtime sees them:

- ``*.json``: parses as JSON, a PIR program (``base_code.magic == "pir"`` and a ``program``);
- ``*.pdmodel`` and ``*.onnx``: protocol buffers whose top-level fields are all complete and are
  those of a Paddle ``ProgramDesc`` / an ONNX ``ModelProto`` (with its graph);
- ``*.pdiparams``: Paddle's tensor stream, every tensor complete, ending at the end of the file;
- ``*.xml`` (an OpenVINO IR): an XML declaration and a ``<net>`` element, complete to ``</net>``, and
  its weights ``*.bin`` beside it;
- and where deploy.yaml records ``digests`` (export.py writes them), the SHA-256 of each file.

Each failure is a DeployError naming the file and what is wrong with it.
"""
import hashlib
import json
import struct
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.errors import DeployError

MAX_MODEL_BYTES = 4 << 30  # protocol buffers cannot be larger than 2 GB; params a little more
VARINT, I64, LEN, I32 = 0, 1, 2, 5  # protocol buffer wire types (3 and 4, groups, appear in neither format)
PROGRAM_DESC = {1: LEN, 4: LEN, 5: LEN}  # blocks, version, op_version_map
ONNX_MODEL = {1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN, 14: LEN, 20: LEN, 25: LEN,
              26: LEN}  # ir_version, producer, ..., graph (7), opset_import (8), metadata, training, functions
# Paddle's tensor data types (framework.proto VarType.Type) and their sizes in bytes
DTYPE_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16, 32: 1, 33: 1}


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("ends inside a number")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def protobuf_fields(data: bytes) -> Iterator[Tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field of a protocol buffer message;
    ValueError where the bytes are not a complete message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        start = pos
        if wire == VARINT:
            _, pos = _varint(data, pos)
        elif wire == LEN:
            size, pos = _varint(data, pos)
            start, pos = pos, pos + size
        elif wire in (I64, I32):
            pos += 8 if wire == I64 else 4
        else:
            raise ValueError(f"field {number} has wire type {wire}")
        if number == 0 or pos > len(data):
            raise ValueError(f"field {number} runs past the end of the file" if number else "field number 0")
        yield number, wire, start, pos


def _check_protobuf(path: Path, data: bytes, layout: Dict[int, int], required: Set[int], what: str) -> None:
    seen = set()
    try:
        for number, wire, _, _ in protobuf_fields(data):
            if layout.get(number) != wire:
                raise ValueError(f"field {number} (wire type {wire}) is not one of {what}'s")
            seen.add(number)
    except ValueError as e:
        raise DeployError(f"{path}: not {what}, or truncated ({e})") from None
    if not required <= seen:
        raise DeployError(f"{path}: not {what} (no field {min(required - seen)}), or truncated")


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise DeployError(f"{path}: {size} bytes, larger than a model file can be")
    return path.read_bytes()


def check_pir_program(path: Path) -> None:
    try:
        program = json.loads(_read(path))
    except (ValueError, UnicodeDecodeError) as e:
        raise DeployError(f"{path}: not a PIR program, or truncated (not JSON: {e})") from None
    base = program.get("base_code") if isinstance(program, dict) else None
    if not isinstance(base, dict) or base.get("magic") != "pir" or not isinstance(program.get("program"), dict):
        raise DeployError(f"{path}: JSON, but not a PIR program (no base_code.magic 'pir' and program)")


def check_params(path: Path) -> None:
    """Paddle's tensor stream (``save_combine``): per tensor a uint32 version, a uint64 LoD level count
    and the levels, a uint32 version, an int32 descriptor size, the TensorDesc, then the raw data."""
    data, pos, count = _read(path), 0, 0
    try:
        while pos < len(data):
            (levels,) = struct.unpack_from("<Q", data, pos + 4)
            pos += 12
            for _ in range(levels):
                (size,) = struct.unpack_from("<Q", data, pos)
                pos += 8 + size
            (size,) = struct.unpack_from("<i", data, pos + 4)
            if size < 0 or pos + 8 + size > len(data):
                raise ValueError("a tensor descriptor runs past the end")
            dtype, numel = None, 1
            for number, wire, start, end in protobuf_fields(data[pos + 8:pos + 8 + size]):
                if number == 1 and wire == VARINT:
                    dtype = _varint(data, pos + 8 + start)[0]
                elif number == 2 and wire == VARINT:
                    numel *= _varint(data, pos + 8 + start)[0]
                elif number == 2 and wire == LEN:  # packed dims
                    dims, at = data[pos + 8 + start:pos + 8 + end], 0
                    while at < len(dims):
                        dim, at = _varint(dims, at)
                        numel *= dim
            if dtype not in DTYPE_BYTES:
                raise ValueError(f"tensor {count} has an unknown data type {dtype}")
            pos += 8 + size + numel * DTYPE_BYTES[dtype]
            count += 1
            if pos > len(data):
                raise ValueError(f"tensor {count - 1} runs past the end")
    except (ValueError, struct.error) as e:
        raise DeployError(f"{path}: not Paddle parameters, or truncated ({e})") from None
    if count == 0:
        raise DeployError(f"{path}: empty (no parameters)")


def check_digests(deploy: DeployConfig, *files: Path) -> None:
    """Each of ``files`` against the SHA-256 deploy.yaml records for it (if it records one)."""
    for path in files:
        expected = deploy.digests.get(path.name)
        if expected is not None and sha256(path) != expected:
            raise DeployError(f"{path}: changed since the export (its SHA-256 is not the one in {deploy.file}); "
                              f"export again, or copy the export folder whole")


def check_paddle_model(deploy: DeployConfig) -> None:
    """The program and parameters Paddle Inference will load (module docstring)."""
    check_digests(deploy, deploy.model_file, deploy.params_file)
    model = deploy.model_file
    if model.suffix == ".json":
        check_pir_program(model)
    elif model.suffix == ".pdmodel":
        _check_protobuf(model, _read(model), PROGRAM_DESC, {1}, "a Paddle program (ProgramDesc)")
    else:
        raise DeployError(f"{deploy.file}: Deploy.model: {model.name} is neither a PIR program (.json) nor a "
                          f"Paddle program (.pdmodel)")
    check_params(deploy.params_file)


def check_onnx_model(deploy: DeployConfig) -> None:
    """The ONNX model ONNX Runtime will load (module docstring)."""
    if deploy.onnx_file is None:
        raise DeployError(f"{deploy.folder}: exported without --onnx (no model.onnx)")
    check_digests(deploy, deploy.onnx_file)
    _check_protobuf(deploy.onnx_file, _read(deploy.onnx_file), ONNX_MODEL, {1, 7}, "an ONNX model")


def check_openvino_model(deploy: DeployConfig, xml: Path) -> None:
    """The OpenVINO IR ``xml`` and its weights (the ``.bin`` beside it) OpenVINO will load (module
    docstring)."""
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise DeployError(f"{deploy.folder}: incomplete export, missing {weights.name} (the weights of {xml.name})")
    check_digests(deploy, xml, weights)
    text = _read(xml)
    if not text.lstrip().startswith(b"<?xml") or b"<net " not in text[:4096] or not text.rstrip().endswith(b"</net>"):
        raise DeployError(f"{xml}: not an OpenVINO IR (an XML <net> element), or truncated")
