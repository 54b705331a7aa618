"""Optimizers as config components: a registered class holds the settings, calling it builds the Paddle optimizer.

    settings = SGD(momentum=0.9, weight_decay=4e-5)  # what a config's optimizer section builds
    optimizer = settings(model.parameters(), learning_rate=lr_scheduler)

From a config, ``cfg.optimizer`` does both: ``cfg.model``'s parameters, ``learning_rate=cfg.lr_scheduler``.

``weight_decay`` is L2 regularisation as Paddle applies it (``paddle.regularizer.L2Decay``): ``coeff *
param`` is added to the gradient before the update, for every optimizer here but ``AdamW`` (for Adam
too), whose decay is decoupled from the gradient. ``grad_clip_norm`` clips the gradients by their global
norm before that.
"""
from typing import Iterable, Optional, Union

import paddle
from paddle.optimizer.lr import LRScheduler

from paddleseg.cvlibs import arguments, manager

LearningRate = Union[float, LRScheduler]


class OptimizerSettings:
    """What every optimizer here shares: L2 weight decay and optional global-norm gradient clipping."""

    def __init__(self, weight_decay: float = 0.0, grad_clip_norm: Optional[float] = None):
        name = type(self).__name__
        self.weight_decay = float(arguments.non_negative(name, "weight_decay", weight_decay))
        if grad_clip_norm is not None:  # null: no clipping
            grad_clip_norm = float(arguments.positive(name, "grad_clip_norm", grad_clip_norm))
        self.grad_clip_norm = grad_clip_norm

    def common_arguments(self, parameters: Iterable, learning_rate: LearningRate) -> dict:
        """The keyword arguments every ``paddle.optimizer`` class takes."""
        return {
            "learning_rate": learning_rate,
            "parameters": list(parameters),
            "weight_decay": paddle.regularizer.L2Decay(self.weight_decay) if self.weight_decay else None,
            "grad_clip": paddle.nn.ClipGradByGlobalNorm(self.grad_clip_norm) if self.grad_clip_norm else None,
        }


def _check_fraction(owner: str, name: str, value: float) -> float:
    return float(arguments.number(owner, name, value, 0, 1, high_open=True))


@manager.OPTIMIZERS.add_component
class Adam(OptimizerSettings):
    """Adam (Kingma & Ba, 2015) with L2 weight decay added to the gradient."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.0, grad_clip_norm: Optional[float] = None):
        super().__init__(weight_decay, grad_clip_norm)
        name = type(self).__name__
        self.beta1 = _check_fraction(name, "beta1", beta1)
        self.beta2 = _check_fraction(name, "beta2", beta2)
        self.epsilon = float(arguments.positive(name, "epsilon", epsilon))

    def __call__(self, parameters: Iterable, learning_rate: LearningRate) -> paddle.optimizer.Optimizer:
        return paddle.optimizer.Adam(beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon,
                                     **self.common_arguments(parameters, learning_rate))


@manager.OPTIMIZERS.add_component
class SGD(OptimizerSettings):
    """Stochastic gradient descent; with ``momentum > 0`` it is SGD with (heavy-ball or Nesterov) momentum.

    PaddleSeg configs write ``type: sgd, momentum: 0.9`` for momentum SGD, so that builds
    ``paddle.optimizer.Momentum``; ``momentum: 0`` builds plain ``paddle.optimizer.SGD``.
    """

    def __init__(self, momentum: float = 0.0, use_nesterov: bool = False, weight_decay: float = 0.0,
                 grad_clip_norm: Optional[float] = None):
        super().__init__(weight_decay, grad_clip_norm)
        momentum = _check_fraction(type(self).__name__, "momentum", momentum)
        if use_nesterov and momentum == 0:
            raise ValueError(f"{type(self).__name__}.use_nesterov needs a momentum > 0")
        self.momentum, self.use_nesterov = momentum, use_nesterov

    def __call__(self, parameters: Iterable, learning_rate: LearningRate) -> paddle.optimizer.Optimizer:
        arguments = self.common_arguments(parameters, learning_rate)
        if self.momentum == 0:
            return paddle.optimizer.SGD(**arguments)
        return paddle.optimizer.Momentum(momentum=self.momentum, use_nesterov=self.use_nesterov, **arguments)


@manager.OPTIMIZERS.add_component
class Momentum(SGD):
    """SGD with momentum: ``velocity = momentum * velocity + grad; param -= lr * velocity`` (or Nesterov)."""

    def __init__(self, momentum: float = 0.9, use_nesterov: bool = False, weight_decay: float = 0.0,
                 grad_clip_norm: Optional[float] = None):
        super().__init__(momentum, use_nesterov, weight_decay, grad_clip_norm)


@manager.OPTIMIZERS.add_component
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), Paddle's ``AdamW``:
    ``param -= lr * weight_decay * param`` beside the Adam step, not added to the gradient.
    ``weight_decay`` defaults to 0.01 (Paddle's and PaddleSeg 2.8's default)."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.01, grad_clip_norm: Optional[float] = None):
        super().__init__(beta1, beta2, epsilon, weight_decay, grad_clip_norm)

    def __call__(self, parameters: Iterable, learning_rate: LearningRate) -> paddle.optimizer.Optimizer:
        common = self.common_arguments(parameters, learning_rate)
        common["weight_decay"] = self.weight_decay  # a float: Paddle's AdamW decays decoupled
        return paddle.optimizer.AdamW(beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon, **common)


# The lower-case spellings PaddleSeg configs use.
manager.OPTIMIZERS.add_component(AdamW, name="adamw")
manager.OPTIMIZERS.add_component(Adam, name="adam")
manager.OPTIMIZERS.add_component(SGD, name="sgd")
manager.OPTIMIZERS.add_component(Momentum, name="momentum")
