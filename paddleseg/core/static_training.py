"""``train.py --to_static_training``: the training forward pass compiled by ``paddle.jit.to_static``.

:class:`StaticForward` holds the model and converts only its own ``forward`` (a call of the model):
the model itself is not converted in place, so its parameters, structured names and checkpoint format
are dygraph's, and evaluation and export still run the dygraph model. The loss and the optimiser step
stay in dygraph (the backward pass runs through the compiled program's gradient).
"""
import paddle


class StaticForward(paddle.nn.Layer):
    """``model(images)`` through one to_static program (retraced per input shape and train/eval mode)."""

    def __init__(self, model: paddle.nn.Layer):
        super().__init__()
        self.model = model
        self._compiled = paddle.jit.to_static(self._forward, full_graph=True)

    def _forward(self, images):
        return self.model(images)

    def forward(self, images):
        return self._compiled(images)
