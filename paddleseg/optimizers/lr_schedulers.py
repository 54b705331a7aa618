"""Learning-rate schedules as config components, each an optional linear warm-up followed by a decay.

Every registered schedule *is* a ``paddle.optimizer.lr.LRScheduler``: pass it to the optimizer, call
``step()`` once per training iteration, and save ``state_dict()`` with the checkpoint. Its length
defaults to the training length: the config builds it with its ``iters``::

    lr_scheduler = cfg.lr_scheduler  # built with iters=cfg.iters
    optimizer = cfg.optimizer        # cfg.model's parameters, learning_rate=cfg.lr_scheduler

Warm-up: for the first ``warmup_iters`` iterations the rate rises linearly from ``warmup_start_lr`` to
the schedule's first value; the decay then starts from its own step 0 (its steps, boundaries and
``T_max`` count from the end of the warm-up). The decay formulas are Paddle's own schedulers.

Any other ``paddle.optimizer.lr`` schedule is available under its Paddle name (``StepDecay``,
``MultiStepDecay``, ``ExponentialDecay``, ``OneCycleLR``, ``LinearWarmup``, ...), as PaddleSeg 2.8
configs write them: its own arguments (checked against its signature), the same warm-up keys, and
``decay_steps`` / ``T_max`` / ``total_steps`` defaulting to ``iters - warmup_iters``. ``LambdaDecay``,
``MultiplicativeDecay`` and ``ReduceOnPlateau`` need Python code or a metric and are not offered.
"""
import inspect
import typing
from typing import Optional

from paddle.optimizer import lr

from paddleseg.cvlibs import arguments, manager


class WarmupThenDecay(lr.LRScheduler):
    """Linear warm-up over ``warmup_iters`` iterations, then ``decay`` (a Paddle scheduler) from its step 0.

    Like ``paddle.optimizer.lr.LinearWarmup``, but ``warmup_iters`` may be 0 (no warm-up), so that one
    config type is one class. The decay is stepped to an explicit iteration, so its value is a function
    of ``last_epoch`` alone and ``state_dict()`` (``last_epoch``, ``last_lr``) resumes it exactly.
    """

    def __init__(self, decay: lr.LRScheduler, warmup_iters: int = 0, warmup_start_lr: float = 0.0):
        name = type(self).__name__
        self.decay = decay
        self.warmup_iters = arguments.non_negative(name, "warmup_iters", warmup_iters, integer=True)
        self.warmup_start_lr = float(arguments.non_negative(name, "warmup_start_lr", warmup_start_lr))
        self.warmup_end_lr = decay()  # the decay's rate at its step 0
        super().__init__(learning_rate=self.warmup_end_lr)

    def get_lr(self) -> float:
        if self.last_epoch < self.warmup_iters:
            ramp = self.last_epoch / self.warmup_iters
            return self.warmup_start_lr + (self.warmup_end_lr - self.warmup_start_lr) * ramp
        self.decay.step(self.last_epoch - self.warmup_iters)
        return self.decay()


def decay_length(owner: str, argument: str, given: Optional[int], iters: Optional[int], warmup_iters: int) -> int:
    """``given``, or the iterations after the warm-up (``iters - warmup_iters``); must be positive."""
    arguments.non_negative(owner, "warmup_iters", warmup_iters, integer=True)
    if given is None:
        if iters is None:
            raise ValueError(f"{owner}.{argument} is not set and the training iters were not passed: set "
                             f"lr_scheduler.{argument}, or build the scheduler with iters=")
        given = iters - warmup_iters
        if given <= 0:
            raise ValueError(f"{owner}: warmup_iters ({warmup_iters}) leaves no iterations of the {iters} "
                             f"training iters to decay over")
    return arguments.positive(owner, argument, given, integer=True)


@manager.LR_SCHEDULERS.add_component
class PolynomialDecay(WarmupThenDecay):
    """``lr = (learning_rate - end_lr) * (1 - step / decay_steps) ** power + end_lr``, ``step <= decay_steps``.

    ``decay_steps`` defaults to ``iters - warmup_iters``; with ``cycle`` the decay restarts every
    ``decay_steps`` (Paddle's ``PolynomialDecay``), otherwise it stays at ``end_lr`` after it.
    """

    def __init__(self, learning_rate: float, decay_steps: Optional[int] = None, end_lr: float = 0.0,
                 power: float = 0.9, cycle: bool = False, warmup_iters: int = 0, warmup_start_lr: float = 0.0,
                 iters: Optional[int] = None):
        steps = decay_length("PolynomialDecay", "decay_steps", decay_steps, iters, warmup_iters)
        learning_rate = arguments.positive("PolynomialDecay", "learning_rate", learning_rate)
        end_lr = arguments.non_negative("PolynomialDecay", "end_lr", end_lr)
        power = arguments.positive("PolynomialDecay", "power", power)
        super().__init__(lr.PolynomialDecay(learning_rate, steps, end_lr=end_lr, power=power, cycle=cycle),
                         warmup_iters, warmup_start_lr)


@manager.LR_SCHEDULERS.add_component
class CosineAnnealingDecay(WarmupThenDecay):
    """``lr = eta_min + (learning_rate - eta_min) * (1 + cos(pi * step / T_max)) / 2``.

    ``T_max`` (Paddle's name) defaults to ``iters - warmup_iters``, so the rate reaches ``eta_min`` at
    the last iteration.
    """

    def __init__(self, learning_rate: float, T_max: Optional[int] = None, eta_min: float = 0.0,  # noqa: N803
                 warmup_iters: int = 0, warmup_start_lr: float = 0.0, iters: Optional[int] = None):
        steps = decay_length("CosineAnnealingDecay", "T_max", T_max, iters, warmup_iters)
        learning_rate = arguments.positive("CosineAnnealingDecay", "learning_rate", learning_rate)
        eta_min = arguments.non_negative("CosineAnnealingDecay", "eta_min", eta_min)
        super().__init__(lr.CosineAnnealingDecay(learning_rate, steps, eta_min=eta_min),
                         warmup_iters, warmup_start_lr)


@manager.LR_SCHEDULERS.add_component
class PiecewiseDecay(WarmupThenDecay):
    """``values[i]`` from step ``boundaries[i - 1]`` (inclusive) to ``boundaries[i]``; ``len(values) =
    len(boundaries) + 1``. ``iters`` is accepted so every schedule is built the same way; it is unused."""

    def __init__(self, boundaries: list, values: list, warmup_iters: int = 0, warmup_start_lr: float = 0.0,
                 iters: Optional[int] = None):
        if not isinstance(boundaries, (list, tuple)) or not boundaries:
            raise ValueError(f"PiecewiseDecay.boundaries must be a non-empty list of iterations, got {boundaries!r}")
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"PiecewiseDecay.values must be a list of learning rates, got {values!r}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseDecay.values needs one entry more than boundaries: got "
                             f"{len(values)} values for {len(boundaries)} boundaries")
        boundaries = [arguments.positive("PiecewiseDecay", f"boundaries[{i}]", b, integer=True)
                      for i, b in enumerate(boundaries)]
        if any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseDecay.boundaries must be increasing, got {boundaries}")
        values = [float(arguments.non_negative("PiecewiseDecay", f"values[{i}]", v)) for i, v in enumerate(values)]
        super().__init__(lr.PiecewiseDecay(boundaries, values),
                         warmup_iters, warmup_start_lr)


# ----------------------------------------------------------------------------------------------
# Every other ``paddle.optimizer.lr`` schedule by its Paddle name (PaddleSeg 2.8 configs name them so),
# with the same warm-up keys. The three classes above keep their names and behaviour.
# ----------------------------------------------------------------------------------------------
# Not buildable from YAML: they need a Python function (LambdaDecay, MultiplicativeDecay) or a metric
# passed to step() (ReduceOnPlateau).
_NOT_FROM_CONFIG = ("LambdaDecay", "MultiplicativeDecay", "ReduceOnPlateau")
# Set by the schedule itself, never by a config.
_MANAGED_ARGUMENTS = ("last_epoch", "verbose")
# Length arguments that default, as ``decay_steps`` does above, to the iterations after the warm-up.
_LENGTH_ARGUMENTS = ("decay_steps", "T_max", "total_steps")
# Schedules whose get_lr() is recursive (each value from the previous one): jumping to a step, as a
# resume does, must replay the steps in between.
_RECURSIVE = ("LinearLR",)


class PaddleSchedule(WarmupThenDecay):
    """A ``paddle.optimizer.lr`` class (``decay_class``) behind the optional linear warm-up.

    Made per Paddle class by :func:`paddle_schedule`, whose signature is the Paddle class's own (its
    arguments keyword-only, without ``last_epoch``/``verbose``) plus ``warmup_iters``,
    ``warmup_start_lr`` and ``iters``, so that a config's arguments are checked against it.
    """

    decay_class: type = lr.LRScheduler

    def __init__(self, warmup_iters: int = 0, warmup_start_lr: float = 0.0, iters: Optional[int] = None,
                 **arguments):
        name = type(self).__name__
        for length in _LENGTH_ARGUMENTS:
            if length in self.length_arguments and arguments.get(length) is None:
                arguments[length] = decay_length(name, length, None, iters, warmup_iters)
        super().__init__(self.decay_class(**arguments), warmup_iters, warmup_start_lr)

    def get_lr(self) -> float:
        target = self.last_epoch - self.warmup_iters
        if target >= 0 and type(self).__name__ in _RECURSIVE:
            while self.decay.last_epoch < target:
                self.decay.step()
            return self.decay()
        return super().get_lr()

    length_arguments: tuple = ()


def _paddle_hints(decay_class: type) -> dict:
    """The Paddle class's argument annotations, resolved (some name ``Sequence`` without importing it)."""
    try:
        return typing.get_type_hints(decay_class.__init__, localns=vars(typing))
    except (NameError, TypeError):
        return {}


def paddle_schedule(decay_class: type) -> type:
    """A :class:`PaddleSchedule` subclass named like ``decay_class``, with a checkable signature."""
    own = [p for p in inspect.signature(decay_class).parameters.values() if p.name not in _MANAGED_ARGUMENTS]
    lengths = tuple(p.name for p in own if p.name in _LENGTH_ARGUMENTS)
    hints = {k: v for k, v in _paddle_hints(decay_class).items() if k in {p.name for p in own}}
    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                            default=None if p.name in lengths and p.default is p.empty else p.default,
                            annotation=hints.get(p.name, inspect.Parameter.empty)) for p in own]
    extra = inspect.signature(WarmupThenDecay.__init__).parameters
    parameters += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=extra[n].default,
                                     annotation=extra[n].annotation) for n in ("warmup_iters", "warmup_start_lr")]
    parameters.append(inspect.Parameter("iters", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Optional[int]))

    def __init__(self, **kwargs):  # noqa: N807 (the signature below is what callers see)
        PaddleSchedule.__init__(self, **kwargs)

    __init__.__annotations__ = {**hints, "warmup_iters": int, "warmup_start_lr": float, "iters": Optional[int]}
    for length in lengths:
        __init__.__annotations__[length] = Optional[__init__.__annotations__.get(length, int)]
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + parameters)
    doc = (f"``paddle.optimizer.lr.{decay_class.__name__}`` after an optional linear warm-up "
           f"(``warmup_iters``, ``warmup_start_lr``)"
           + (f"; {', '.join(lengths)} defaults to ``iters - warmup_iters``." if lengths else "."))
    return type(decay_class.__name__, (PaddleSchedule,), {
        "__init__": __init__, "__signature__": inspect.Signature(parameters), "__doc__": doc,
        "__module__": __name__, "decay_class": decay_class, "length_arguments": lengths})


def register_paddle_schedules() -> None:
    """Register every ``paddle.optimizer.lr`` schedule not registered yet (ours keep priority)."""
    for name, value in sorted(vars(lr).items()):
        if (inspect.isclass(value) and issubclass(value, lr.LRScheduler) and value is not lr.LRScheduler
                and name not in _NOT_FROM_CONFIG and name not in manager.LR_SCHEDULERS):
            manager.LR_SCHEDULERS.add_component(paddle_schedule(value))


register_paddle_schedules()
