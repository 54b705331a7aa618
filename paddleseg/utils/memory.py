"""Keeping freed memory for reuse during training.

Paddle's CPU allocator hands large blocks to glibc, which returns every block above its mmap
threshold to the system when it is freed; the next step then pays for fresh pages again (page
faults, zeroing) for every activation. Raising glibc's thresholds keeps those blocks in the heap and
saves that time on every iteration.

How far to raise them is a trade between time and peak memory: a block kept in the heap can only be
reused by a block that fits the hole it left, so a heap holding everything fragments. Measured on the
ESPNetV2 training step (s=2.0, 2x3x512x1024, tools/benchmark_train.py, 2 threads): a fixed 1 GB
(everything in the heap) 5.22 s and 2681 MB peak RSS; a fixed 32 MB 5.40 s (within the machine's
noise) and 2534 MB; a fixed 16 MB 7.43 s and 2278 MB. At 32 MB the maps of the lower levels are
reused and the few full-resolution ones (logits, softmax: 80 MB each) are mapped per step. A fixed
value also stops glibc's own threshold from growing (up to 32 MB) while training runs.

``PADDLESEG_MALLOC_KEEP_MB`` sets another threshold. A small one is cheap only when mapped memory
comes in huge pages, which glibc does when the process starts with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (transparent huge pages on request): with ``--recompute``,
8 MB and that tunable gave 1466 MB at 6.59 s per step against 1818 MB at 6.07 s with the default
(9.98 s at 8 MB without the tunable). See the README's ``--recompute`` section.
"""
import ctypes
import ctypes.util
import logging
import os
from typing import Mapping, Optional

from paddleseg.errors import UserError

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks up to this size stay in the heap for reuse; larger ones are mapped fresh and unmapped on free.
KEEP_MB_VARIABLE = "PADDLESEG_MALLOC_KEEP_MB"
_DEFAULT_KEEP_MB = 32


def keep_freed_memory() -> bool:
    """Ask glibc to serve and keep large blocks in the heap; False where that is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    keep = keep_bytes()
    ok = mallopt(_M_MMAP_THRESHOLD, keep) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 * keep) == 1
    logger.debug("glibc keeps freed blocks up to %d MB: %s", keep >> 20, ok)
    return bool(ok)


def keep_bytes(environ: Optional[Mapping[str, str]] = None) -> int:
    """The threshold in bytes: ``PADDLESEG_MALLOC_KEEP_MB`` (a whole number of MB, at least 1) or 32 MB."""
    environ = os.environ if environ is None else environ
    text = environ.get(KEEP_MB_VARIABLE)
    if text is None:
        return _DEFAULT_KEEP_MB << 20
    try:
        megabytes = int(text)
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise UserError(f"{KEEP_MB_VARIABLE}={text!r}: must be a whole number of MB, at least 1")
    return megabytes << 20
