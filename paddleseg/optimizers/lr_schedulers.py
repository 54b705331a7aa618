"""Learning-rate schedules as config components, each an optional linear warm-up followed by a decay.

Every registered schedule *is* a ``paddle.optimizer.lr.LRScheduler``: pass it to the optimizer, call
``step()`` once per training iteration, and save ``state_dict()`` with the checkpoint. Its length
defaults to the training length: the config builds it with its ``iters``::

    lr_scheduler = cfg.lr_scheduler  # built with iters=cfg.iters
    optimizer = cfg.optimizer        # cfg.model's parameters, learning_rate=cfg.lr_scheduler

Warm-up: for the first ``warmup_iters`` iterations the rate rises linearly from ``warmup_start_lr`` to
the schedule's first value; the decay then starts from its own step 0 (its steps, boundaries and
``T_max`` count from the end of the warm-up). The decay formulas are Paddle's own schedulers.
"""
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
