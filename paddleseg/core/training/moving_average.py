"""``--use_ema``: after every iteration, fold the weights into their moving average
(:class:`paddleseg.core.ema.ModelEMA`, ``t.ema``), which evaluation, best_model and the checkpoints use."""
from paddleseg.core.training.companion import Companion, StepRecord


class MovingAverage(Companion):
    @classmethod
    def for_run(cls, t):
        return cls() if t.ema is not None else None

    def after_step(self, t, step: StepRecord) -> bool:
        t.ema.update(t.model, step.iteration)
        return False
