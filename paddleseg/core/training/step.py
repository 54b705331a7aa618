"""One optimisation step: forward, losses, backward, update.

Also what :mod:`tools/benchmark_train.py` times, so it measures what train.py runs. Ctrl-C and SIGTERM
are held by the loop around the whole step (:func:`paddleseg.utils.signals.interruptions_held`).
"""
import math
from typing import Dict, List

import paddle

from paddleseg.losses import compute_losses
from paddleseg.utils.memory import trim_before_peak

# Mixed precision for this network, set deliberately (Paddle 3.3.1's fp16 lists, checked op by op in
# tests/test_train.py): conv2d (1x1 and group convolutions) and matmul (the auxiliary upsampling) are
# on Paddle's white list; depthwise_conv2d, prelu, pool2d and batch_norm are "gray" and, with their
# fp32 weights or slopes, would be promoted back to fp32, and bilinear_interp_v2 is on the black
# list. Left so, O1 would run only the 1x1 convolutions in fp16 and cast around every EESP branch.
# These four run in fp16 too; softmax cross-entropy and the means stay fp32 (black list), and the
# logits are cast to fp32 before the loss.
AMP_FP16_OPS = ("depthwise_conv2d", "prelu", "pool2d", "bilinear_interp_v2")


def step(model, optimizer, scaler, losses: Dict, batch: Dict, amp_level: str = "O1") -> List[float]:
    """One optimisation step; returns the loss terms. A non-finite loss updates nothing."""
    images, labels = batch["img"], batch["label"]
    with paddle.amp.auto_cast(enable=scaler is not None, level=amp_level, custom_white_list=set(AMP_FP16_OPS)):
        logits = list(model(images))
    if scaler is not None:
        logits = [x.astype("float32") for x in logits]
    trim_before_peak()  # with --recompute (paddleseg/utils/memory.py)
    # each output is dropped once its loss is computed: the loss's graph keeps what the backward pass
    # needs, and the outputs would only add to the step's peak, which is in the losses
    total, terms = compute_losses(losses["types"], losses["coef"], logits, labels, release=True)
    del logits
    values = [float(t) for t in terms]
    if not all(math.isfinite(v) for v in values):
        optimizer.clear_grad()
        return values
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        optimizer.step()
    optimizer.clear_grad()
    return values
