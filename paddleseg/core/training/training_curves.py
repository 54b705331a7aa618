"""The run's history and its picture, ``save_dir/train_history.json`` and ``training_curves.png``
(:mod:`paddleseg.core.train_history`; rank 0): every log line's values and every evaluation's scores,
redrawn with each checkpoint, the interruption's included, and continued by a resumed run."""
from pathlib import Path

from paddleseg.core.train_history import TrainHistory
from paddleseg.core.training.companion import CheckpointRecord, Companion, StepRecord


class TrainingCurves(Companion):
    def __init__(self):
        self.history = None

    @classmethod
    def for_run(cls, t):
        return cls() if t.rank == 0 else None

    def start(self, t) -> bool:
        self.history = TrainHistory.resume(Path(t.opts.save_dir), t.state.run_id, t.state.iter)
        return False

    def after_step(self, t, step: StepRecord) -> bool:
        if step.averages is not None:
            self.history.add_train(step.iteration, step.lr, {n: step.averages[n] for n in t.names})
        return False

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        if point.result is not None:
            self.history.add_eval(point.iteration, point.result.miou(), point.result.pixel_accuracy())
        self.history.write(Path(t.opts.save_dir))
        return False

    def on_interrupt(self, t, point: CheckpointRecord) -> None:
        if point.path is not None and self.history is not None:  # drawn with the checkpoint it belongs to
            self.history.write(Path(t.opts.save_dir))
