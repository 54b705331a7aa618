"""An exponential moving average of the model's weights (``train.py --use_ema``), as PaddleSeg 2.8 keeps it.

After every optimisation step ``t`` (1-based iteration)::

    d = min(decay, (1 + t) / (10 + t))          # warm-up: early averages follow the weights closely
    ema = d * ema + (1 - d) * weights

over every floating-point entry of the model's state dict. Like upstream, that includes BatchNorm's
running mean and variance (non-trainable state): the averaged weights are then evaluated with
averaged statistics of the same period, which is what upstream's EMA model uses. The average starts
from the weights training starts from (after ``--finetune_from`` or a resume).

The average lives in a copy of the model (always in eval mode, no gradients), so evaluation and
``best_model`` use it as they would the model. Checkpoints keep it in ``model.pdopt`` under
:data:`paddleseg.checkpoint.training.EMA_KEY` as ``{structured name: numpy array}``: plain data that the
restricted loader reads, and exactly what a resume needs to continue bit for bit.
"""
import copy
from typing import Dict

import numpy as np
import paddle

from paddleseg.checkpoint.weights import check_weight
from paddleseg.errors import CheckpointError

DEFAULT_DECAY = 0.99  # PaddleSeg 2.8's ema_decay


class ModelEMA:
    """The moving average of ``model``'s state; ``model`` here is the one being trained (not wrapped)."""

    def __init__(self, model: paddle.nn.Layer, decay: float = DEFAULT_DECAY):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.eval()
        for p in self.model.parameters():
            p.stop_gradient = True

    def decay_at(self, iteration: int) -> float:
        return min(self.decay, (1 + iteration) / (10 + iteration))

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer, iteration: int) -> None:
        """Fold in ``model``'s weights after iteration ``iteration`` (1-based)."""
        d = self.decay_at(iteration)
        live = model.state_dict()
        for name, average in self.model.state_dict().items():
            if paddle.is_floating_point(average):
                current = live[name].detach()
                if current.dtype != average.dtype:  # AMP O2 trains fp16 weights; the average stays fp32
                    current = current.astype(average.dtype)
                average.set_value(average * d + current * (1.0 - d))

    @paddle.no_grad()
    def reset(self, model: paddle.nn.Layer) -> None:
        """Start the average again from ``model``'s current state."""
        self.model.set_state_dict(model.state_dict())

    def state_dict(self) -> Dict[str, np.ndarray]:
        return {name: value.numpy() for name, value in self.model.state_dict().items()}

    def load_state_dict(self, state: Dict[str, np.ndarray], source: str) -> None:
        """Restore a saved average; its keys must be exactly the model's (``source`` names the file)."""
        if not isinstance(state, dict):
            raise CheckpointError(f"{source}: the EMA state is not a dict (got {type(state).__name__})")
        ours = self.model.state_dict()
        if set(state) != set(ours):
            missing, extra = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
            raise CheckpointError(f"{source}: the EMA weights do not fit this model (missing {missing[:3]}, "
                                  f"unexpected {extra[:3]})")
        for name, value in ours.items():
            saved = check_weight(f"{source} (EMA)", name, state[name], tuple(value.shape), value.numpy().dtype)
            value.set_value(saved)
