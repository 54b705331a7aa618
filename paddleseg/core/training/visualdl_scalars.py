"""``--use_vdl``: the logged loss terms and learning rate (``Train/...``) and the evaluation scores
(``Evaluate/mIoU``, ``Evaluate/Acc``) as VisualDL scalars in ``save_dir/vdl`` (rank 0)."""
from pathlib import Path

from paddleseg.core.training.companion import CheckpointRecord, Companion, StepRecord
from paddleseg.errors import UserError


class VisualDLScalars(Companion):
    def __init__(self):
        self.writer = None

    @classmethod
    def for_run(cls, t):
        return cls() if t.opts.use_vdl and t.rank == 0 else None

    def start(self, t) -> bool:
        try:
            from visualdl import LogWriter
        except ImportError as e:
            raise UserError("--use_vdl needs VisualDL (pip install visualdl)") from e
        self.writer = LogWriter(str(Path(t.opts.save_dir) / "vdl"))
        return False

    def after_step(self, t, step: StepRecord) -> bool:
        if step.averages is not None:
            for n in t.names:
                self.writer.add_scalar(f"Train/{n}", step.averages[n], step.iteration)
            self.writer.add_scalar("Train/lr", step.lr, step.iteration)
        return False

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        if point.result is not None:
            self.writer.add_scalar("Evaluate/mIoU", point.result.miou(), point.iteration)
            self.writer.add_scalar("Evaluate/Acc", point.result.pixel_accuracy(), point.iteration)
        return False

    def at_end(self, t) -> None:
        if self.writer is not None:
            self.writer.close()
