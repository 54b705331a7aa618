"""Optimizers and learning-rate schedules (registered in ``manager.OPTIMIZERS`` / ``manager.LR_SCHEDULERS``)."""
from paddleseg.optimizers.lr_schedulers import CosineAnnealingDecay, PiecewiseDecay, PolynomialDecay  # noqa: F401
from paddleseg.optimizers.optimizers import SGD, Adam, AdamW, Momentum  # noqa: F401
