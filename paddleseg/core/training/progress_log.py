"""The ``[TRAIN]`` log line: the loss terms averaged since the previous line, the learning rate, time
per batch and for reading it, throughput and the time left (rank 0, every ``--log_iters``)."""
import logging
import time

from paddleseg.core.training.companion import Companion, StepRecord

logger = logging.getLogger(__name__)


def format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLog(Companion):
    @classmethod
    def for_run(cls, t):
        return cls() if t.rank == 0 else None

    def start(self, t) -> bool:
        self.started, self.first_iter = time.perf_counter(), t.state.iter + 1
        return False

    def after_step(self, t, step: StepRecord) -> bool:
        if step.averages is None:
            return False
        means, iters = step.averages, t.cfg.iters
        done = step.iteration - self.first_iter + 1
        eta = (time.perf_counter() - self.started) / done * (iters - step.iteration)
        losses = ", ".join(f"{n}={means[n]:.4f}" for n in t.names)
        batch_cost = means["batch_cost"]
        images_per_second = t.cfg.batch_size * t.world / max(batch_cost, 1e-9)
        logger.info("[TRAIN] iter %d/%d, epoch %d, %s, lr=%.6f, batch_cost=%.4f s, reader_cost=%.5f s, "
                    "ips=%.2f images/s, ETA %s", step.iteration, iters, (step.iteration - 1) // t.per_epoch + 1,
                    losses, step.lr, batch_cost, means["reader_cost"], images_per_second, format_eta(eta))
        return False
