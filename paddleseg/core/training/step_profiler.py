"""``--profiler_options``: paddle.profiler over a range of iterations (:mod:`paddleseg.core.profiling`);
with ``exit_on_finished=true`` the run ends, checkpointed, once the range is over."""
import logging
from pathlib import Path

from paddleseg.core.profiling import StepProfiler
from paddleseg.core.training.companion import Companion, StepRecord

logger = logging.getLogger(__name__)


class Profiler(Companion):
    def __init__(self):
        self.profiler = None

    @classmethod
    def for_run(cls, t):
        return cls() if t.opts.profiler_options is not None else None

    def start(self, t) -> bool:
        self.profiler = StepProfiler(t.opts.profiler_options, Path(t.opts.save_dir), t.opts.device)
        return False

    def after_step(self, t, step: StepRecord) -> bool:
        if not (self.profiler.step() and t.opts.profiler_options.exit_on_finished and step.iteration < t.cfg.iters):
            return False
        logger.info("profiling finished at iteration %d (exit_on_finished=true): training stops here", step.iteration)
        return True

    def at_end(self, t) -> None:
        if self.profiler is not None:
            self.profiler.close()
