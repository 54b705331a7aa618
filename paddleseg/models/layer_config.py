"""The layer configuration: which form of each layer a model is built with.

Some layers compute one function in more than one way, because Paddle 3.3's kernels are fast in one
setting and slow or unusable in another (the measurements are in docs/performance.md):

| layer (models/layers.py) | eager on the CPU | eager on a GPU | traced (``to_static``, export) |
| --- | --- | --- | --- |
| ``PReLU`` | ``leaky_relu`` kernels | ``prelu`` | ``prelu`` |
| ``DepthwiseConv2D`` | input gradient by the forward kernel | ``depthwise_conv2d`` | ``depthwise_conv2d`` |
| ``Resize`` | two GEMMs where cheap, else ``bilinear_interp`` | ``bilinear_interp`` | gathers and blends |
| ``Resize.through`` | two GEMMs | two GEMMs | gathers and blends, step by step |
| recomputed blocks (models/recompute.py) | as ``set_recompute`` says | as ``set_recompute`` says | never |

Every form computes the same function (to float rounding; tests/test_fast_layers.py,
tests/test_resize.py), so a wrong choice costs time, never correctness, except that a traced graph
needs the traced forms: the eager ones read tensor values and sizes as Python numbers.

The form is chosen when a layer is built, from the :class:`LayerConfig` current then, and recorded
on the layer (its ``variant``); ``forward`` reads that attribute and never asks for the device or the
execution mode. A model is built with the configuration of :func:`use`, or by default the eager one
for the device Paddle is set to when it is built (entry points set the device first). A built model
is given another configuration by :func:`configured_copy`: export traces such a copy, and
``--to_static_training`` one that shares the model's parameters (core/export.py,
core/static_training.py). Which forms a configuration gives does not change the state-dict keys.
"""
import contextlib
import copy
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, List, Optional

import paddle
import paddle.nn as nn

DEVICES = ("cpu", "gpu")

# Multiply-adds per output pixel up to which two GEMMs (layers.upsample_by_matmul) beat
# bilinear_interp's CPU kernels, forward + backward (measured on 2 cores, MKL's AVX2 path): faster
# at 64 (the PSP's 32x64 -> 64x128) and at 256 (128x256 -> 256x512), slower at 512
# (256x512 -> 512x1024); the figures are in docs/performance.md.
MATMUL_RESIZE_MAX_MACS = 320.0


@dataclass(frozen=True)
class LayerConfig:
    """What the layers of a model are built for.

    ``device``: where the eager model runs, ``'cpu'`` or ``'gpu'`` (any accelerator: Paddle's own
    kernels). ``traced``: the model will run as a traced graph (``paddle.jit.to_static``, export), so
    every layer takes its graph-friendly form whatever the device. ``matmul_resize_max_macs``: the
    cost (multiply-adds per output pixel) up to which an eager CPU resize is two GEMMs
    (:data:`MATMUL_RESIZE_MAX_MACS`).
    """

    device: str = "cpu"
    traced: bool = False
    matmul_resize_max_macs: float = MATMUL_RESIZE_MAX_MACS

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"LayerConfig: device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    @property
    def eager_cpu(self) -> bool:
        """Eager execution on the CPU: the setting of the fast CPU paths."""
        return self.device == "cpu" and not self.traced

    @classmethod
    def for_device(cls, device: str) -> "LayerConfig":
        """The eager configuration for a Paddle device name (``'cpu'``, ``'gpu:0'``, ...)."""
        return cls(device="cpu" if device.startswith("cpu") else "gpu")

    @classmethod
    def for_tracing(cls) -> "LayerConfig":
        """The configuration of a traced graph (export, ``--to_static_training``)."""
        return cls(traced=True)


_CURRENT: ContextVar[Optional[LayerConfig]] = ContextVar("paddleseg_layer_config", default=None)


def current() -> LayerConfig:
    """The configuration layers built now take: the one of the innermost :func:`use`, else the eager
    configuration for the device Paddle is set to."""
    config = _CURRENT.get()
    return config if config is not None else LayerConfig.for_device(paddle.get_device())


@contextlib.contextmanager
def use(config: LayerConfig) -> Iterator[LayerConfig]:
    """Build the layers made inside this block with ``config``::

        with layer_config.use(LayerConfig.for_tracing()):
            model = ESPNetV2(scale=0.5)
    """
    if not isinstance(config, LayerConfig):
        raise TypeError(f"layer_config.use needs a LayerConfig, got {type(config).__name__}")
    token = _CURRENT.set(config)
    try:
        yield config
    finally:
        _CURRENT.reset(token)


class Configurable:
    """A layer whose forms come from a :class:`LayerConfig`. Subclasses call ``self.configure(current())``
    at the end of ``__init__`` and extend :meth:`configure` (calling it on ``super()``) to set their
    ``variant``; ``forward`` reads only what :meth:`configure` set."""

    layer_config: LayerConfig

    def configure(self, config: LayerConfig) -> None:
        self.layer_config = config


def configure_layers(model: nn.Layer, config: LayerConfig) -> List[nn.Layer]:
    """Give every configurable layer of ``model`` (``model`` included) the forms of ``config``, in
    place; returns those layers. For a copy about to be traced: see :func:`configured_copy`."""
    chosen = [layer for layer in model.sublayers(include_self=True) if isinstance(layer, Configurable)]
    for layer in chosen:
        layer.configure(config)
    return chosen


def configured_copy(model: nn.Layer, config: LayerConfig, share_tensors: bool = False) -> nn.Layer:
    """A copy of ``model`` built for ``config``: the same layers and values, each configurable layer in
    ``config``'s form; ``model`` itself keeps its own. With ``share_tensors`` the copy holds ``model``'s
    very parameters and buffers (not copies), so what it trains, gradients and BatchNorm statistics,
    lands in ``model``, and an optimizer of ``model``'s parameters steps it."""
    memo = {}
    if share_tensors:
        memo = {id(tensor): tensor for tensor in model.parameters() + model.buffers()}
    twin = copy.deepcopy(model, memo)
    configure_layers(twin, config)
    return twin
