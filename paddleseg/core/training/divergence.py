"""A run that diverged stops at once: a loss term that is not finite (the step then updated nothing),
or weights that are not finite at a checkpoint (a finite loss whose update overflowed them). Nothing
diverged is saved; the message names the iteration, the loss terms and the last good checkpoint."""
import math
from typing import Dict, Optional

import paddle

from paddleseg.errors import UserError


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite."""


def all_finite(model: paddle.nn.Layer) -> bool:
    return all(bool(paddle.isfinite(p).all()) for p in model.parameters())


def format_terms(losses: Dict[str, float]) -> str:
    return ", ".join(f"{n}={v}" for n, v in losses.items())


def check_loss(iteration: int, losses: Dict[str, float], batch: Dict, last_good: Optional[object]) -> None:
    if not all(math.isfinite(v) for v in losses.values()):
        raise TrainingDiverged(
            f"iteration {iteration}: the loss is not finite ({format_terms(losses)}); no checkpoint of these "
            f"weights was saved. Last good checkpoint: {last_good or 'none'}. Lower the learning rate or check the "
            f"data of this batch: {batch['img_path']}")


def check_weights(iteration: int, model: paddle.nn.Layer, losses: Dict[str, float],
                  last_good: Optional[object]) -> None:
    if not all_finite(model):
        raise TrainingDiverged(
            f"iteration {iteration}: the weights are not finite after the update ({format_terms(losses)}); no "
            f"checkpoint of them was saved. Last good checkpoint: {last_good or 'none'}. Lower the learning rate")
