"""Export a trained model to a Paddle 3 static graph (``model.json`` + ``model.pdiparams``), optionally
to ONNX and an OpenVINO IR (``model.xml`` + ``model.bin``), with a ``deploy.yaml`` that lets
``tools/infer.py`` (:mod:`paddleseg.deploy`) run it without Paddle.

    export_model(model, "output/export", transforms=[{"type": "Normalize"}], output_op="argmax")

The exported graph runs in Paddle Inference with oneDNN on (the default CPU fast path) and in ONNX
Runtime. Two things make that so: the model is traced as a copy built for a traced graph
(:func:`paddleseg.models.layer_config.configured_copy`), whose :class:`paddleseg.models.layers.Resize`
layers are gather/blend ops instead of ``bilinear_interp`` (which Paddle 3.3's oneDNN executor cannot
run), and single-slope PReLU layers are exported with the slope repeated per channel
(:func:`per_channel_prelu`), because oneDNN's single-slope PReLU is far slower than its per-channel
one. Both are exact rewrites.

An export is complete or absent. The files are written into a hidden folder beside ``save_dir``
(:func:`paddleseg.utils.atomic.atomic_folder`), checked there (:func:`verify_export`: Paddle Inference,
ONNX Runtime with ``onnx`` and OpenVINO at float32 with ``openvino``, each run on one input and compared
with the model; then, if asked, each precision's accuracy on the val set, recorded in deploy.yaml), and
only then swapped in for the previous export. paddle2onnx runs in a child process (``onnx_convert.py``), since
it aborts its process on some errors. Any failure leaves the previous export as it was.
"""
import inspect
import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import yaml

from paddleseg.cvlibs import builder, manager
from paddleseg.deploy.errors import one_line as first_line
from paddleseg.deploy.model_files import sha256
from paddleseg.errors import UserError
from paddleseg.models.layer_config import LayerConfig, configured_copy
from paddleseg.utils.atomic import atomic_folder, recover
from paddleseg.utils.cityscapes_labels import NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from paddleseg.utils.output_targets import check_replaceable_folder, write_marker
from paddleseg.utils.paddle_compat import prelu_slope, set_prelu_slope
from paddleseg.utils.visualize import class_palette

logger = logging.getLogger(__name__)

OUTPUT_OPS = ("argmax", "softmax", "none")
MODEL_PREFIX = "model"
DEPLOY_FILE = "deploy.yaml"
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "model.xml"  # OpenVINO IR, its weights in model.bin
INT8_FILE = "model_int8.xml"  # written by tools/quantize.py (paddleseg.core.quantize) into an export
EXPORT_KIND = "export"  # the marker of an export folder (paddleseg/utils/output_targets.py)
EXPORT_FILES = (f"{MODEL_PREFIX}.json", f"{MODEL_PREFIX}.pdiparams", DEPLOY_FILE, ONNX_FILE, OPENVINO_FILE, "model.bin",
                INT8_FILE, "model_int8.bin")
ONNX_OPSET = 13  # Gather, Range, ArgMax and PRelu as exported here are all in opset 13
PADDLE2ONNX_OPSETS = range(7, 22)  # paddle2onnx 2.1.0: "The Opset Version must be between 7 and 21"
INPUT_NAME = "x"
# The ONNX conversion child (a command line; the file's docstring says why it is a separate process)
ONNX_CONVERTER = [sys.executable, str(Path(__file__).with_name("onnx_convert.py"))]
# Verification: one input of this size where the input shape is dynamic (odd, like real photos)
PROBE_HW = (45, 61)
# Verified outputs must match the traced model: logits and probabilities to this relative L2 error
# (the backends sum in other orders, measured ~1e-6; a wrong graph is off by far more), label maps
# on this share of pixels (a near-tie can flip under float rounding)
VERIFY_RTOL, VERIFY_AGREEMENT = 1e-3, 0.99


class ExportHead(nn.Layer):
    """The model's first output, followed by ``output_op``: ``argmax`` → (N, H, W) int32 train ids,
    ``softmax`` → (N, C, H, W) probabilities, ``none`` → (N, C, H, W) logits."""

    def __init__(self, model: nn.Layer, output_op: str = "argmax"):
        super().__init__()
        if output_op not in OUTPUT_OPS:
            raise UserError(f"--output_op must be one of {', '.join(OUTPUT_OPS)}, got {output_op!r}")
        self.model = model
        self.output_op = output_op

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        logits = self.model(x)[0]
        if self.output_op == "argmax":
            return paddle.argmax(logits, axis=1, dtype="int32")
        if self.output_op == "softmax":
            return F.softmax(logits, axis=1)
        return logits


def per_channel_prelu(model: nn.Layer, in_channels: int = 3) -> int:
    """Give every single-slope ``nn.PReLU`` of ``model`` (in place) one copy of its slope per input
    channel: the same function, but oneDNN runs the per-channel form far faster. The channel counts
    are read by one small forward pass. Returns the number of layers changed."""
    channels: Dict[int, int] = {}

    def record(layer: nn.Layer, inputs) -> None:  # returning None keeps the inputs unchanged
        channels[id(layer)] = inputs[0].shape[1]

    hooks = [layer.register_forward_pre_hook(record)
             for layer in model.sublayers() if isinstance(layer, nn.PReLU) and prelu_slope(layer).shape == [1]]
    was_training = model.training
    model.eval()
    with paddle.no_grad():
        model(paddle.zeros([1, in_channels, 64, 64]))
    for hook in hooks:
        hook.remove()
    changed = 0
    for layer in model.sublayers():
        n = channels.get(id(layer))
        if n is None or n == 1:
            continue
        slope = prelu_slope(layer)
        weight = layer.create_parameter([n], dtype=slope.dtype)
        weight.set_value(slope.expand([n]))
        set_prelu_slope(layer, weight)
        changed += 1
    model.train() if was_training else model.eval()
    return changed


def resolve_transforms(configs: Sequence[Dict]) -> List[Dict]:
    """Transform configs with every constructor default written out, so a reader of deploy.yaml
    (without this package) sees the exact preprocessing, e.g. Normalize's mean and std."""
    resolved = []
    for cfg in configs:
        cfg = dict(cfg)
        if cfg.get("type") not in manager.TRANSFORMS:
            raise UserError(f"unknown transform type {cfg.get('type')!r} "
                            f"(registered: {', '.join(manager.TRANSFORMS.names)})")
        cls = manager.TRANSFORMS[cfg["type"]]
        builder.build_component(cfg, manager.TRANSFORMS, "transforms")  # validates the arguments
        full = {"type": cfg.pop("type")}
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = cfg.get(name, param.default)
            full[name] = list(value) if isinstance(value, tuple) else value
        resolved.append(full)
    return resolved


def check_input_shape(shape: Optional[Sequence[int]]) -> List[int]:
    """``None`` → the dynamic ``[-1, 3, -1, -1]``; else 4 values N, 3, H, W (-1 for dynamic)."""
    if shape is None:
        return [-1, 3, -1, -1]
    shape = [int(v) for v in shape]
    if len(shape) != 4 or shape[1] != 3 or any(v == 0 or v < -1 for v in shape):
        raise UserError(f"--input_shape must be N 3 H W (positive, or -1 for any), got {shape}")
    return shape


def check_opset(opset: int) -> int:
    """An ONNX opset paddle2onnx can write (whether this model fits in it shows at conversion)."""
    if opset not in PADDLE2ONNX_OPSETS:
        raise UserError(f"--opset {opset}: paddle2onnx writes opsets {PADDLE2ONNX_OPSETS.start} to "
                        f"{PADDLE2ONNX_OPSETS.stop - 1} (default {ONNX_OPSET})")
    return opset


def check_save_dir(save_dir) -> Path:
    """``save_dir`` if an export may go there: absent, empty, or an earlier export (a folder, or a link to
    one, holding the marker every export writes and nothing but an export's files), since an export
    replaces the whole folder. A folder that only looks like an export (a Kubernetes ``deploy.yaml``)
    is refused. Reads only."""
    path = Path(save_dir)
    real = Path(os.path.realpath(path))
    for folder in real.parents:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--save_dir {path}: is inside {folder}, which is a file, not a folder")
        if folder.exists():
            break
    if real.exists() and not real.is_dir():
        raise UserError(f"--save_dir {path}: is a file, not a folder")
    check_replaceable_folder(path, "--save_dir", EXPORT_KIND,
                             own_entry=lambda p: p.name in EXPORT_FILES and p.is_file() and not p.is_symlink())
    return path


@dataclass
class ExportResult:
    save_dir: Path
    model_file: Path
    params_file: Path
    deploy_file: Path
    onnx_file: Optional[Path] = None
    openvino_file: Optional[Path] = None

    @classmethod
    def in_folder(cls, folder: Path, onnx: bool, openvino: bool = False) -> "ExportResult":
        prefix = folder / MODEL_PREFIX
        return cls(folder, prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams"), folder / DEPLOY_FILE,
                   folder / ONNX_FILE if onnx or openvino else None, folder / OPENVINO_FILE if openvino else None)


def export_model(model: nn.Layer, save_dir, *, transforms: Sequence[Dict], num_classes: int,
                 input_shape: Optional[Sequence[int]] = None, output_op: str = "argmax",
                 onnx: bool = False, opset: int = ONNX_OPSET, openvino: bool = False,
                 precision_check: Optional[Callable[[Path], Optional[Dict]]] = None,
                 palette: Optional[Sequence[Sequence[int]]] = None) -> ExportResult:
    """Trace ``model`` (a copy built for a traced graph; the model itself is untouched) and write the
    static graph, ``deploy.yaml`` and, with ``onnx``, ``model.onnx`` (with ``openvino``, that and the
    OpenVINO IR converted from it) into ``save_dir``, replacing an earlier export there only once the
    new one has passed :func:`verify_export` (module docstring). ``precision_check(folder)``, run on the
    verified folder before it replaces anything, returns the precisions it verified
    (:mod:`paddleseg.core.deploy_check`), recorded as ``verified_precisions`` in deploy.yaml. ``palette``:
    the data set's class colours for deploy.yaml (default: Cityscapes', then generated ones)."""
    onnx = onnx or openvino  # the IR is converted from the ONNX model
    recover(Path(os.path.realpath(save_dir)))  # an earlier export killed mid-swap: put its predecessor back
    save_dir = check_save_dir(save_dir)
    shape = check_input_shape(input_shape)
    if onnx:
        check_opset(opset)
    transforms = resolve_transforms(transforms)
    net = configured_copy(model, LayerConfig.for_tracing())
    net.eval()
    n_prelu = per_channel_prelu(net)
    logger.info("Per-channel PReLU slopes for %d layers (oneDNN fast path)", n_prelu)
    head = ExportHead(net, output_op)
    head.eval()
    probe = probe_input(shape)
    with paddle.no_grad():
        reference = head(paddle.to_tensor(probe)).numpy()
    deploy = {
        "model": f"{MODEL_PREFIX}.json",
        "params": f"{MODEL_PREFIX}.pdiparams",
        "onnx": ONNX_FILE if onnx else None,
        "onnx_opset": opset if onnx else None,
        "openvino": OPENVINO_FILE if openvino else None,
        "input_name": INPUT_NAME,
        "input_shape": shape,
        "output_op": output_op,
        "output_dtype": "int32" if output_op == "argmax" else "float32",
        "num_classes": num_classes,
        "transforms": transforms,
        "palette": class_palette(num_classes, palette)[:num_classes].tolist(),
        # Cityscapes test-server ids for --label_ids (only meaningful for the 19 Cityscapes classes)
        "label_ids": list(TRAIN_ID_TO_LABEL_ID) if num_classes == NUM_CLASSES else None,
    }
    static = paddle.jit.to_static(head, input_spec=[paddle.static.InputSpec(shape, "float32", INPUT_NAME)],
                                  full_graph=True)
    real_dir = Path(os.path.realpath(save_dir))
    existed = real_dir.is_dir() and any(real_dir.iterdir())
    try:
        with atomic_folder(save_dir) as work:
            files = ExportResult.in_folder(work, onnx, openvino)
            paddle.jit.save(static, str(work / MODEL_PREFIX))
            if onnx:
                export_onnx(files.model_file, files.params_file, files.onnx_file, opset)
            if openvino:
                export_openvino(files.onnx_file, files.openvino_file)
            write_deploy_yaml(files, deploy)
            write_marker(work, EXPORT_KIND)
            verify_export(files, probe, reference, output_op)
            verified = precision_check(work) if precision_check is not None else None
            if verified:
                write_deploy_yaml(files, {**deploy, "verified_precisions": verified})
    except UserError as e:
        raise UserError(f"{e}; {_previous(save_dir, existed)}") from e
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        raise UserError(f"{save_dir}: cannot write the export ({e.strerror or e}{where}); "
                        f"{_previous(save_dir, existed)}") from e
    checked = ["Paddle Inference"] + ["ONNX Runtime"] * onnx + ["OpenVINO"] * openvino
    logger.info("Exported to %s (checked in %s)", save_dir, ", ".join(checked))
    return ExportResult.in_folder(save_dir, onnx, openvino)


def write_deploy_yaml(files: "ExportResult", deploy: Dict) -> None:
    """``deploy.yaml``: ``deploy`` under ``Deploy``, with the SHA-256 of each model file (``digests``),
    which paddleseg.deploy checks before a runtime loads them (a changed or truncated file is named)."""
    models = [p for p in (files.model_file, files.params_file, files.onnx_file, files.openvino_file) if p is not None]
    models += [files.openvino_file.with_suffix(".bin")] if files.openvino_file is not None else []
    section = {**deploy, "digests": {p.name: sha256(p) for p in models}}
    files.deploy_file.write_text(yaml.safe_dump({"Deploy": section}, sort_keys=False, default_flow_style=None),
                                 encoding="utf-8")


def _previous(save_dir: Path, existed: bool) -> str:
    return f"the previous export in {save_dir} is unchanged" if existed else "nothing was written"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NEEDS_OPSET = re.compile(r"Please set the opset_version to (\d+)")
_TAGS = re.compile(r"\[(ERROR|Paddle2ONNX)\]")


def export_onnx(model_file: Path, params_file: Path, onnx_file: Path, opset: int = ONNX_OPSET) -> None:
    """Convert the Paddle static model to ONNX in a child process (:data:`ONNX_CONVERTER`), so that
    paddle2onnx aborting its process becomes a :class:`UserError` naming the opset and the reason."""
    command = [*ONNX_CONVERTER, str(model_file), str(params_file), str(onnx_file), str(opset)]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    output = _ANSI.sub("", done.stdout)
    logger.debug("ONNX conversion output:\n%s", output)
    if done.returncode != 0:
        how = (f"was killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
               else f"failed (exit status {done.returncode})")
        raise UserError(f"ONNX conversion to opset {opset} (paddle2onnx) {how}: {converter_reason(output)}")
    if not onnx_file.is_file():
        raise UserError(f"ONNX conversion to opset {opset} (paddle2onnx) wrote no {onnx_file.name}")
    lines = output.strip().splitlines()
    logger.info("ONNX model (opset %d): %s (%s)", opset, onnx_file.name, lines[-1] if lines else "")


def converter_reason(output: str) -> str:
    """One line out of the converter's output saying why it failed."""
    needs = _NEEDS_OPSET.findall(output)
    if needs:
        return (f"this model needs opset {max(map(int, needs))} or higher (--opset, up to "
                f"{PADDLE2ONNX_OPSETS.stop - 1})")
    lines = [line.strip() for line in output.splitlines()]
    ours = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    theirs = [_TAGS.sub("", line[line.index("[ERROR]"):]).strip() for line in lines if "[ERROR]" in line]
    reason = "; ".join((theirs[-1:] + ours[-1:])) or "it printed no reason"
    return reason if len(reason) <= 400 else reason[:397] + "..."


def probe_input(shape: Sequence[int]) -> np.ndarray:
    """One input of the exported shape (dynamic sizes as :data:`PROBE_HW`), values of a normalised image."""
    n, c, h, w = shape
    size = (1 if n == -1 else n, c, PROBE_HW[0] if h == -1 else h, PROBE_HW[1] if w == -1 else w)
    return np.random.default_rng(0).uniform(-1.0, 1.0, size).astype("float32")


def verify_export(files: ExportResult, x: np.ndarray, reference: np.ndarray, output_op: str) -> None:
    """Run the written model on ``x`` in Paddle Inference (oneDNN on, as tools/infer.py) and, if there
    is one, the ONNX model in ONNX Runtime; each output must match ``reference`` (the traced model's).
    Raises :class:`UserError` naming the backend and the difference."""
    backends = [("Paddle Inference", f"{files.model_file.name} + {files.params_file.name}", run_paddle_inference)]
    if files.onnx_file is not None:
        backends.append(("ONNX Runtime", files.onnx_file.name, run_onnxruntime))
    if files.openvino_file is not None:
        backends.append(("OpenVINO", f"{files.openvino_file.name} + model.bin", run_openvino))
    for name, model_files, run_backend in backends:
        try:
            out = run_backend(files, x)
        except Exception as e:  # any failure to load or run is the export's failure
            raise UserError(f"the exported model ({model_files}) does not run in {name}: {first_line(e)}") from e
        problem = output_mismatch(out, reference, output_op)
        if problem:
            raise UserError(f"the exported model ({model_files}) gives wrong results in {name}: {problem}")


def output_mismatch(out: np.ndarray, reference: np.ndarray, output_op: str) -> Optional[str]:
    """What is wrong with a backend's ``out`` against ``reference`` (see VERIFY_RTOL), or None."""
    if out.shape != reference.shape:
        return f"output shape {list(out.shape)}, expected {list(reference.shape)}"
    if output_op == "argmax":
        agreement = float((out == reference).mean())
        if agreement < VERIFY_AGREEMENT:
            return f"labels agree on {agreement:.1%} of pixels (at least {VERIFY_AGREEMENT:.0%} expected)"
        return None
    if not np.isfinite(out).all():
        return "output holds NaN or infinity"
    error = float(np.linalg.norm(out - reference) / max(np.linalg.norm(reference), 1e-12))
    return f"relative difference {error:.2e} (at most {VERIFY_RTOL:.0e} expected)" if error > VERIFY_RTOL else None


def run_paddle_inference(files: ExportResult, x: np.ndarray) -> np.ndarray:
    from paddle import inference

    config = inference.Config(str(files.model_file), str(files.params_file))
    config.disable_gpu()
    config.enable_mkldnn()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def run_onnxruntime(files: ExportResult, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(files.onnx_file), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def export_openvino(onnx_file: Path, xml_file: Path) -> None:
    """Convert ``onnx_file`` to an OpenVINO IR (``xml_file`` and its ``.bin``), weights kept in float32
    (``save_model`` would halve them to float16 by default)."""
    try:
        import openvino as ov
    except ImportError as e:
        raise UserError(f"--openvino needs the openvino package ({first_line(e)}): pip install "
                        f"'paddleseg-espnetv2[openvino]'") from e
    try:
        ov.save_model(ov.convert_model(str(onnx_file)), str(xml_file), compress_to_fp16=False)
    except Exception as e:
        raise UserError(f"OpenVINO cannot convert {onnx_file.name}: {first_line(e)}") from e
    logger.info("OpenVINO IR (float32 weights): %s + %s", xml_file.name, xml_file.with_suffix(".bin").name)


def run_openvino(files: ExportResult, x: np.ndarray) -> np.ndarray:
    """The IR in OpenVINO at float32, explicitly (its default on a CPU with BF16 is bf16)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(files.openvino_file), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                                        "INFERENCE_NUM_THREADS": 1})
    return np.array(compiled.create_infer_request().infer({0: x})[0], copy=True)
