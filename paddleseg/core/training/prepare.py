"""Building and checking what a run needs, before anything is written: the options against the config,
the model (and its recompute), data sets, losses, schedule and optimizer (:func:`prepare`)."""
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import paddle

from paddleseg.checkpoint import TrainState
from paddleseg.core.ema import ModelEMA
from paddleseg.core.training.batches import batches_per_epoch
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config
from paddleseg.errors import ConfigError
from paddleseg.losses import check_coefficients, output_names
from paddleseg.utils.device import loader_workers


@dataclass
class Training:
    """What the loop needs, built and checked by :func:`prepare`, started by
    :func:`paddleseg.core.training.start.start`."""

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
    num_workers: int  # loader workers, training's and evaluation's (--num_workers resolved)
    eval_num_workers: int
    scaler: Optional[paddle.amp.GradScaler] = None  # fp16's loss scaler, restored on resume
    ema: Optional[ModelEMA] = None  # --use_ema's moving average, restored on resume
    resumed_from: Optional[Path] = None  # the checkpoint this run continues
    last_checkpoint: Optional[Path] = None  # the newest that verifies (rank 0; checkpointing.py)


def recompute_origin(cfg: Config) -> Optional[str]:
    """Where the config's ``recompute`` was turned on, or None when it is off."""
    return cfg.origin("recompute") if cfg.recompute else None


def prepare(cfg: Config, opts: TrainOptions) -> Training:
    """Build and check the model, data sets, loss, schedule and optimizer; writes nothing."""
    world, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    opts.validate(recompute_origin(cfg))
    losses = cfg.loss
    check_coefficients(losses["coef"], cfg.origin("loss.coef"))
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
    num_workers, eval_num_workers = loader_workers(opts.device, opts.num_workers, opts.eval_num_workers)
    return Training(cfg, opts, model, model, cfg.optimizer, cfg.lr_scheduler, losses,
                    [f"loss_{n}" for n in output_names(outputs)], train_ds, val_ds, state, world, rank, per_epoch,
                    num_workers, eval_num_workers)


def set_up_recompute(cfg: Config, model: paddle.nn.Layer, opts: TrainOptions) -> None:
    """The config's ``recompute`` (or ``train.py --recompute``): the model recomputes its blocks in the
    backward pass instead of keeping their activations (its ``set_recompute``; paddleseg/models/recompute.py),
    for a run with options ``opts``, which must allow it (:meth:`TrainOptions.validate`)."""
    where = recompute_origin(cfg)
    if where is None:
        return
    opts.validate(where)
    if not hasattr(model, "set_recompute"):
        raise ConfigError(f"{where}: the model ({type(model).__name__}) has no set_recompute, so it cannot recompute")
    model.set_recompute(True)


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
