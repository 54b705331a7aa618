"""Activation recomputation (``train.py --recompute``): a block's forward keeps none of its
intermediate activations, and runs a second time in the backward pass to compute its gradients.
Memory for time, with the same gradients.

Paddle's ``recompute`` (``paddle.distributed.fleet.utils``) in its hook form (``use_reentrant=False``):
the block runs once with autograd, its saved tensors replaced by placeholders, and again when the
backward pass first needs one of them. Unlike the re-entrant form, the parameters' gradients come from
the ordinary backward pass (``paddle.DataParallel``'s gradient hooks see them), a block whose inputs
need no gradient still trains its parameters, and BatchNorm's gradient finds its saved tensors as it
left them (the re-entrant form fails Paddle's inplace-version check once the running statistics are
restored, below). Paddle allows one pair of saved-tensor hooks at a time, so recomputed blocks must
not nest: a model's ``set_recompute`` chooses blocks that do not contain one another. A ``PyLayer``
inside a block gets its saved tensors back as new tensors (a parameter without a gradient yet comes
back with ``stop_gradient=True``): it must decide in ``forward`` which gradients it returns.

A training-mode forward moves BatchNorm's running statistics, and the re-run would move them a second
time. :func:`recompute` puts back every non-trainable parameter and buffer of the block's layers (the
running statistics) after the re-run, so they advance once per step, as without recomputation. The
random state is saved with the forward and restored for the re-run (``preserve_rng_state``): a block
with dropout draws the same mask twice, and the global generator ends where it would without
recomputation.

Blocks recompute only in a training-mode forward with gradients on, of a model built for eager
execution (:func:`applies`): evaluation, ``paddle.no_grad()`` and a model built for a traced graph
(the layer configuration's ``traced``: export, ``--to_static_training``; models/layer_config.py) run
them as usual.
"""
from typing import Callable, List, Sequence

import paddle
import paddle.nn as nn
from paddle.distributed.fleet.utils import recompute as paddle_recompute

from paddleseg.models import layer_config
from paddleseg.models.layer_config import Configurable


class Recomputable(nn.Layer, Configurable):
    """A layer that can recompute its forward (:meth:`compute`, defined by the subclass) in the
    backward pass. ``recompute`` is off when built and is a plain attribute: the state-dict keys are
    the same either way."""

    def __init__(self):
        super().__init__()
        self.recompute = False
        self.configure(layer_config.current())

    def forward(self, *inputs: paddle.Tensor):
        return run(self, [self], self.compute, *inputs)

    def compute(self, *inputs: paddle.Tensor):
        raise NotImplementedError


def applies(owner: Configurable, switch: str = "recompute") -> bool:
    """Whether ``owner``'s blocks are recomputed in this forward: its ``switch`` attribute (by default
    ``recompute``) is on, ``owner`` was built for eager execution (a traced graph runs no Python in its
    backward pass), and this is a training-mode forward with gradients on."""
    return (getattr(owner, switch) and not owner.layer_config.traced and owner.training
            and paddle.is_grad_enabled())


def run(owner: Configurable, layers: Sequence[nn.Layer], function: Callable, *inputs: paddle.Tensor,
        switch: str = "recompute"):
    """``function(*inputs)``, recomputed in the backward pass when :func:`applies` to ``owner`` and
    ``switch`` (``layers``: as for :func:`recompute`)."""
    return recompute(layers, function, *inputs) if applies(owner, switch) else function(*inputs)


def recompute(layers: Sequence[nn.Layer], function: Callable, *inputs: paddle.Tensor):
    """``function(*inputs)`` without keeping its activations for the backward pass. ``layers``: the
    layers ``function`` runs, whose running statistics the first run alone updates. Exactly those:
    putting back the statistics of a layer that ran outside ``function`` would change a tensor its
    BatchNorm gradient saved, which Paddle refuses in the backward pass."""
    return paddle_recompute(_state_updated_once(layers, function), *inputs, use_reentrant=False,
                            preserve_rng_state=True)


def _forward_state(layers: Sequence[nn.Layer]) -> List[paddle.Tensor]:
    """What a forward may change in place: non-trainable parameters (BatchNorm's running mean and
    variance are such) and buffers."""
    state = []
    for layer in layers:
        state += [p for p in layer.parameters() if p.stop_gradient] + list(layer.buffers())
    return state


def _state_updated_once(layers: Sequence[nn.Layer], function: Callable) -> Callable:
    """``function`` whose second and later calls (the re-runs) leave the forward state of ``layers``
    as they found it."""
    calls = 0

    def call(*inputs):
        nonlocal calls
        calls += 1
        if calls == 1:
            return function(*inputs)
        with paddle.no_grad():
            saved = [t.clone() for t in _forward_state(layers)]
        try:
            return function(*inputs)
        finally:
            with paddle.no_grad():
                for tensor, value in zip(_forward_state(layers), saved):
                    paddle.assign(value, output=tensor)

    return call
