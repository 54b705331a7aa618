"""The training loop: one plain function over batches, and the features that ride along it.

Each iteration (:mod:`paddleseg.core.training.batches` says which batch, and why a resumed run
continues bit for bit) is one optimisation :func:`~paddleseg.core.training.step.step`, held against
Ctrl-C and SIGTERM until it is complete (:mod:`~paddleseg.core.training.interruption`). Everything else
is a companion in its own file (:mod:`~paddleseg.core.training.companion`), called at fixed points;
adding a feature is a file and a line in :data:`COMPANIONS`.
"""
import contextlib
import logging
import time
from pathlib import Path
from typing import List

import paddle

from paddleseg.checkpoint.run_dir import AUTO, SaveDirLock
from paddleseg.checkpoint.training import TrainState
from paddleseg.core.training.batches import iterate_batches, iteration_seed
from paddleseg.core.training.checkpointing import Checkpointing
from paddleseg.core.training.companion import CheckpointRecord, Companion, LogWindow, StepRecord
from paddleseg.core.training.divergence import check_loss, check_weights
from paddleseg.core.training.early_stop import EarlyStop
from paddleseg.core.training.evaluation import Evaluation
from paddleseg.core.training.evaluation_report import EvaluationReport
from paddleseg.core.training.interruption import Interruption
from paddleseg.core.training.moving_average import MovingAverage
from paddleseg.core.training.options import TrainOptions
from paddleseg.core.training.prepare import Training, prepare
from paddleseg.core.training.progress_log import ProgressLog
from paddleseg.core.training.rank_fingerprint import RankFingerprint
from paddleseg.core.training.save_dir import claim_save_dir, log_to_file
from paddleseg.core.training.start import read_resume_state, start
from paddleseg.core.training.step import step
from paddleseg.core.training.step_profiler import Profiler
from paddleseg.core.training.training_curves import TrainingCurves
from paddleseg.core.training.visualdl_scalars import VisualDLScalars
from paddleseg.cvlibs import Config

logger = logging.getLogger(__name__)

# What rides along, in the order the loop calls them at each point.
COMPANIONS = (
    MovingAverage,  # first: what is logged, evaluated and saved after an iteration includes its average
    ProgressLog,
    Evaluation,  # at a checkpoint, first: the others record its scores, the checkpoint its best mIoU
    VisualDLScalars,
    Checkpointing,
    TrainingCurves,  # redrawn with each checkpoint
    EvaluationReport,  # after the checkpoint: a report that cannot be written costs no checkpoint
    EarlyStop,
    Profiler,
    RankFingerprint,
)


def train(cfg: Config, opts: TrainOptions) -> TrainState:
    """Train ``cfg``'s model on its train set; returns the final training state.

    Everything is built and checked before anything is written. Rank 0 then holds ``save_dir``'s lock
    for the whole run and logs to ``save_dir/train.log`` (paddleseg/checkpoint/run_dir.py).
    Process-wide set-up (device, CPU threads, allocator, console logging, signal handlers, the
    failed-rank monitor) is the entry point's: see train.py."""
    rank = paddle.distributed.get_rank()
    resume = opts.resume_model
    resume_state = read_resume_state(resume, cfg.iters) if resume is not None and str(resume) != AUTO else None
    t = prepare(cfg, opts)
    with SaveDirLock(Path(opts.save_dir)) if rank == 0 else contextlib.nullcontext():
        run_id, resume_from = claim_save_dir(cfg, opts, rank, resume_state)
        with log_to_file(Path(opts.save_dir) / "train.log" if rank == 0 else None):
            if not start(t, run_id, resume_from, resume_state):
                return t.state  # the run is already finished
            return run_loop(t, [c for c in (kind.for_run(t) for kind in COMPANIONS) if c is not None])


def run_loop(t: Training, companions: List[Companion]) -> TrainState:
    """Iterations ``state.iter + 1 .. iters``: step, then the companions (module docstring)."""
    opts, state, iters = t.opts, t.state, t.cfg.iters
    interruption, window = Interruption(t.world), LogWindow()
    try:
        if any([c.start(t) for c in companions]):
            return state
        batches = iterate_batches(t.train_ds, t.cfg.batch_size, state.iter, seed=opts.seed,
                                  num_workers=t.num_workers, world=t.world, rank=t.rank,
                                  use_shared_memory=opts.use_shared_memory, timeout=opts.data_timeout)
        t.train_model.train()
        tick = time.perf_counter()
        for iteration in range(state.iter + 1, iters + 1):
            with interruption.held():  # loading the batch too: a signal there is agreed on like one in the step
                batch = next(batches)
                reader_cost = time.perf_counter() - tick
                paddle.seed(iteration_seed(opts.seed, iteration))
                losses = dict(zip(t.names, step(t.train_model, t.optimizer, t.scaler, t.losses, batch, opts.amp)))
                check_loss(iteration, losses, batch, t.last_checkpoint)
                lr = t.optimizer.get_lr()
                t.scheduler.step()
                state.iter = iteration
                window.add(batch_cost=time.perf_counter() - tick, reader_cost=reader_cost, **losses)
                logged = window.take() if iteration % opts.log_iters == 0 or iteration == iters else None
                stop = any([c.after_step(t, StepRecord(iteration, losses, lr, logged)) for c in companions])
            scheduled = iteration % opts.save_interval == 0 or iteration == iters
            if scheduled or stop:
                check_weights(iteration, t.model, losses, t.last_checkpoint)
                point = CheckpointRecord(iteration, scheduled)
                stop = any([c.at_checkpoint(t, point) for c in companions]) or stop
            if stop:
                break
            tick = time.perf_counter()
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (paddleseg.utils.signals.Terminated)
        point = CheckpointRecord(state.iter, scheduled=False, interruption=interrupt)
        for c in companions:
            c.on_interrupt(t, point)
        raise
    finally:
        for c in companions:
            c.at_end(t)
    return state
