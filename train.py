"""Train a segmentation model from a YAML config, on one device or many.

    python train.py --config configs/quickstart/espnetv2_synthetic.yml --do_eval --save_dir output/quickstart
    python -m paddle.distributed.launch --devices 0,1,2,3 train.py --config ... --device gpu

`--batch_size` is per card (PaddleSeg's convention). Checkpoints go to `--save_dir` (default
`output/<config file name without .yml>`), which the run owns: a second run there is refused. Continue a
run with `--resume_model auto` (its newest valid checkpoint) or `--resume_model output/x/iter_N`.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from paddleseg.utils.cli import (ArgumentParser, add_common_arguments, non_negative_float, non_negative_int,
                                 positive_float, positive_int, run, setup_logging)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line, every value checked here: a bad one is a user error naming the flag and the
    value (one ``error:`` line, exit 2) before the config is read or anything written."""
    p = ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, type=Path, help="YAML config file")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, e.g. model.scale=1.0")
    p.add_argument("--iters", type=positive_int, help="override the config's iters")
    p.add_argument("--batch_size", type=positive_int, help="override the config's batch_size (per card)")
    p.add_argument("--learning_rate", type=positive_float, help="override lr_scheduler.learning_rate")
    p.add_argument("--save_dir", type=Path, default=None,
                   help="where checkpoints and logs go (default: output/<config file name without .yml>)")
    p.add_argument("--resume_model", type=Path,
                   help="continue from this checkpoint folder (save_dir/iter_N), or 'auto': the newest valid "
                        "checkpoint of --save_dir")
    p.add_argument("--finetune_from", type=Path,
                   help="start from these weights, loading only the keys that fit (e.g. another class count)")
    p.add_argument("--do_eval", action="store_true", help="evaluate at every save and keep best_model/")
    p.add_argument("--use_vdl", action="store_true", help="write VisualDL scalars to save_dir/vdl")
    p.add_argument("--log_iters", "--log_iter", dest="log_iters", type=positive_int, default=10,
                   help="log every N iterations")
    p.add_argument("--save_interval", type=positive_int, default=1000, help="checkpoint every N iterations")
    p.add_argument("--keep_checkpoint_max", type=non_negative_int, default=5, help="newest checkpoints kept (0: all)")
    p.add_argument("--num_workers", type=non_negative_int, default=0, help="data-loader worker processes")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="fixes data order, augmentation and initialisation")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                   help="auto (default): the GPU when PaddlePaddle has CUDA and a card is visible, else the CPU")
    p.add_argument("--cpu_threads", type=positive_int,
                   help="CPU math threads (default: all cores, shared among ranks)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="fp16: AMP O1 (GPU only)")
    p.add_argument("--no_shared_memory", action="store_true",
                   help="data workers pass batches without /dev/shm (Docker's small /dev/shm gives bus errors)")
    p.add_argument("--data_timeout", type=non_negative_float, default=120,
                   help="with --num_workers: fail, naming the samples being read, when no batch arrives for this "
                        "many seconds (default %(default)s; 0: no limit)")
    p.add_argument("--allow_batch_change", action="store_true",
                   help="resume a checkpoint at another batch size or number of ranks (refused by default: it "
                        "changes the global batch under the same schedule)")
    p.add_argument("--skip_data_check", action="store_true",
                   help="do not read every image and label once before training (the check names bad files)")
    add_common_arguments(p)
    return p.parse_args(argv)


def set_up_process(device: str, cpu_threads: Optional[int]) -> str:
    """What belongs to the whole process, set once here and never by library code: console logging,
    the device and CPU threads, glibc's allocator thresholds, and on several ranks the failed-rank
    monitor. Returns the device (``--device auto`` resolved)."""
    import paddle

    from paddleseg.utils.device import set_device
    from paddleseg.utils.distributed import start_watchdog
    from paddleseg.utils.memory import keep_freed_memory

    setup_logging()
    device = set_device(device, cpu_threads)
    keep_freed_memory()
    if paddle.distributed.get_world_size() > 1:
        start_watchdog()
    return device


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = set_up_process(args.device, args.cpu_threads)
    from paddleseg.core.train import TrainOptions, train
    from paddleseg.cvlibs import Config

    cfg = Config(args.config, opts=args.opts, learning_rate=args.learning_rate, batch_size=args.batch_size,
                 iters=args.iters)
    save_dir = args.save_dir if args.save_dir is not None else Path("output") / args.config.stem
    opts = TrainOptions(save_dir=save_dir, device=device, do_eval=args.do_eval, use_vdl=args.use_vdl,
                        log_iters=args.log_iters, save_interval=args.save_interval, resume_model=args.resume_model,
                        keep_checkpoint_max=args.keep_checkpoint_max, num_workers=args.num_workers, seed=args.seed,
                        precision=args.precision, use_shared_memory=not args.no_shared_memory,
                        data_timeout=args.data_timeout, cpu_threads=args.cpu_threads, check_data=not args.skip_data_check,
                        finetune_from=args.finetune_from, allow_batch_change=args.allow_batch_change)
    train(cfg, opts)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
