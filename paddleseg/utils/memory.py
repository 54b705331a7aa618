"""Keeping freed memory for reuse during training.

Paddle's CPU allocator hands large blocks to glibc, which returns every block above its mmap
threshold to the system when it is freed; the next step then pays for fresh pages again (page
faults, zeroing) for every activation. Raising glibc's thresholds keeps those blocks in the heap and
saves that time on every iteration.

How far to raise them is a trade between time and peak memory: a block kept in the heap can only be
reused by a block that fits the hole it left, so a heap holding everything fragments. Measured on the
ESPNetV2 training step (tools/benchmark_train.py; the figures are in docs/performance.md): a fixed
32 MB takes the time of a fixed 1 GB (everything in the heap) at a lower peak RSS; a fixed 16 MB
lowers it further but costs much more time. At 32 MB the maps of the lower levels are
reused and the few full-resolution ones (logits, softmax: 80 MB each) are mapped per step. A fixed
value also stops glibc's own threshold from growing (up to 32 MB) while training runs.

With ``--recompute`` the threshold is 16 MB when the process runs with glibc's huge pages for malloc
(``glibc.malloc.hugetlb=1``, which :func:`set_up_allocator` turns on by starting train.py again:
paddleseg/utils/glibc_env.py): a block mapped fresh each step then costs a fault per 2 MB, and the heap
holds fewer freed blocks at the step's peak. Measured (tools/benchmark_train.py --recompute, paired with
the default run; docs/performance.md): a lower peak RSS than with 32 MB at the same time.
Without huge pages a smaller threshold is slow and recompute keeps 32 MB.
Without ``--recompute`` huge pages measured neutral (docs/performance.md), so a run
that does not recompute is not started again for them.

With ``--recompute`` the training step also returns the heap's free pages to the system
(``malloc_trim``) after the model's forward pass: the step's peak is in the losses that follow, and
the blocks the forward freed would count there. Measured the same way: a lower peak, with no
measurable time (the pages come back as the backward pass needs them). Without ``--recompute`` it is
not done: a lower peak, but more time per step (the default keeps its time; docs/performance.md).

``PADDLESEG_MALLOC_KEEP_MB`` sets another threshold (a whole number of MB, at least 1).
"""
import ctypes
import ctypes.util
import logging
import os
from typing import Callable, Mapping, Optional

from paddleseg.errors import UserError
from paddleseg.utils.glibc_env import huge_pages_on, restart_with_huge_pages

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks up to this size stay in the heap for reuse; larger ones are mapped fresh and unmapped on free.
KEEP_MB_VARIABLE = "PADDLESEG_MALLOC_KEEP_MB"
_DEFAULT_KEEP_MB = 32
_RECOMPUTE_KEEP_MB = 16  # with huge pages on


def set_up_allocator(recompute: bool, script: Optional[str] = None) -> None:
    """glibc's allocator for a training run, decided here once (module docstring): a run that recomputes
    starts ``script`` (train.py) again with huge pages for malloc, unless it already has them, the user
    set the tunable, or the platform cannot (:func:`paddleseg.utils.glibc_env.restart_with_huge_pages`,
    which also returns when Python is not running ``script`` itself); then the thresholds. For entry
    points (process-wide), before the device, threads or helper processes are set up: a restart
    repeats what came before it."""
    if recompute and script is not None:
        restart_with_huge_pages(script)
    keep_freed_memory(recompute=recompute)


def keep_freed_memory(recompute: bool = False) -> bool:
    """Ask glibc to serve and keep blocks up to :func:`keep_bytes` in the heap; False where that is
    not glibc. May be called again (train.py does once the config says whether it recomputes)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    keep = keep_bytes(recompute=recompute)
    ok = mallopt(_M_MMAP_THRESHOLD, keep) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 * keep) == 1
    logger.debug("glibc keeps freed blocks up to %d MB: %s", keep >> 20, ok)
    global _malloc_trim
    _malloc_trim = libc.malloc_trim if recompute else None
    return bool(ok)


_malloc_trim: Optional[Callable[[int], int]] = None  # glibc's, while recomputing (keep_freed_memory)


def trim_before_peak() -> None:
    """With ``keep_freed_memory(recompute=True)``: hand the heap's free pages back to the system now,
    else nothing. The training step calls it between the model's forward pass and the losses, where
    its peak is: the forward's freed blocks would otherwise still count there (module docstring)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def keep_bytes(environ: Optional[Mapping[str, str]] = None, recompute: bool = False) -> int:
    """The threshold in bytes: ``PADDLESEG_MALLOC_KEEP_MB`` (at least 1), else 16 MB when recomputing with
    glibc's huge pages on, else 32 MB (module docstring)."""
    environ = os.environ if environ is None else environ
    text = environ.get(KEEP_MB_VARIABLE)
    if text is None:
        return (_RECOMPUTE_KEEP_MB if recompute and huge_pages_on(environ) else _DEFAULT_KEEP_MB) << 20
    try:
        megabytes = int(text)
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise UserError(f"{KEEP_MB_VARIABLE}={text!r}: must be a whole number of MB, at least 1")
    return megabytes << 20
