"""Choosing the device, the CPU thread count and the precision, the same way in every script."""
import os
from typing import Optional

import paddle

from paddleseg.errors import UserError
from paddleseg.utils.paddle_compat import set_cpu_threads


def default_cpu_threads() -> int:
    """The cores this process may use, shared among the ranks of a multi-process launch.

    Paddle sets ``OMP_NUM_THREADS=1`` on import, so its CPU math would otherwise use one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, paddle.distributed.get_world_size()))


def set_device(device: str, cpu_threads: Optional[int] = None) -> None:
    """``cpu`` or ``gpu`` (this rank's card); on CPU, ``cpu_threads`` math threads (default: all cores)."""
    if device not in ("cpu", "gpu"):
        raise UserError(f"--device must be cpu or gpu, got {device!r}")
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UserError("--device gpu: this PaddlePaddle build has no CUDA support (install paddlepaddle-gpu, "
                        "see README), or use --device cpu")
    if cpu_threads is not None and cpu_threads < 1:
        raise UserError(f"--cpu_threads must be at least 1, got {cpu_threads}")
    if device == "gpu":
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().dev_id}")
        return
    paddle.set_device("cpu")
    set_cpu_threads(cpu_threads or default_cpu_threads())


def check_precision(precision: str, device: str) -> None:
    if precision not in ("fp32", "fp16"):
        raise UserError(f"--precision must be fp32 or fp16, got {precision!r}")
    if precision == "fp16" and device != "gpu":
        raise UserError("--precision fp16 (automatic mixed precision) needs a GPU; on CPU use fp32")
