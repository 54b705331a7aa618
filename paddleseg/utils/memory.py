"""Keeping freed memory for reuse during training.

Paddle's CPU allocator hands large blocks to glibc, which returns every block above its mmap
threshold to the system when it is freed; the next step then pays for fresh pages again (page
faults, zeroing) for every activation. Raising glibc's thresholds keeps those blocks in the heap,
costing a little resident memory (peak use is unchanged) and saving time on every iteration.
"""
import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


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
