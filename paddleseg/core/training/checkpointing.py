"""Checkpoints of the run (rank 0): ``save_dir/iter_N`` at every checkpoint of the loop, the oldest of
this run's pruned to ``--keep_checkpoint_max``, and a last one at Ctrl-C or SIGTERM once the iteration
in progress is complete (never of weights that are not finite). ``t.last_checkpoint`` is the newest
that verifies, for the messages of a diverged run (:mod:`paddleseg.checkpoint.training`)."""
import logging
from pathlib import Path

from paddleseg.checkpoint import training as checkpoints
from paddleseg.core.training.companion import CheckpointRecord, Companion
from paddleseg.core.training.divergence import all_finite
from paddleseg.utils.signals import Terminated

logger = logging.getLogger(__name__)


class Checkpointing(Companion):
    def __init__(self):
        self.first_iter = None  # the first iteration this process trains

    @classmethod
    def for_run(cls, t):
        return cls() if t.rank == 0 else None

    def start(self, t) -> bool:
        self.first_iter = t.state.iter + 1
        t.last_checkpoint = checkpoints.latest_valid(Path(t.opts.save_dir), t.state.run_id)
        return False

    def save(self, t) -> Path:
        path = checkpoints.save_checkpoint(Path(t.opts.save_dir), t.model, t.optimizer, t.state, t.scaler, t.ema)
        t.last_checkpoint = path
        return path

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        point.path = self.save(t)
        keep = t.opts.keep_checkpoint_max
        for old in checkpoints.prune(Path(t.opts.save_dir), keep, t.state.run_id):
            logger.info("removed old checkpoint %s (keep_checkpoint_max=%d)", old, keep)
        logger.info("saved %s", point.path)
        return False

    def on_interrupt(self, t, point: CheckpointRecord) -> None:
        if self.first_iter is None or t.state.iter < self.first_iter or not all_finite(t.model):
            return
        point.path = self.save(t)
        what = "terminated (SIGTERM)" if isinstance(point.interruption, Terminated) else "interrupted"
        logger.warning("%s: saved %s at iteration %d; continue with --resume_model %s", what, point.path,
                       t.state.iter, point.path)

