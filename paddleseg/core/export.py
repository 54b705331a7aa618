"""Export a trained model to a Paddle 3 static graph (``model.json`` + ``model.pdiparams``), optionally
to ONNX, with a ``deploy.yaml`` that lets ``tools/infer.py`` run it without this package.

    export_model(model, "output/export", transforms=[{"type": "Normalize"}], output_op="argmax")

The exported graph runs in Paddle Inference with oneDNN on (the default CPU fast path) and in ONNX
Runtime. Two things make that so: :func:`paddleseg.models.layers.resize` traces to gather/blend ops
instead of ``bilinear_interp`` (which Paddle 3.3's oneDNN executor cannot run), and single-slope PReLU
layers are exported with the slope repeated per channel (:func:`per_channel_prelu`), because oneDNN's
single-slope PReLU is ~10x slower than its per-channel one. Both are exact rewrites.
"""
import copy
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import yaml

from paddleseg.cvlibs import builder, manager
from paddleseg.errors import UserError
from paddleseg.utils.cityscapes_labels import NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from paddleseg.utils.visualize import get_palette

logger = logging.getLogger(__name__)

OUTPUT_OPS = ("argmax", "softmax", "none")
MODEL_PREFIX = "model"
DEPLOY_FILE = "deploy.yaml"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 13  # Gather, Range, ArgMax and PRelu as exported here are all in opset 13
INPUT_NAME = "x"


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
    channel: the same function, but oneDNN runs the per-channel form ~10x faster. The channel counts
    are read by one small forward pass. Returns the number of layers changed."""
    channels: Dict[int, int] = {}

    def record(layer: nn.Layer, inputs) -> None:  # returning None keeps the inputs unchanged
        channels[id(layer)] = inputs[0].shape[1]

    hooks = [layer.register_forward_pre_hook(record)
             for layer in model.sublayers() if isinstance(layer, nn.PReLU) and layer._weight.shape == [1]]
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
        weight = layer.create_parameter([n], dtype=layer._weight.dtype)
        weight.set_value(layer._weight.expand([n]))
        layer._weight = weight
        layer._num_parameters = n
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


@dataclass
class ExportResult:
    save_dir: Path
    model_file: Path
    params_file: Path
    deploy_file: Path
    onnx_file: Optional[Path] = None


def export_model(model: nn.Layer, save_dir, *, transforms: Sequence[Dict], num_classes: int,
                 input_shape: Optional[Sequence[int]] = None, output_op: str = "argmax",
                 onnx: bool = False, opset: int = ONNX_OPSET) -> ExportResult:
    """Trace ``model`` (a deep copy; the model itself is untouched) and write the static graph,
    ``deploy.yaml`` and, with ``onnx``, ``model.onnx`` into ``save_dir``."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    shape = check_input_shape(input_shape)
    transforms = resolve_transforms(transforms)
    net = copy.deepcopy(model)
    net.eval()
    n_prelu = per_channel_prelu(net)
    logger.info("Per-channel PReLU slopes for %d layers (oneDNN fast path)", n_prelu)
    head = ExportHead(net, output_op)
    head.eval()
    static = paddle.jit.to_static(head, input_spec=[paddle.static.InputSpec(shape, "float32", INPUT_NAME)],
                                  full_graph=True)
    prefix = save_dir / MODEL_PREFIX
    paddle.jit.save(static, str(prefix))
    result = ExportResult(save_dir, prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams"),
                          save_dir / DEPLOY_FILE)
    if onnx:
        result.onnx_file = save_dir / ONNX_FILE
        export_onnx(result.model_file, result.params_file, result.onnx_file, opset)
    deploy = {
        "model": result.model_file.name,
        "params": result.params_file.name,
        "onnx": result.onnx_file.name if result.onnx_file else None,
        "onnx_opset": opset if onnx else None,
        "input_name": INPUT_NAME,
        "input_shape": shape,
        "output_op": output_op,
        "output_dtype": "int32" if output_op == "argmax" else "float32",
        "num_classes": num_classes,
        "transforms": transforms,
        "palette": get_palette(num_classes)[:num_classes].tolist(),
        # Cityscapes test-server ids for --label_ids (only meaningful for the 19 Cityscapes classes)
        "label_ids": list(TRAIN_ID_TO_LABEL_ID) if num_classes == NUM_CLASSES else None,
    }
    result.deploy_file.write_text(yaml.safe_dump({"Deploy": deploy}, sort_keys=False, default_flow_style=None), encoding="utf-8")
    logger.info("Exported to %s", save_dir)
    return result


def export_onnx(model_file: Path, params_file: Path, onnx_file: Path, opset: int = ONNX_OPSET) -> None:
    """Convert the Paddle static model to ONNX with paddle2onnx (checked by the ONNX checker)."""
    import paddle2onnx

    paddle2onnx.export(str(model_file), str(params_file), str(onnx_file), opset_version=opset,
                       enable_onnx_checker=True, verbose=False)
    if not onnx_file.is_file():
        raise RuntimeError(f"paddle2onnx did not write {onnx_file}")
    rewritten = prelu_to_leaky_relu(onnx_file)
    logger.info("ONNX model (opset %d): %s (%d PRelu nodes as LeakyRelu)", opset, onnx_file, rewritten)


def prelu_to_leaky_relu(onnx_file: Path) -> int:
    """Rewrite every ``PRelu`` whose slope is a constant with one repeated value as ``LeakyRelu``
    with that value: the same ``x if x >= 0 else alpha * x``, but ONNX Runtime runs LeakyRelu
    vectorised, while its broadcasting PRelu took ~40% of the model's run time. Returns the count."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_file))
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    rewritten = 0
    for i, node in enumerate(graph.node):
        if node.op_type != "PRelu" or node.input[1] not in constants:
            continue
        slope = numpy_helper.to_array(constants[node.input[1]]).ravel()
        if slope.size == 0 or not (slope == slope[0]).all():
            continue
        graph.node[i].CopyFrom(helper.make_node("LeakyRelu", [node.input[0]], list(node.output), name=node.name,
                                                alpha=float(slope[0])))
        rewritten += 1
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_file))
    return rewritten
