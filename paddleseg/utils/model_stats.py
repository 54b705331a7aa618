"""Parameters and multiply-accumulates of a model, counted from the layers that actually run.

``paddle.flops`` crashes on paddle 3.3.1 ("only 0-dimensional arrays can be converted to Python
scalars"), so convolutions and linear layers are counted here with forward hooks on one eval pass.
"""
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import paddle
import paddle.nn as nn


@dataclass
class ModelStats:
    params: int
    conv_macs: int  # multiply-accumulates of all Conv2D layers for one input
    other_macs: int  # Linear layers


def count_params(model: nn.Layer) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def _conv_macs(layer: nn.Conv2D, output: paddle.Tensor) -> int:
    kh, kw = layer.weight.shape[2:]
    in_per_group = layer.weight.shape[1]
    return int(np.prod(output.shape)) * in_per_group * kh * kw


def count_macs(model: nn.Layer, input_shape: Sequence[int]) -> ModelStats:
    """Run ``model`` once in eval mode on zeros of ``input_shape`` and add up the MACs per layer."""
    totals: Dict[str, int] = {"conv": 0, "other": 0}
    hooks: List = []

    def on_conv(layer, _inputs, output):
        totals["conv"] += _conv_macs(layer, output)

    def on_linear(layer, _inputs, output):
        totals["other"] += int(np.prod(output.shape)) * layer.weight.shape[0]

    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            hooks.append(layer.register_forward_post_hook(on_conv))
        elif isinstance(layer, nn.Linear):
            hooks.append(layer.register_forward_post_hook(on_linear))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(list(input_shape), dtype="float32"))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return ModelStats(count_params(model), totals["conv"], totals["other"])


def eval_latency(model: nn.Layer, input_shape: Sequence[int], runs: int = 5, warmup: int = 1) -> List[float]:
    """Seconds per eval forward pass (after ``warmup`` passes), one entry per run."""
    model.eval()
    x = paddle.randn(list(input_shape), dtype="float32")
    times = []
    with paddle.no_grad():
        for i in range(warmup + runs):
            start = time.perf_counter()
            out = model(x)
            float(out[0].sum())  # wait for the result
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times
