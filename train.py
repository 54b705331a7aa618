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

from paddleseg.core.training.options import OptionError, TrainOptions
from paddleseg.utils.cli import (
    ArgumentParser,
    add_common_arguments,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
    setup_logging,
)


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
    p.add_argument("--finetune_from",
                   help="start from these weights (a file, folder, http(s):// URL or released model name), "
                        "loading only the keys that fit (e.g. another class count)")
    p.add_argument("--do_eval", action="store_true", help="evaluate at every save and keep best_model/")
    p.add_argument("--use_vdl", action="store_true", help="write VisualDL scalars to save_dir/vdl")
    p.add_argument("--log_iters", "--log_iter", dest="log_iters", type=positive_int, default=10,
                   help="log every N iterations")
    p.add_argument("--save_interval", type=positive_int, default=1000, help="checkpoint every N iterations")
    p.add_argument("--keep_checkpoint_max", type=non_negative_int, default=5, help="newest checkpoints kept (0: all)")
    p.add_argument("--num_workers", type=non_negative_int,
                   help="data-loader worker processes, started once per run (default: min(4, cores per rank) on "
                        "the GPU, 0 on the CPU, where workers would take cores from the math threads)")
    p.add_argument("--eval_num_workers", type=non_negative_int,
                   help="worker processes for --do_eval's evaluation on rank 0 (default: as --num_workers)")
    p.add_argument("--deterministic", action="store_true",
                   help="on the GPU: deterministic cuDNN kernels and no TF32 (slower; the same result every run); "
                        "nothing to change on the CPU")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="fixes data order, augmentation and initialisation")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                   help="auto (default): the GPU when PaddlePaddle has CUDA and a card is visible, else the CPU")
    p.add_argument("--cpu_threads", type=positive_int,
                   help="CPU math threads (default: all cores, shared among ranks)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="fp16: AMP O1 (GPU only)")
    p.add_argument("--recompute", action="store_true", default=None,
                   help="recompute the model's activations in the backward pass instead of keeping them: less "
                        "memory (a larger batch fits), more time per iteration; the gradients are the same. Also "
                        "the config's top-level 'recompute: true' (--opts recompute=false turns that off)")
    p.add_argument("--no_shared_memory", action="store_true",
                   help="data workers pass batches without /dev/shm (Docker's small /dev/shm gives bus errors)")
    p.add_argument("--data_timeout", type=non_negative_float,
                   help="with --num_workers: fail, naming the samples being read, when no batch arrives for this "
                        "many seconds (default: 120, paddleseg/datasets/loader.py; 0: no limit)")
    p.add_argument("--allow_batch_change", action="store_true",
                   help="resume a checkpoint at another batch size or number of ranks (refused by default: it "
                        "changes the global batch under the same schedule)")
    p.add_argument("--skip_data_check", action="store_true",
                   help="do not read every image and label once before training (the check names bad files)")
    flags = p.add_argument_group("PaddleSeg 2.8 flags")
    flags.add_argument("--use_ema", action="store_true",
                       help="keep an exponential moving average of the weights (decay 0.99, warm-up "
                            "min(0.99, (1+t)/(10+t)), BatchNorm statistics included); evaluation and best_model "
                            "use it, checkpoints keep it for resuming")
    flags.add_argument("--early_stop_intervals", type=positive_int, metavar="N",
                       help="with --do_eval: stop (saving the checkpoint, exit 0) once N evaluations in a row have "
                            "not improved the best mIoU")
    flags.add_argument("--amp_level", choices=["O1", "O2"],
                       help="with --precision fp16 (GPU only): O1 (default) casts white-listed ops to fp16, O2 "
                            "keeps fp16 weights with fp32 master weights")
    flags.add_argument("--to_static_training", action="store_true",
                       help="run the training forward pass through paddle.jit.to_static (the checkpoint format "
                            "is unchanged)")
    flags.add_argument("--profiler_options", type=profiler_options, metavar="OPTIONS",
                       help="profile a range of iterations with paddle.profiler, PaddleSeg's format, e.g. "
                            "'batch_range=[10,20];state=CPU;tracer_option=Default;profile_path=model.profile' "
                            "(keys: batch_range, state, sorted_key, tracer_option, profile_path, timer_only, "
                            "exit_on_finished); the chrome trace goes to profile_path (default save_dir/profile), "
                            "the summary table to the log")
    add_common_arguments(p)
    args = p.parse_args(argv)
    try:  # the rules between flags (the config's recompute and the resolved device: again in train())
        TrainOptions.from_args(args).validate("--recompute: recompute" if args.recompute else None)
    except OptionError as e:
        p.error(f"argument {e.flag}: {e.problem}")
    return args


def profiler_options(text: str):
    """``--profiler_options``'s value, parsed (paddleseg/core/profiling.py)."""
    from paddleseg.core.profiling import parse_profiler_options

    try:
        return parse_profiler_options(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} in {text!r}") from None


def set_up_process(device: str, cpu_threads: Optional[int], deterministic: bool = False) -> str:
    """What belongs to the whole process, set once here and never by library code: the device and CPU
    threads, ``--deterministic``'s Paddle flags, SIGTERM handled like Ctrl-C (exit 143 after the final
    checkpoint), and on several ranks the failed-rank monitor. Returns the device (``--device auto``
    resolved). glibc's allocator is set before, by :func:`main`, once the config says whether the run
    recomputes (it may start train.py again)."""
    import paddle

    from paddleseg.utils.device import set_deterministic, set_device
    from paddleseg.utils.distributed import start_watchdog
    from paddleseg.utils.signals import install_sigterm_handler

    device = set_device(device, cpu_threads)
    if deterministic:
        set_deterministic(device)
    install_sigterm_handler()
    if paddle.distributed.get_world_size() > 1:
        start_watchdog()
    return device


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from paddleseg.core.training.loop import train
    from paddleseg.cvlibs import Config
    from paddleseg.utils.memory import set_up_allocator

    cfg = Config(args.config, opts=args.opts, learning_rate=args.learning_rate, batch_size=args.batch_size,
                 iters=args.iters, recompute=args.recompute)
    set_up_allocator(recompute=cfg.recompute, script=__file__)  # may start train.py again (utils/memory.py)
    device = set_up_process(args.device, args.cpu_threads, args.deterministic)
    train(cfg, TrainOptions.from_args(args, device))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
