"""The training loop: one readable function over an iterator of batches, with small helpers.

Iteration ``i`` (1-based) of a run is fully determined by the seed: its batch is batch
``(i-1) % B`` of epoch ``(i-1) // B`` (B batches per epoch and rank, the order a function of
(seed, epoch), each sample's augmentation a function of (seed, epoch, index)) and paddle's random
generator is re-seeded from (seed, i). So a run resumed from ``iter_N`` continues exactly as the
uninterrupted run would have.
"""
import contextlib
import copy
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import paddle

from paddleseg.checkpoint import training as checkpoints
from paddleseg.checkpoint import TrainState
from paddleseg.checkpoint.run_dir import AUTO, RunRecord, SaveDirLock, resolve
from paddleseg.checkpoint.weights import load_entire_model
from paddleseg.core.ema import DEFAULT_DECAY, ModelEMA
from paddleseg.core.profiling import ProfilerOptions, StepProfiler
from paddleseg.core.report import GALLERY_IMAGES, WorstImages, check_report_dir, write_report
from paddleseg.core.static_training import StaticForward
from paddleseg.core.train_history import TrainHistory
from paddleseg.cvlibs import Config
from paddleseg.core.val import evaluate
from paddleseg.datasets.checks import default_cache_file
from paddleseg.datasets.loader import DEFAULT_TIMEOUT, EpochBatchSampler, build_run_loader
from paddleseg.errors import CheckpointError, ConfigError, UserError
from paddleseg.losses import compute_losses, output_names
from paddleseg.utils.cityscapes_labels import class_names
from paddleseg.utils.device import check_precision
from paddleseg.utils.memory import trim_before_peak

logger = logging.getLogger(__name__)

REPORT_DIR = "report"  # save_dir/report: the HTML evaluation report of the last iteration (--do_eval)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class TrainOptions:
    save_dir: Path = Path("output")
    device: str = "cpu"
    do_eval: bool = False
    use_vdl: bool = False
    log_iters: int = 10
    save_interval: int = 1000
    resume_model: Optional[Path] = None  # a checkpoint folder, or Path("auto") (run_dir.AUTO)
    keep_checkpoint_max: int = 5
    num_workers: int = 0
    seed: int = 0
    precision: str = "fp32"
    use_shared_memory: bool = True
    data_timeout: float = DEFAULT_TIMEOUT  # seconds to wait for a batch from the loader workers (0: forever)
    eval_num_workers: int = 0
    cpu_threads: Optional[int] = None  # None: all cores (shared among ranks)
    finetune_from: Optional[Path] = None  # weights to start from, loading only the keys that fit
    check_data: bool = True  # read every image and label once before training (datasets/checks.py)
    allow_batch_change: bool = False  # resume at another global batch (batch size x ranks) than the checkpoint's
    # PaddleSeg 2.8's flags (README "PaddleSeg 2.8 flags")
    use_ema: bool = False  # evaluate and keep best_model with a moving average of the weights (core/ema.py)
    ema_decay: float = DEFAULT_DECAY
    early_stop_intervals: Optional[int] = None  # stop after this many evaluations without a better mIoU
    amp_level: str = "O1"  # with precision fp16: O1 (white-listed ops in fp16) or O2 (fp16 weights, fp32 master)
    to_static_training: bool = False  # the training forward through paddle.jit.to_static (core/static_training.py)
    profiler_options: Optional[ProfilerOptions] = None  # core/profiling.py


# ------------------------------------------------------------------------------------------------
# set-up
# ------------------------------------------------------------------------------------------------
def check_writable(save_dir: Path) -> None:
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
        probe = save_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{save_dir}: the save directory is not writable ({e.strerror or e})") from e


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


def train_outputs(model: paddle.nn.Layer) -> int:
    """How many outputs the model returns in training mode (main + auxiliary), as it declares them
    (``train_outputs``); a model that does not is probed once with a tiny input, on a copy (a
    training-mode pass would move the model's BatchNorm statistics)."""
    declared = getattr(model, "train_outputs", None)
    if declared is not None:
        return int(declared)
    probe = copy.deepcopy(model)
    probe.train()
    with paddle.no_grad():
        return len(probe(paddle.zeros([1, 3, 64, 64])))


def batches_per_epoch(num_samples: int, batch_size: int, world: int, rank: int) -> int:
    return len(EpochBatchSampler(num_samples, batch_size, True, True, num_replicas=world, rank=rank))


def iterate_batches(dataset, batch_size: int, start_iter: int, opts: TrainOptions, world: int,
                    rank: int) -> Iterator[Dict]:
    """Batches for iterations ``start_iter + 1, …`` (module docstring), epoch after epoch, from one loader
    whose worker processes start once per run (paddleseg/datasets/loader.py, ``build_run_loader``)."""
    per_epoch = batches_per_epoch(len(dataset), batch_size, world, rank)
    epoch, skip = divmod(start_iter, per_epoch)
    yield from build_run_loader(dataset, batch_size, num_workers=opts.num_workers, seed=opts.seed, epoch=epoch,
                                skip_batches=skip, num_replicas=world, rank=rank,
                                use_shared_memory=opts.use_shared_memory, timeout=opts.data_timeout)


def iteration_seed(seed: int, iteration: int) -> int:
    return (seed * 1_000_003 + iteration) % (2 ** 31)


# ------------------------------------------------------------------------------------------------
# logging helpers
# ------------------------------------------------------------------------------------------------
class Meter:
    """Averages of the values logged over the last ``log_iters`` iterations."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.count = 0

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def mean(self, key: str) -> float:
        return self.sums.get(key, 0.0) / max(self.count, 1)

    def reset(self) -> None:
        self.sums, self.count = {}, 0


def format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def open_vdl(save_dir: Path):
    try:
        from visualdl import LogWriter
    except ImportError as e:
        raise UserError("--use_vdl needs VisualDL (pip install visualdl)") from e
    return LogWriter(str(save_dir / "vdl"))


def format_terms(names: List[str], values: List[float]) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(names, values))


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def train(cfg: Config, opts: TrainOptions) -> TrainState:
    """Train ``cfg``'s model on its train set; returns the final training state.

    Everything is built and checked before anything is written. Rank 0 then holds ``save_dir``'s lock
    for the whole run and logs to ``save_dir/train.log`` (paddleseg/checkpoint/run_dir.py).
    Process-wide set-up (device, CPU threads, allocator, console logging, the failed-rank monitor)
    is the entry point's: see train.py."""
    rank = paddle.distributed.get_rank()
    resume = opts.resume_model
    resume_state = checkpoints.read_train_state(resume) if resume is not None and str(resume) != AUTO else None
    training = prepare(cfg, opts)
    with SaveDirLock(Path(opts.save_dir)) if rank == 0 else contextlib.nullcontext():
        run_id, resume_from = claim_save_dir(cfg, opts, rank, resume_state)
        with log_to_file(Path(opts.save_dir) / "train.log" if rank == 0 else None):
            if not start(training, run_id, resume_from, resume_state):
                return training.state  # the run is already finished
            return run_loop(training)


def claim_save_dir(cfg: Config, opts: TrainOptions, rank: int, resume_state: Optional[TrainState]):
    """This run's id and the checkpoint it resumes (None: from scratch); writes the run record. Nothing is
    written before the folder is known to be this run's (paddleseg/checkpoint/run_dir.py)."""
    save_dir, resume = Path(opts.save_dir), opts.resume_model
    auto = resume is not None and str(resume) == AUTO
    if rank != 0 and not auto:
        return None, resume  # only rank 0 writes; the others need to know what to load
    claim = resolve(save_dir, resume, resume_state)
    if rank == 0:
        if opts.do_eval:  # the last evaluation replaces it whole: refuse a folder that is not a report now
            check_report_dir(save_dir / REPORT_DIR, "the report folder")
        check_writable(save_dir)
        record = RunRecord.read(save_dir) if not claim.new_record else None
        (record or RunRecord(claim.run_id, time.strftime("%Y-%m-%d %H:%M:%S"), str(cfg.path))).write(save_dir)
        for p in checkpoints.remove_partials(save_dir, claim.run_id):
            logger.warning("removed %s, left by an interrupted save", p)
    if auto:
        logger.info("--resume_model auto: %s", f"continuing run {claim.run_id} from {claim.resume_from}"
                    if claim.resume_from else f"no checkpoint of run {claim.run_id} in {save_dir}; "
                                              f"starting from scratch")
    return claim.run_id, claim.resume_from


@contextlib.contextmanager
def log_to_file(path: Optional[Path]) -> Iterator[None]:
    """Copy the package's log records to ``path`` (appending) while the run lasts."""
    if path is None:
        yield
        return
    package = logging.getLogger("paddleseg")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    level = package.level
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()


@dataclass
class Training:
    """What the loop needs, built and checked by :func:`prepare`, started by :func:`start`."""

    cfg: Config
    opts: TrainOptions
    model: paddle.nn.Layer  # the model whose weights are saved
    train_model: paddle.nn.Layer  # the one stepped (DataParallel / SyncBatchNorm on several ranks)
    optimizer: paddle.optimizer.Optimizer
    scheduler: paddle.optimizer.lr.LRScheduler
    losses: Dict
    names: List[str]  # loss term names, one per model output
    train_ds: object
    val_ds: object
    state: TrainState
    world: int
    rank: int
    per_epoch: int
    scaler: Optional[paddle.amp.GradScaler] = None  # fp16's loss scaler, restored on resume
    ema: Optional[ModelEMA] = None  # --use_ema's moving average, restored on resume


def prepare(cfg: Config, opts: TrainOptions) -> Training:
    """Build and check the model, data sets, loss, schedule and optimizer; writes nothing."""
    world, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    check_precision(opts.precision, opts.device)
    check_flags(opts)
    paddle.seed(opts.seed)
    model = cfg.model
    set_up_recompute(cfg, model, opts)
    train_ds = cfg.train_dataset
    val_ds = cfg.val_dataset if opts.do_eval else None
    classes = getattr(model, "num_classes", None)
    for ds in (train_ds, val_ds):
        if ds is not None and classes is not None and ds.num_classes > classes:
            raise ConfigError(f"{cfg.path}: model.num_classes is {classes} but the {ds.mode} data set has "
                              f"{ds.num_classes} classes (labels up to {ds.num_classes - 1}); the model needs at "
                              f"least as many outputs")
    losses = cfg.loss
    outputs = train_outputs(model)
    if len(losses["types"]) != outputs:
        raise ConfigError(f"{cfg.path}: loss: {len(losses['types'])} loss term(s) (loss.coef) for a model that "
                          f"returns {outputs} outputs in training (main + auxiliary); give one coefficient each")
    iters, batch_size = cfg.iters, cfg.batch_size
    per_epoch = batches_per_epoch(len(train_ds), batch_size, world, rank)
    if per_epoch == 0:
        raise ConfigError(f"{cfg.path}: batch_size {batch_size} x {world} rank(s) is larger than the train set "
                          f"({len(train_ds)} images)")
    state = TrainState(iter=0, seed=opts.seed, batch_size=batch_size, world_size=world, iters=iters)
    return Training(cfg, opts, model, model, cfg.optimizer, cfg.lr_scheduler, losses,
                    [f"loss_{n}" for n in output_names(outputs)],
                    train_ds, val_ds, state, world, rank, per_epoch)


def set_up_recompute(cfg: Config, model: paddle.nn.Layer, opts: TrainOptions) -> None:
    """The config's ``recompute`` (or ``train.py --recompute``): the model recomputes its blocks in the
    backward pass instead of keeping their activations (its ``set_recompute``; paddleseg/models/recompute.py)."""
    if not cfg.recompute:
        return
    where = cfg.origin("recompute")
    if opts.to_static_training:
        raise UserError(f"{where}: recompute cannot be combined with --to_static_training (it recomputes the eager "
                        f"forward); use one of them")
    if not hasattr(model, "set_recompute"):
        raise ConfigError(f"{where}: the model ({type(model).__name__}) has no set_recompute, so it cannot recompute")
    model.set_recompute(True)


def start(t: Training, run_id: Optional[str], resume_from: Optional[Path],
          resume_state: Optional[TrainState]) -> bool:
    """Check the data, then start from scratch (or ``--finetune_from``) or load the checkpoint to
    resume, and set up data parallelism. False when the checkpoint's run is already finished."""
    opts, iters = t.opts, t.cfg.iters
    if resume_from is not None and resume_state is None:  # found by --resume_model auto
        resume_state = checkpoints.read_train_state(resume_from)
    if resume_state is not None and resume_state.iter >= iters:
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
        t.ema = ModelEMA(t.model, opts.ema_decay)
    if resume_state is not None:
        check_same_global_batch(resume_from, resume_state, t.cfg.batch_size, t.world, opts.allow_batch_change)
        t.state = checkpoints.load_checkpoint(resume_from, t.model, t.optimizer, t.scaler, t.ema)
        if t.state.seed != opts.seed:
            logger.warning("resuming a run trained with --seed %d under --seed %d: the data order will differ",
                           t.state.seed, opts.seed)
        continue_schedule(t.scheduler, t.state, iters)
        t.state.run_id, t.state.iters = run_id or "", iters
        logger.info("resumed from %s at iteration %d", resume_from, t.state.iter)
        if opts.early_stop_intervals and stale_evaluations(t.state, opts.save_interval) >= opts.early_stop_intervals:
            logger.info("%s: the run had already stopped early (no better mIoU than %.4f at iteration %d in %d "
                        "evaluations); nothing to train", resume_from, t.state.best_miou, t.state.best_iter,
                        stale_evaluations(t.state, opts.save_interval))
            return False
    if t.scaler is not None and opts.amp_level == "O2":  # GPU only (check_precision); unverified on CPU hosts
        t.model, t.optimizer = paddle.amp.decorate(models=t.model, optimizers=t.optimizer, level="O2",
                                                   dtype="float16", save_dtype="float32")
        t.train_model = t.model
    if opts.to_static_training:
        t.train_model = StaticForward(t.train_model)
    if t.world > 1:
        if opts.device == "gpu":
            t.train_model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(t.train_model)
        paddle.distributed.init_parallel_env()
        t.train_model = paddle.DataParallel(t.train_model)
        shard = EpochBatchSampler(len(t.train_ds), t.cfg.batch_size, True, True, opts.seed, 0, 0, t.world,
                                  t.rank).indices()
        logger.info("rank %d/%d reads %d of %d training images per epoch; epoch 1 starts with %s", t.rank, t.world,
                    len(shard), len(t.train_ds), t.train_ds.file_list[shard[0]][0])
    if t.cfg.recompute:
        logger.info("%s: %s recomputes its blocks' activations in the backward pass", t.cfg.origin("recompute"),
                    type(t.model).__name__)
    logger.info("training %s: %d iterations, batch size %d per rank x %d rank(s), %d images, %d batches per "
                "epoch", type(t.model).__name__, iters, t.cfg.batch_size, t.world, len(t.train_ds), t.per_epoch)
    return True


def run_loop(t: Training) -> TrainState:
    """Iterations ``state.iter + 1 .. iters``: step, log, checkpoint and evaluate (module docstring)."""
    opts, state, save_dir, iters = t.opts, t.state, Path(t.opts.save_dir), t.cfg.iters
    scaler = t.scaler
    vdl = open_vdl(save_dir) if opts.use_vdl and t.rank == 0 else None
    meter, last_good = Meter(), (checkpoints.latest_valid(save_dir, state.run_id) if t.rank == 0 else None)
    history = TrainHistory.resume(save_dir, state.run_id, state.iter) if t.rank == 0 else None
    batches = iterate_batches(t.train_ds, t.cfg.batch_size, state.iter, opts, t.world, t.rank)
    profiler = StepProfiler(opts.profiler_options, save_dir, opts.device) if opts.profiler_options else None
    started, first_iter = time.perf_counter(), state.iter + 1
    t.train_model.train()
    try:
        tick = time.perf_counter()
        for iteration in range(first_iter, iters + 1):
            batch = next(batches)
            reader_cost = time.perf_counter() - tick
            paddle.seed(iteration_seed(opts.seed, iteration))
            values = step(t.train_model, t.optimizer, scaler, t.losses, batch, opts.amp_level)
            if not all(math.isfinite(v) for v in values):
                raise TrainingDiverged(
                    f"iteration {iteration}: the loss is not finite ({format_terms(t.names, values)});"
                    f" no checkpoint of these weights was saved. Last good checkpoint: {last_good or 'none'}. "
                    f"Lower the learning rate or check the data of this batch: {batch['img_path']}")
            if t.ema is not None:
                t.ema.update(t.model, iteration)
            lr = t.optimizer.get_lr()
            t.scheduler.step()
            state.iter = iteration
            meter.add(batch_cost=time.perf_counter() - tick, reader_cost=reader_cost, **dict(zip(t.names, values)))
            if t.rank == 0 and (iteration % opts.log_iters == 0 or iteration == iters):
                log_progress(iteration, iters, t.per_epoch, meter, t.names, lr, t.cfg.batch_size * t.world, started,
                             first_iter)
                write_scalars(vdl, meter, t.names, lr, iteration)
                history.add_train(iteration, lr, {n: meter.mean(n) for n in t.names})
                meter.reset()
            if iteration % opts.save_interval == 0 or iteration == iters:
                if not all_finite(t.model):  # a finite loss whose update overflowed the weights
                    raise TrainingDiverged(
                        f"iteration {iteration}: the weights are not finite after the update "
                        f"({format_terms(t.names, values)}); no checkpoint of them was "
                        f"saved. Last good checkpoint: {last_good or 'none'}. Lower the learning rate")
                last_good = save_and_evaluate(t.cfg, t.model, t.optimizer, state, t.val_ds, opts, vdl,
                                              t.rank, history, scaler, t.ema) or last_good
                if opts.early_stop_intervals and iteration < iters and stop_early(state, opts, t.world):
                    logger.info("[EVAL] no better mIoU than %.4f (iteration %d) in %d evaluations "
                                "(--early_stop_intervals %d): stopped early at iteration %d of %d", state.best_miou,
                                state.best_iter, stale_evaluations(state, opts.save_interval),
                                opts.early_stop_intervals, iteration, iters)
                    break
            if profiler is not None and profiler.step() and opts.profiler_options.exit_on_finished \
                    and iteration < iters:
                if iteration % opts.save_interval != 0:
                    save_now(t)
                logger.info("profiling finished at iteration %d (exit_on_finished=true): training stops here",
                            iteration)
                break
            tick = time.perf_counter()
    except KeyboardInterrupt:
        if t.rank == 0 and state.iter >= first_iter and all_finite(t.model):
            path = checkpoints.save_checkpoint(save_dir, t.model, t.optimizer, state, scaler, t.ema)
            logger.warning("interrupted: saved %s at iteration %d; continue with --resume_model %s",
                           path, state.iter, path)
            history.write(save_dir)
        raise
    finally:
        if profiler is not None:
            profiler.close()
        if vdl:
            vdl.close()
    if t.world > 1:
        logger.info("rank %d trainable-parameter fingerprint: %s", t.rank, parameter_fingerprint(t.model))
    return state


def write_scalars(vdl, meter: Meter, names: List[str], lr: float, iteration: int) -> None:
    if vdl:
        for n in names:
            vdl.add_scalar(f"Train/{n}", meter.mean(n), iteration)
        vdl.add_scalar("Train/lr", lr, iteration)


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


# Mixed precision for this network, set deliberately (Paddle 3.3.1's fp16 lists, checked op by op in
# tests/test_train.py): conv2d (1x1 and group convolutions) and matmul (the auxiliary upsampling) are
# on Paddle's white list; depthwise_conv2d, prelu, pool2d and batch_norm are "gray" and, with their
# fp32 weights or slopes, would be promoted back to fp32, and bilinear_interp_v2 is on the black
# list. Left so, O1 would run only the 1x1 convolutions in fp16 and cast around every EESP branch.
# These four run in fp16 too; softmax cross-entropy and the means stay fp32 (black list), and the
# logits are cast to fp32 before the loss.
AMP_FP16_OPS = ("depthwise_conv2d", "prelu", "pool2d", "bilinear_interp_v2")


@contextlib.contextmanager
def interrupt_after_backward():
    """Hold Ctrl-C (SIGINT) until the backward pass is over, then raise it as ``KeyboardInterrupt``.

    The backward pass runs Python code (the CPU fast paths' ``PyLayer.backward``, models/layers.py);
    a ``KeyboardInterrupt`` raised there reaches the caller as a Paddle error instead, and training
    would exit 1 without its final checkpoint. Only on the main thread with Python's own SIGINT
    handler installed; anything else is left as it is."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


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
    with interrupt_after_backward():
        if scaler is not None:
            scaler.scale(total).backward()
        else:
            total.backward()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.clear_grad()
    return values


AMP_LEVELS = ("O1", "O2")


def check_flags(opts: TrainOptions) -> None:
    """PaddleSeg 2.8's flags that train.py also checks at parse time, for callers of the library."""
    if opts.amp_level not in AMP_LEVELS:
        raise UserError(f"--amp_level must be O1 or O2, got {opts.amp_level!r}")
    if opts.early_stop_intervals is not None:
        if opts.early_stop_intervals < 1:
            raise UserError(f"--early_stop_intervals must be a positive integer, got {opts.early_stop_intervals}")
        if not opts.do_eval:
            raise UserError("--early_stop_intervals needs --do_eval (it counts evaluations without a better mIoU)")
    if opts.profiler_options is not None and opts.profiler_options.state == "GPU" and opts.device != "gpu":
        raise UserError("--profiler_options state=GPU needs a GPU; use state=CPU")


def stale_evaluations(state: TrainState, save_interval: int) -> int:
    """Evaluations since the best mIoU (they run every ``save_interval`` iterations). Derived from the
    training state, so the count continues across a resume."""
    return 0 if state.best_iter < 0 else (state.iter - state.best_iter) // save_interval


def stop_early(state: TrainState, opts: TrainOptions, world: int) -> bool:
    stop = stale_evaluations(state, opts.save_interval) >= opts.early_stop_intervals
    if world > 1:  # only rank 0 evaluates: its decision is every rank's
        flag = paddle.to_tensor([int(stop)])
        paddle.distributed.broadcast(flag, src=0)
        stop = bool(flag.item())
    return stop


def save_now(t: Training) -> Optional[Path]:
    """Checkpoint the current iteration outside the save interval (rank 0)."""
    if t.rank != 0:
        return None
    path = checkpoints.save_checkpoint(Path(t.opts.save_dir), t.model, t.optimizer, t.state, t.scaler, t.ema)
    logger.info("saved %s", path)
    return path


def all_finite(model: paddle.nn.Layer) -> bool:
    return all(bool(paddle.isfinite(p).all()) for p in model.parameters())


def parameter_fingerprint(model: paddle.nn.Layer) -> str:
    """SHA-256 of the trainable parameters, to check in the logs that ranks stay in sync.

    BatchNorm's running statistics are left out: Paddle keeps them as non-trainable parameters, and
    without SyncBatchNorm (CPU) each rank tracks those of its own shard."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        if not p.stop_gradient:
            digest.update(name.encode())
            digest.update(p.numpy().tobytes())
    return digest.hexdigest()


def log_progress(iteration: int, iters: int, per_epoch: int, meter: Meter, names: List[str], lr: float,
                 global_batch: int, started: float, first_iter: int) -> None:
    batch_cost = meter.mean("batch_cost")
    elapsed = time.perf_counter() - started
    done = iteration - first_iter + 1
    eta = elapsed / done * (iters - iteration)
    losses = ", ".join(f"{n}={meter.mean(n):.4f}" for n in names)
    logger.info("[TRAIN] iter %d/%d, epoch %d, %s, lr=%.6f, batch_cost=%.4f s, reader_cost=%.5f s, "
                "ips=%.2f images/s, ETA %s", iteration, iters, (iteration - 1) // per_epoch + 1, losses, lr,
                batch_cost, meter.mean("reader_cost"), global_batch / max(batch_cost, 1e-9), format_eta(eta))


def save_and_evaluate(cfg: Config, model, optimizer, state: TrainState, val_ds, opts: TrainOptions, vdl,
                      rank: int, history: Optional[TrainHistory] = None, scaler=None,
                      ema: Optional[ModelEMA] = None) -> Optional[Path]:
    """Checkpoint (rank 0), evaluate if asked, promote a better mIoU to best_model; returns the checkpoint.
    Then the training curves (``history``) and, after the last iteration's evaluation, the report.
    With ``ema``, the moving average is what is evaluated and kept as best_model."""
    if rank != 0:
        return None
    save_dir = Path(opts.save_dir)
    worst = WorstImages(GALLERY_IMAGES) if val_ds is not None and state.iter == cfg.iters else None
    if val_ds is not None:
        evaluated = ema.model if ema is not None else model
        result = evaluate(evaluated, val_ds, num_workers=opts.eval_num_workers, worst=worst, **eval_options(cfg))
        model.train()
        miou = result.miou()
        logger.info("[EVAL] iter %d%s: mIoU=%.4f, Acc=%.4f, Kappa=%.4f, Dice=%.4f", state.iter,
                    " (EMA weights)" if ema is not None else "", miou, result.pixel_accuracy(), result.kappa(),
                    result.mean_dice())
        if vdl:
            vdl.add_scalar("Evaluate/mIoU", miou, state.iter)
            vdl.add_scalar("Evaluate/Acc", result.pixel_accuracy(), state.iter)
        if history is not None:
            history.add_eval(state.iter, miou, result.pixel_accuracy())
        if miou > state.best_miou:
            state.best_miou, state.best_iter = miou, state.iter
            checkpoints.save_best(save_dir, evaluated, miou, state.iter, {"acc": result.pixel_accuracy(),
                                                                       "kappa": result.kappa()}, state.run_id)
        logger.info("[EVAL] best mIoU %.4f at iteration %d", state.best_miou, state.best_iter)
        if state.iter == cfg.iters:
            logger.info("[EVAL] per-class results at iteration %d (mIoU %.4f):\n%s", state.iter, miou,
                        result.table(class_names(val_ds.num_classes)))
    path = checkpoints.save_checkpoint(save_dir, model, optimizer, state, scaler, ema)
    for old in checkpoints.prune(save_dir, opts.keep_checkpoint_max, state.run_id):
        logger.info("removed old checkpoint %s (keep_checkpoint_max=%d)", old, opts.keep_checkpoint_max)
    logger.info("saved %s", path)
    if history is not None:
        history.write(save_dir)
    if worst is not None:
        report = write_report(save_dir / REPORT_DIR, result, worst, class_names(val_ds.num_classes),
                              details={"config": cfg.path, "save_dir": save_dir, "iteration": state.iter},
                              name="the report folder")
        logger.info("[EVAL] report of iteration %d: %s", state.iter, report)
    return path


def eval_options(cfg: Config) -> Dict:
    """The config's test_config (aug_eval, scales, flips, sliding window) as evaluate() arguments."""
    return cfg.test_config
