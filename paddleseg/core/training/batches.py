"""The batches of a run, iteration by iteration, as a function of the seed.

Iteration ``i`` (1-based) trains on batch ``(i-1) % B`` of epoch ``(i-1) // B`` (B batches per epoch
and rank; the order a function of (seed, epoch), each sample's augmentation a function of (seed,
epoch, index)), and paddle's random generator is re-seeded from (seed, i) before it: a run resumed
from ``iter_N`` continues exactly as the uninterrupted run would have.
"""
from typing import Dict, Iterator

from paddleseg.datasets.loader import DEFAULT_TIMEOUT, EpochBatchSampler, build_run_loader


def batches_per_epoch(num_samples: int, batch_size: int, world: int, rank: int) -> int:
    return len(EpochBatchSampler(num_samples, batch_size, True, True, num_replicas=world, rank=rank))


def iterate_batches(dataset, batch_size: int, start_iter: int, *, seed: int, num_workers: int, world: int,
                    rank: int, use_shared_memory: bool = True, timeout=None) -> Iterator[Dict]:
    """Batches for iterations ``start_iter + 1, …``, epoch after epoch, from one loader whose worker
    processes start once per run (paddleseg/datasets/loader.py, ``build_run_loader``). ``timeout``:
    seconds to wait for a batch from the workers (None: the loader's default)."""
    per_epoch = batches_per_epoch(len(dataset), batch_size, world, rank)
    epoch, skip = divmod(start_iter, per_epoch)
    yield from build_run_loader(dataset, batch_size, num_workers=num_workers, seed=seed, epoch=epoch,
                                skip_batches=skip, num_replicas=world, rank=rank, use_shared_memory=use_shared_memory,
                                timeout=DEFAULT_TIMEOUT if timeout is None else timeout)


def iteration_seed(seed: int, iteration: int) -> int:
    """Paddle's generator is seeded with this before iteration ``iteration`` (dropout, module docstring)."""
    return (seed * 1_000_003 + iteration) % (2 ** 31)
