"""Ctrl-C and SIGTERM during training: the iteration in progress completes (loading its batch, forward,
backward, update, moving average, bookkeeping), then the signal is raised and the companions' ``on_interrupt`` save it
(:mod:`paddleseg.core.training.checkpointing`). An update cut short would leave weights that no
iteration had, under the number of the last complete one.

On several ranks, each iteration ends with the ranks agreeing on the signal (one small all-reduce): a
rank that received one stops every rank after the same iteration, since Paddle's launcher, Slurm or
Kubernetes signal the ranks one after the other, and a rank that stopped alone would leave the others
waiting in the next iteration's collectives (loading is held too: a signal there, left to raise at once
on one rank, stopped that rank alone and the other aborted in its all-reduce). Outside the held
iterations (evaluating, saving), a signal is raised at once. The entry point installs the SIGTERM handler
(:func:`paddleseg.utils.signals.install_sigterm_handler`); a library caller keeps its own.
"""
from typing import ContextManager

import paddle

from paddleseg.utils.signals import interruptions_held, no_agreement


class Interruption:
    def __init__(self, world: int):
        self.world = world

    def held(self) -> ContextManager[None]:
        """Hold Ctrl-C and SIGTERM for one iteration."""
        return interruptions_held(self.agree if self.world > 1 else no_agreement)

    @staticmethod
    def agree(signum: int) -> int:
        """The signal any rank received (the same on all), 0 when none did."""
        flag = paddle.to_tensor([signum], dtype="int32")
        paddle.distributed.all_reduce(flag, op=paddle.distributed.ReduceOp.MAX)
        return int(flag.item())
