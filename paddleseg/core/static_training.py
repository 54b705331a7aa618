"""``train.py --to_static_training``: the training forward pass compiled by ``paddle.jit.to_static``.

:class:`StaticForward` traces a twin of the model built for a traced graph
(:func:`paddleseg.models.layer_config.configured_copy`): the same layers holding the model's very
parameters and buffers, each in its graph-friendly form. The model itself is neither converted nor
reconfigured, so its parameters, structured names and checkpoint format are dygraph's, and evaluation
and export still run the dygraph model with its eager forms. The optimiser steps the model's
parameters, which are the twin's; the loss and the optimiser step stay in dygraph (the backward pass
runs through the compiled program's gradient).
"""
import paddle

from paddleseg.models.layer_config import LayerConfig, configured_copy


class StaticForward(paddle.nn.Layer):
    """``model(images)`` through one to_static program (retraced per input shape and train/eval mode)."""

    def __init__(self, model: paddle.nn.Layer):
        super().__init__()
        self.model = configured_copy(model, LayerConfig.for_tracing(), share_tensors=True)
        self._compiled = paddle.jit.to_static(self._forward, full_graph=True)

    def _forward(self, images):
        return self.model(images)

    def forward(self, images):
        return self._compiled(images)
