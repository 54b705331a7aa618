"""``--early_stop_intervals N`` (with ``--do_eval``): stop, checkpoint saved, once N evaluations in a row
have not improved the best mIoU. The count comes from the training state (the best mIoU's iteration),
so it continues across a resume, and a run resumed after it stopped has nothing to train. Only rank 0
evaluates: its decision is broadcast to every rank."""
import logging

import paddle

from paddleseg.checkpoint.training import TrainState
from paddleseg.core.training.companion import CheckpointRecord, Companion

logger = logging.getLogger(__name__)


def stale_evaluations(state: TrainState, save_interval: int) -> int:
    """Evaluations since the best mIoU (they run every ``save_interval`` iterations)."""
    return 0 if state.best_iter < 0 else (state.iter - state.best_iter) // save_interval


class EarlyStop(Companion):
    @classmethod
    def for_run(cls, t):
        return cls() if t.opts.early_stop_intervals else None

    def stale(self, t) -> int:
        return stale_evaluations(t.state, t.opts.save_interval)

    def start(self, t) -> bool:
        if self.stale(t) < t.opts.early_stop_intervals:
            return False
        logger.info("%s: the run had already stopped early (no better mIoU than %.4f at iteration %d in %d "
                    "evaluations); nothing to train", t.resumed_from, t.state.best_miou,
                    t.state.best_iter, self.stale(t))
        return True

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        if not point.scheduled or point.iteration >= t.cfg.iters:
            return False
        stop = self.stale(t) >= t.opts.early_stop_intervals
        if t.world > 1:
            flag = paddle.to_tensor([int(stop)])
            paddle.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        if stop:
            logger.info("[EVAL] no better mIoU than %.4f (iteration %d) in %d evaluations (--early_stop_intervals %d): "
                        "stopped early at iteration %d of %d", t.state.best_miou, t.state.best_iter, self.stale(t),
                        t.opts.early_stop_intervals, point.iteration, t.cfg.iters)
        return stop
