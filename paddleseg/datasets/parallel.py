"""Map a function over many files with worker processes and a progress bar."""
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, List, Optional, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: Optional[int] = None,
                 desc: str = "", progress: bool = True) -> List[R]:
    """``[fn(x) for x in items]`` (in order) over ``workers`` processes (1: in this process).
    ``fn`` must be a module-level function so it can be sent to the workers."""
    items = list(items)
    workers = default_workers() if workers is None else max(1, workers)
    bar = dict(total=len(items), desc=desc, disable=not progress, unit="file")
    if workers == 1 or len(items) <= 1:
        return [fn(x) for x in tqdm(items, **bar)]
    with ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool:
        chunk = max(1, len(items) // (workers * 8))
        return list(tqdm(pool.map(fn, items, chunksize=chunk), **bar))
