"""Choosing the device, the CPU thread count and the precision, the same way in every script.

``--device auto`` (the default) is the GPU when PaddlePaddle is built with CUDA and a card is
visible, else the CPU, and the choice is logged: training on the CPU of a GPU machine by accident is
the worst outcome, and failing on a CPU machine the second worst.
"""
import logging
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

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


MKL_CPU_TYPE_VARIABLE = "MKL_DEBUG_CPU_TYPE"


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> Optional[str]:
    """The ``vendor_id`` of the first CPU (``GenuineIntel``, ``AuthenticAMD``, ...); None where unknown."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return None


def choose_mkl_code_path(environ: Optional[Dict[str, str]] = None, vendor: Optional[str] = None) -> Optional[str]:
    """On AMD CPUs, point Paddle's MKL at its AVX2 kernels; returns the value set (None: nothing set).

    Paddle's CPU wheel (3.3) computes convolutions and matrix products with MKL 2019.0 Update 5
    (``libmklml_intel.so``), which takes a generic SSE code path on CPUs whose vendor is not Intel:
    on this project's AMD EPYC test machine large products and the ESPNetV2 training step run faster
    with ``MKL_DEBUG_CPU_TYPE=5`` (AVX2; docs/performance.md). That MKL reads
    the variable at its first call, not at load, so setting it here (before any model is built) is in
    time. A value the user set is kept (any value, so ``MKL_DEBUG_CPU_TYPE=0`` opts out); Intel CPUs
    keep MKL's own choice (AVX-512 where present); newer MKL releases ignore the variable. Results
    change only by float rounding (another kernel sums the products in another order).
    """
    environ = os.environ if environ is None else environ
    if MKL_CPU_TYPE_VARIABLE in environ:
        return None
    if (vendor if vendor is not None else cpu_vendor()) != "AuthenticAMD":
        return None
    environ[MKL_CPU_TYPE_VARIABLE] = "5"
    logger.debug("AMD CPU: %s=5 (MKL's AVX2 kernels)", MKL_CPU_TYPE_VARIABLE)
    return "5"


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
                        "see docs/getting_started.md#gpu), or use --device cpu")
    if cpu_threads is not None and cpu_threads < 1:
        raise UserError(f"--cpu_threads must be at least 1, got {cpu_threads}")
    if device == "gpu":
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().dev_id}")
        return device
    paddle.set_device("cpu")
    choose_mkl_code_path()
    set_cpu_threads(cpu_threads or default_cpu_threads())
    if paddle.distributed.get_world_size() > 1:
        os.environ["PADDLE_DISTRI_BACKEND"] = "gloo"  # read by init_parallel_env
    return device


def check_precision(precision: str, device: str) -> None:
    if precision not in ("fp32", "fp16"):
        raise UserError(f"--precision must be fp32 or fp16, got {precision!r}")
    if precision == "fp16" and device != "gpu":
        raise UserError("--precision fp16 (automatic mixed precision) needs a GPU; on CPU use fp32")


def default_num_workers(device: str) -> int:
    """Data-loader worker processes when ``--num_workers`` is not given: on the GPU ``min(4, cores per
    rank)``, so images are decoded beside the card instead of on the training thread; on the CPU 0,
    since worker processes would take cores from the math threads that do the work."""
    return min(4, default_cpu_threads()) if device == "gpu" else 0


def loader_workers(device: str, num_workers: Optional[int], eval_num_workers: Optional[int]) -> Tuple[int, int]:
    """Training's and evaluation's loader workers from ``--num_workers`` / ``--eval_num_workers`` (None:
    :func:`default_num_workers`, evaluation as training), logged with where they came from."""
    train = num_workers if num_workers is not None else default_num_workers(device)
    evaluation = eval_num_workers if eval_num_workers is not None else train
    logger.info("data loading: %d worker process(es) per rank for training (%s), %d for evaluation", train,
                "--num_workers" if num_workers is not None else f"default on the {device.upper()}", evaluation)
    return train, evaluation


# Paddle flags that make GPU training repeatable, and why each is needed.
GPU_DETERMINISM_FLAGS = {
    "FLAGS_cudnn_deterministic": True,  # deterministic cuDNN algorithms (the backward ones use atomics)
    "FLAGS_embedding_deterministic": 1,  # scatter-add gradients without atomics
    "FLAGS_allow_tf32_cudnn": False,  # no TF32 in fp32 convolutions (on by default on Ampere and newer)
    "FLAGS_allow_tf32_cublas": False,  # nor in fp32 matrix products
}


def set_flags(flags: Dict[str, object], why: str) -> None:
    """``paddle.set_flags`` one flag at a time, each read back: a flag this PaddlePaddle build does not
    have is a user error naming it (``why``: the option that asked), never silently skipped."""
    for name, value in flags.items():
        try:
            paddle.set_flags({name: value})
            now = paddle.get_flags([name])[name]
        except ValueError as e:
            raise UserError(f"{why}: this PaddlePaddle build ({paddle.__version__}) has no flag {name}") from e
        if now != value:
            raise UserError(f"{why}: PaddlePaddle kept {name}={now!r} when set to {value!r}")


def set_deterministic(device: str) -> Dict[str, object]:
    """``--deterministic``: on the GPU, the :data:`GPU_DETERMINISM_FLAGS` (slower kernels, same result
    every run); on the CPU nothing to change, which is logged. Returns the flags set. Process-wide:
    for entry points."""
    if device != "gpu":
        logger.info("--deterministic: nothing to set on the CPU (its kernels are already deterministic and it "
                    "has no TF32)")
        return {}
    set_flags(GPU_DETERMINISM_FLAGS, "--deterministic")
    logger.info("--deterministic: %s", ", ".join(f"{k}={v}" for k, v in GPU_DETERMINISM_FLAGS.items()))
    return dict(GPU_DETERMINISM_FLAGS)
