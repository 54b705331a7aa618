"""Choosing the device, the CPU thread count and the precision, the same way in every script.

``--device auto`` (the default) is the GPU when PaddlePaddle is built with CUDA and a card is
visible, else the CPU, and the choice is logged: training on the CPU of a GPU machine by accident is
the worst outcome, and failing on a CPU machine the second worst.
"""
import logging
import os
from typing import Optional

import paddle

from paddleseg.errors import UserError
from paddleseg.utils.paddle_compat import set_cpu_threads

logger = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "gpu")


def visible_gpus() -> int:
    """CUDA cards this PaddlePaddle build can use (0 for a CPU build)."""
    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def resolve_device(device: str) -> str:
    """``cpu`` or ``gpu`` for ``--device``; ``auto`` picks the GPU when one is usable and says which."""
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device != "auto":
        return device
    cards = visible_gpus()
    chosen = "gpu" if cards else "cpu"
    reason = (f"{cards} CUDA card(s) visible" if cards else
              "this PaddlePaddle build has no CUDA support" if not paddle.device.is_compiled_with_cuda()
              else "no CUDA card is visible")
    logger.info("--device auto: using the %s (%s)", chosen.upper(), reason)
    return chosen


def default_cpu_threads() -> int:
    """The cores this process may use, shared among the ranks of a multi-process launch.

    Paddle sets ``OMP_NUM_THREADS=1`` on import, so its CPU math would otherwise use one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, paddle.distributed.get_world_size()))


def set_device(device: str, cpu_threads: Optional[int] = None) -> str:
    """``auto``, ``cpu`` or ``gpu`` (this rank's card); on CPU, ``cpu_threads`` math threads (default: all
    cores), and on several ranks the gloo backend even on a CUDA build (Paddle would pick NCCL and a
    GPU place). Returns the device used. Process-wide: for entry points."""
    device = resolve_device(device)
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UserError("--device gpu: this PaddlePaddle build has no CUDA support (install paddlepaddle-gpu, "
                        "see README), or use --device cpu")
    if cpu_threads is not None and cpu_threads < 1:
        raise UserError(f"--cpu_threads must be at least 1, got {cpu_threads}")
    if device == "gpu":
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().dev_id}")
        return device
    paddle.set_device("cpu")
    set_cpu_threads(cpu_threads or default_cpu_threads())
    if paddle.distributed.get_world_size() > 1:
        os.environ["PADDLE_DISTRI_BACKEND"] = "gloo"  # read by init_parallel_env
    return device


def check_precision(precision: str, device: str) -> None:
    if precision not in ("fp32", "fp16"):
        raise UserError(f"--precision must be fp32 or fp16, got {precision!r}")
    if precision == "fp16" and device != "gpu":
        raise UserError("--precision fp16 (automatic mixed precision) needs a GPU; on CPU use fp32")
