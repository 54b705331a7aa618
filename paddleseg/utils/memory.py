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
"""
import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks up to this size stay in the heap for reuse; larger ones are mapped fresh and unmapped on free.
_KEEP_BYTES = 32 << 20


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
    ok = mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES) == 1
    logger.debug("glibc keeps freed blocks up to %d MB: %s", _KEEP_BYTES >> 20, ok)
    return bool(ok)
