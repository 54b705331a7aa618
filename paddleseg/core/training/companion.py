"""What rides along the training loop, and what the loop hands it.

A :class:`Companion` is one feature in one file (the progress log, VisualDL, evaluation, checkpoints,
...). The loop (:mod:`paddleseg.core.training.loop`) builds the companions a run needs from its list
(:meth:`Companion.for_run`) and calls them, in that order, at a few fixed points; each method does
nothing unless a companion overrides it. ``start``, ``after_step`` and ``at_checkpoint`` return True to
end the run at that point (early stop, the profiler's ``exit_on_finished``).

    start(t)                    before the first iteration
    after_step(t, step)         after every iteration, with its losses (a :class:`StepRecord`)
    at_checkpoint(t, point)     every save_interval iterations, at the last one, and where a companion
                                ended the run (a :class:`CheckpointRecord` they fill in turn)
    on_interrupt(t, point)      Ctrl-C or SIGTERM, once the iteration in progress is complete
    at_end(t)                   however the loop ended

``t`` is the :class:`~paddleseg.core.training.prepare.Training` being run.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional


@dataclass
class StepRecord:
    """One completed iteration. ``averages``: on iterations that are logged (every ``log_iters``, and
    the last), the means since the previous log line of each loss term, ``batch_cost`` and
    ``reader_cost`` (seconds); None on the others."""

    iteration: int
    losses: Dict[str, float]
    lr: float
    averages: Optional[Dict[str, float]] = None


@dataclass
class CheckpointRecord:
    """A checkpoint of ``iteration``, filled in by the companions in turn: the evaluation's ``result``
    (a :class:`~paddleseg.utils.metrics.ConfusionMatrix`) and ``worst`` images, then the saved ``path``.
    ``scheduled``: at a save interval or the last iteration (evaluated), not where a companion or an
    interruption stopped the run in between. ``interruption``: the Ctrl-C or SIGTERM being handled."""

    iteration: int
    scheduled: bool = True
    result: Optional[object] = None
    worst: Optional[object] = None
    path: Optional[Path] = None
    interruption: Optional[BaseException] = None


class Companion:
    """A feature that rides along the training loop (module docstring)."""

    @classmethod
    def for_run(cls, t) -> Optional["Companion"]:
        """This feature's companion for run ``t``, or None when the run does not use it here (its flag
        is off, or this rank has nothing to do)."""
        return cls()

    def start(self, t) -> bool:
        return False

    def after_step(self, t, step: StepRecord) -> bool:
        return False

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        return False

    def on_interrupt(self, t, point: CheckpointRecord) -> None:
        pass

    def at_end(self, t) -> None:
        pass


class LogWindow:
    """The values of the iterations since the last log line, averaged when it is written."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.count = 0

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def take(self) -> Dict[str, float]:
        """The means, and a new window."""
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means
