"""Starting a prepared run: check the data, start from scratch (or ``--finetune_from``'s weights) or load
the checkpoint it resumes, then wrap the model for AMP O2, ``--to_static_training`` and several ranks."""
import logging
from pathlib import Path
from typing import Optional

import paddle

from paddleseg.checkpoint import training as checkpoints
from paddleseg.checkpoint.training import STATE_FILE, TrainState
from paddleseg.checkpoint.weights import checkpoint_folder, load_entire_model
from paddleseg.core.ema import DEFAULT_DECAY, ModelEMA
from paddleseg.core.static_training import StaticForward
from paddleseg.core.training.prepare import Training
from paddleseg.datasets.checks import default_cache_file
from paddleseg.datasets.loader import EpochBatchSampler
from paddleseg.errors import CheckpointError

logger = logging.getLogger(__name__)


def start(t: Training, run_id: Optional[str], resume_from: Optional[Path],
          resume_state: Optional[TrainState]) -> bool:
    """Set ``t`` up to train from scratch or from ``resume_from`` (whose verified state is
    ``resume_state``, if already read). False when the checkpoint's run is already finished."""
    opts, iters = t.opts, t.cfg.iters
    if resume_from is not None and resume_state is None:  # found by --resume_model auto
        resume_state = read_resume_state(resume_from, iters)
    if resume_state is not None and resume_state.iter == iters:
        logger.info("%s is at iteration %d of %d: the run is finished, nothing to train", resume_from,
                    resume_state.iter, iters)
        t.state = resume_state
        return False
    if opts.check_data and t.rank == 0:
        check_data(t.train_ds, t.val_ds)
    t.state.run_id = run_id or ""
    if opts.precision == "fp16":
        t.scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
    if resume_state is None and opts.finetune_from is not None:
        finetune_from(t.model, opts.finetune_from)
    if opts.use_ema:
        t.ema = ModelEMA(t.model, opts.ema_decay or DEFAULT_DECAY)
    if resume_state is not None:
        resume(t, resume_from, resume_state, run_id)
    if t.scaler is not None and opts.amp == "O2":  # GPU only (TrainOptions.validate); unverified on CPU hosts
        t.model, t.optimizer = paddle.amp.decorate(models=t.model, optimizers=t.optimizer, level="O2",
                                                   dtype="float16", save_dtype="float32")
        t.train_model = t.model
    if opts.to_static_training:
        t.train_model = StaticForward(t.train_model)
    if t.world > 1:
        data_parallel(t)
    if t.cfg.recompute:
        logger.info("%s: %s recomputes its blocks' activations in the backward pass", t.cfg.origin("recompute"),
                    type(t.model).__name__)
    logger.info("training %s: %d iterations, batch size %d per rank x %d rank(s), %d images, %d batches per "
                "epoch", type(t.model).__name__, iters, t.cfg.batch_size, t.world, len(t.train_ds), t.per_epoch)
    return True


def read_resume_state(folder: Path, iters: int) -> TrainState:
    """The verified state of the checkpoint ``folder`` to resume, at most at this run's ``iters``."""
    state = checkpoints.read_train_state(folder)
    if state.iter > iters:
        raise CheckpointError(f"{checkpoint_folder(folder) / STATE_FILE}: iteration {state.iter} is beyond this run's "
                              f"{iters} iterations (--iters); resume it with --iters {state.iter} or more")
    return state


def resume(t: Training, folder: Path, state: TrainState, run_id: Optional[str]) -> None:
    """Load the checkpoint ``folder`` (weights, optimizer, loss scaler, moving average) into ``t``."""
    check_same_global_batch(folder, state, t.cfg.batch_size, t.world, t.opts.allow_batch_change)
    t.state = checkpoints.load_checkpoint(folder, t.model, t.optimizer, t.scaler, t.ema)
    if t.state.seed != t.opts.seed:
        logger.warning("resuming a run trained with --seed %d under --seed %d: the data order will differ",
                       t.state.seed, t.opts.seed)
    continue_schedule(t.scheduler, t.state, t.cfg.iters)
    t.state.run_id, t.state.iters = run_id or "", t.cfg.iters
    t.resumed_from = folder
    logger.info("resumed from %s at iteration %d", folder, t.state.iter)


def data_parallel(t: Training) -> None:
    if t.opts.device == "gpu":
        t.train_model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(t.train_model)
    paddle.distributed.init_parallel_env()
    t.train_model = paddle.DataParallel(t.train_model)
    shard = EpochBatchSampler(len(t.train_ds), t.cfg.batch_size, True, True, t.opts.seed, 0, 0, t.world,
                              t.rank).indices()
    logger.info("rank %d/%d reads %d of %d training images per epoch; epoch 1 starts with %s", t.rank, t.world,
                len(shard), len(t.train_ds), t.train_ds.file_list[shard[0]][0])


def check_data(*datasets) -> None:
    """Read every file of the data sets: a corrupt image, a size mismatch or a label value out of
    range fails now, naming the file and the values, instead of hours into training. Files that passed
    before and have not changed are skipped (a cache in ~/.cache), so this costs once, not per start."""
    for ds in datasets:
        if ds is not None:
            logger.info("checking the %d %s samples (new or changed files only; skip with --skip_data_check)",
                        len(ds), ds.mode)
            ds.check_contents(progress=False, cache=default_cache_file())


def finetune_from(model: paddle.nn.Layer, path: Path) -> None:
    """Start from ``path``'s weights where they fit (another class count, a released checkpoint) and
    say what was skipped; an error if nothing fits (a checkpoint of another model)."""
    report = load_entire_model(model, path, strict=False)
    if not report.loaded:
        raise CheckpointError(f"{path}: no weight fits the model ({report.describe()})")
    logger.info("fine-tuning from %s: loaded %d of %d weights%s", path, len(report.loaded),
                len(model.state_dict()), f"; skipped {report.describe()}" if not report.complete else "")


def check_same_global_batch(folder: Path, state: TrainState, batch_size: int, world: int, allowed: bool) -> None:
    """A resume at another batch size or number of ranks changes the global batch under the same
    schedule and data order: refused unless ``--allow_batch_change``, which logs what follows."""
    if not state.batch_size or (state.batch_size, state.world_size) == (batch_size, world):
        return
    before = f"{state.batch_size} per rank x {state.world_size} rank(s) = {state.batch_size * state.world_size}"
    now = f"{batch_size} per rank x {world} rank(s) = {batch_size * world}"
    if not allowed:
        raise CheckpointError(f"{folder}: was trained at a global batch of {before}; this run has {now}. Resume "
                              f"with the same --batch_size and number of ranks, or pass --allow_batch_change")
    logger.warning("resuming %s at a global batch of %s (it was trained at %s): iterations keep counting from %d "
                   "under the same learning-rate schedule; each epoch now has a different number of batches, so the "
                   "data order from here differs from the original run's", folder, now, before, state.iter)


def continue_schedule(scheduler, state: TrainState, iters: int) -> None:
    """After a resume, the learning rate of the next iteration is the schedule's value at
    ``state.iter`` for *this* run's length. A checkpoint stores the rate it computed for its own
    length (0 at the end of a finished poly decay); resuming with a larger ``--iters`` continues on
    the longer schedule instead of training an iteration at that stale rate."""
    if state.iters and state.iters != iters:
        logger.info("the checkpoint's run was planned for %d iterations, this one for %d: the schedule continues "
                    "as the %d-iteration one from iteration %d", state.iters, iters, iters, state.iter)
    scheduler.last_lr = scheduler.get_lr()
