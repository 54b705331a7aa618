"""The options of a training run (``train.py``'s flags), built once and checked in one place. Imports
no Paddle: train.py checks its flags with it before loading anything.

    opts = TrainOptions.from_args(args, device="cpu")   # train.py, after parsing and resolving --device
    opts.validate()                                     # every rule between options; train() calls it too

:meth:`TrainOptions.validate` holds every rule that relates two options (``--early_stop_intervals``
needs ``--do_eval``, ``--amp_level`` needs ``--precision fp16``, recompute excludes
``--to_static_training``, ...). train.py calls it while parsing, so a broken rule is an
``argument --flag: ...`` error before anything is loaded; :func:`paddleseg.core.training.loop.train`
calls it again with the resolved device and the config's ``recompute``. Single values (a positive
``--save_interval``) are checked by the argument parser's types.
"""
import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from paddleseg.core.profiling import ProfilerOptions
from paddleseg.errors import UserError

AMP_LEVELS = ("O1", "O2")


class OptionError(UserError):
    """A rule between options is broken: ``flag`` and ``problem`` for train.py's ``argument --flag:
    problem`` form; the message is what a library caller sees."""

    def __init__(self, flag: str, problem: str, message: Optional[str] = None):
        self.flag, self.problem = flag, problem
        super().__init__(message or f"{flag} {problem}")


@dataclass
class TrainOptions:
    save_dir: Path = Path("output")
    device: str = "cpu"  # cpu or gpu (train.py resolves --device auto before training)
    do_eval: bool = False
    use_vdl: bool = False
    log_iters: int = 10
    save_interval: int = 1000
    resume_model: Optional[Path] = None  # a checkpoint folder, or Path("auto") (run_dir.AUTO)
    keep_checkpoint_max: int = 5
    num_workers: Optional[int] = None  # loader worker processes; None: the device's default (utils/device.py)
    eval_num_workers: Optional[int] = None  # None: as num_workers
    seed: int = 0
    precision: str = "fp32"
    use_shared_memory: bool = True
    data_timeout: Optional[float] = None  # seconds to wait for a batch from the workers (0: forever; None: loader.py's)
    finetune_from: Optional[Path] = None  # weights to start from, loading only the keys that fit
    check_data: bool = True  # read every image and label once before training (datasets/checks.py)
    allow_batch_change: bool = False  # resume at another global batch (batch size x ranks) than the checkpoint's
    # PaddleSeg 2.8's flags (docs/training.md)
    use_ema: bool = False  # evaluate and keep best_model with a moving average of the weights (core/ema.py)
    ema_decay: Optional[float] = None  # None: PaddleSeg 2.8's (core/ema.py)
    early_stop_intervals: Optional[int] = None  # stop after this many evaluations without a better mIoU
    amp_level: Optional[str] = None  # with precision fp16: O1 (the default) or O2 (fp16 weights, fp32 master)
    to_static_training: bool = False  # the training forward through paddle.jit.to_static (core/static_training.py)
    profiler_options: Optional[ProfilerOptions] = None  # core/profiling.py

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: Optional[str] = None) -> "TrainOptions":
        """The options of train.py's parsed ``args`` (flags named as the fields are taken as they are);
        ``device``: ``--device`` resolved (default: the flag as given)."""
        named = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        named.update(save_dir=args.save_dir if args.save_dir is not None else Path("output") / args.config.stem,
                     device=device or args.device, use_shared_memory=not args.no_shared_memory,
                     check_data=not args.skip_data_check)
        return cls(**named)

    @property
    def amp(self) -> str:
        """The AMP level of an fp16 run."""
        return self.amp_level or "O1"

    def validate(self, recompute_origin: Optional[str] = None) -> None:
        """Check every rule between the options; ``recompute_origin``: where recompute was turned on
        (the config's origin of the key, e.g. ``--opts: recompute``), None when it is off. Rules that
        need the device wait while it is ``auto``. Raises :class:`OptionError`."""
        device_known = self.device != "auto"
        if self.amp_level is not None:
            if self.amp_level not in AMP_LEVELS:
                raise OptionError("--amp_level", f"must be O1 or O2, got {self.amp_level!r}")
            if self.precision != "fp16":
                raise OptionError("--amp_level", f"needs --precision fp16 (AMP {self.amp_level} is mixed-precision "
                                                 f"training)")
            if device_known and self.device != "gpu":
                raise OptionError("--amp_level", f"AMP {self.amp_level} needs a GPU (fp16 mixed precision needs a "
                                                 f"GPU); on the CPU train in fp32")
        if device_known:
            from paddleseg.utils.device import check_precision  # imports Paddle: not before the device is known

            check_precision(self.precision, self.device)
        if self.early_stop_intervals is not None:
            if self.early_stop_intervals < 1:
                raise OptionError("--early_stop_intervals", f"must be a positive integer, got "
                                                            f"{self.early_stop_intervals}")
            if not self.do_eval:
                raise OptionError("--early_stop_intervals", "needs --do_eval (it counts evaluations without a better "
                                                            "mIoU)")
        if (self.profiler_options is not None and self.profiler_options.state == "GPU" and device_known
                and self.device != "gpu"):
            raise OptionError("--profiler_options", "state=GPU needs a GPU; use state=CPU")
        if recompute_origin is not None and self.to_static_training:
            problem = "cannot be combined with --to_static_training (it recomputes the eager forward); use one of them"
            raise OptionError("--recompute", problem, f"{recompute_origin}: recompute {problem}")
