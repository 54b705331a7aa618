"""Every private Paddle attribute and generated name this project relies on, in one place.

Paddle 3.3.1 offers no public API for these. Each is used directly (no ``getattr`` fallback that
would silently switch a feature off), and tests/test_paddle_compat.py fails loudly, naming the
attribute, when a Paddle upgrade removes or renames one.

| what | used for |
| --- | --- |
| ``paddle.base.core.set_num_threads`` | CPU math threads (Paddle pins ``OMP_NUM_THREADS=1`` on import) |
| ``paddle.base.core._erase_process_pids`` | unregister the loader's workers from Paddle's SIGCHLD handler, so a dead worker is explained by our loader instead of interrupting whatever the main thread runs |
| ``_exit_thread_unexpectedly`` of Paddle's multi-process loader iterator | make a blocked read fail when ``--data_timeout`` expires |
| ``nn.PReLU._weight`` / ``._num_parameters`` | single-slope PReLU by leaky_relu's kernels (models/layers.py), per-channel slopes for export (core/export.py) |
| accumulator names ``<parameter name>_<accumulator>_<n>`` in ``Optimizer.state_dict()`` | checkpoints key optimizer state by structured parameter names |
"""
from typing import Dict, Iterable, Optional, Tuple

import paddle

# (object description, attribute) pairs the test checks exist
PRIVATE_ATTRIBUTES = (
    ("paddle.base.core", "set_num_threads"),
    ("paddle.base.core", "_erase_process_pids"),
    ("paddle.io.dataloader.dataloader_iter._DataLoaderIterMultiProcess", "_exit_thread_unexpectedly"),
    ("paddle.nn.PReLU instance", "_weight"),
    ("paddle.nn.PReLU instance", "_num_parameters"),
    ("paddle._C_ops", "leaky_relu_grad"),
)


def set_cpu_threads(count: int) -> None:
    """The number of threads Paddle's CPU kernels use in this process."""
    paddle.base.core.set_num_threads(count)


def unregister_loader_workers(iterator: object) -> None:
    """Take a multi-process loader iterator's workers out of Paddle's SIGCHLD bookkeeping."""
    paddle.base.core._erase_process_pids(id(iterator))


def stop_loader_reader(iterator: object) -> None:
    """Make the main thread's blocked ``next()`` on a multi-process loader iterator return an error."""
    iterator._exit_thread_unexpectedly()


def prelu_slope(layer: paddle.nn.PReLU) -> paddle.Tensor:
    """A PReLU layer's slope parameter (shape ``[1]`` or ``[channels]``)."""
    return layer._weight


def prelu_slope_count(layer: paddle.nn.PReLU) -> int:
    return layer._num_parameters


def set_prelu_slope(layer: paddle.nn.PReLU, slope: paddle.Tensor) -> None:
    """Replace a PReLU's slope parameter (e.g. one shared slope by one per channel)."""
    layer._weight = slope
    layer._num_parameters = int(slope.shape[0])


def leaky_relu_grad(x: paddle.Tensor, out_grad: paddle.Tensor, slope: float) -> paddle.Tensor:
    """The gradient kernel of ``leaky_relu`` with slope ``slope`` at ``x``: ``out_grad`` where ``x > 0``,
    ``slope * out_grad`` elsewhere (Paddle has no public call for a backward kernel)."""
    return paddle._C_ops.leaky_relu_grad(x, out_grad, slope)


def split_accumulator_name(key: str, parameter_names: Iterable[str]) -> Optional[Tuple[str, str]]:
    """``("conv2d_12.w_0", "moment1_0")`` for the optimizer-state key ``conv2d_12.w_0_moment1_0``: the
    longest parameter name that prefixes the key, and the accumulator after it. None for keys that
    belong to no parameter (``LR_Scheduler``)."""
    owner = max((name for name in parameter_names if key.startswith(name + "_")), key=len, default=None)
    return (owner, key[len(owner) + 1:]) if owner else None


def accumulator_name(parameter_name: str, accumulator: str) -> str:
    return f"{parameter_name}_{accumulator}"


def generated_parameter_names(model: paddle.nn.Layer) -> Dict[str, str]:
    """Paddle's generated parameter name (``conv2d_12.w_0``) -> structured name (``backbone.level1._conv.weight``)."""
    return {p.name: name for name, p in model.named_parameters()}
