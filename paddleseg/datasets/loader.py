"""Batches from a dataset: a deterministic (seed, epoch) order, sharded across ranks, loaded by workers.

    loader = build_dataloader(train_ds, 8, shuffle=True, drop_last=True, num_workers=2, seed=0, epoch=3)
    for batch in loader:  # {'img': (N, 3, H, W) float32, 'label': (N, H, W) int64, 'img_path': [str]}
        ...
"""
import math
from typing import Dict, Iterator, List, Optional

import numpy as np
import paddle

SHM_HINT = ("a DataLoader worker failed; if this is a bus error or a shared-memory error (common in Docker, "
            "whose /dev/shm is small), load with use_shared_memory=False or give the container more "
            "shared memory (docker run --shm-size=8g)")


class EpochBatchSampler:
    """Index batches of one epoch: shuffled by ``(seed, epoch)``, padded to a multiple of the replicas
    and sharded ``rank::num_replicas`` (each rank the same number of samples, as
    ``paddle.io.DistributedBatchSampler``), then batched; the first ``skip_batches`` are left out."""

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int = 0,
                 epoch: int = 0, skip_batches: int = 0, num_replicas: int = 1, rank: int = 0):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..{num_replicas - 1}, got {rank}")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.epoch, self.skip_batches = seed, epoch, skip_batches
        self.num_replicas, self.rank = num_replicas, rank

    def indices(self) -> List[int]:
        """This rank's sample indices for the epoch, before batching."""
        order = np.arange(self.num_samples)
        if self.shuffle:
            order = np.random.default_rng((int(self.seed), int(self.epoch))).permutation(self.num_samples)
        per_rank = math.ceil(self.num_samples / self.num_replicas) if self.num_samples else 0
        total = per_rank * self.num_replicas
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        return order[self.rank:total:self.num_replicas].tolist()

    def all_batches(self) -> List[List[int]]:
        idx = self.indices()
        batches = [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.all_batches()[self.skip_batches:])

    def __len__(self) -> int:
        return max(0, len(self.all_batches()) - self.skip_batches)


def collate(samples: List[Dict]) -> Dict:
    """Stack arrays, keep strings as lists; keys missing from a sample (test-mode labels) are left out."""
    batch = {"img": np.stack([s["img"] for s in samples])}
    if all("label" in s for s in samples):
        batch["label"] = np.stack([s["label"] for s in samples])
    batch["img_path"] = [s["img_path"] for s in samples]
    return batch


def to_tensors(batch: Dict) -> Dict:
    return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


class InProcessLoader:
    """Batches read in the calling thread (``num_workers=0``): an error in a sample is raised right
    here, with its path, instead of dying in paddle's prefetch thread and leaving the caller waiting."""

    def __init__(self, dataset, sampler: EpochBatchSampler):
        self.dataset = dataset
        self.batch_sampler = sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Dict]:
        for indices in self.batch_sampler:
            yield to_tensors(collate([self.dataset[i] for i in indices]))


class DataLoader:
    """The paddle DataLoader with a clear message when a worker dies of shared-memory trouble."""

    def __init__(self, loader, sampler: EpochBatchSampler):
        self.loader = loader
        self.batch_sampler = sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Dict]:
        try:
            yield from self.loader
        except (RuntimeError, SystemError, OSError) as e:
            text = str(e).lower()
            if any(k in text for k in ("bus error", "shared memory", "shm", "worker", "sigbus")):
                raise RuntimeError(f"{SHM_HINT}: {e}") from e
            raise


def build_dataloader(dataset, batch_size: int, *, shuffle: bool, drop_last: bool, num_workers: int = 0,
                     seed: int = 0, epoch: int = 0, skip_batches: int = 0, num_replicas: Optional[int] = None,
                     rank: Optional[int] = None, use_shared_memory: bool = True, timeout: int = 0) -> DataLoader:
    """Batches of ``dataset`` for one epoch.

    The sample order is a function of ``(seed, epoch)`` only; ``dataset.seed`` is set to ``seed`` and
    ``dataset.set_epoch(epoch)`` is called before any worker starts, so each sample's augmentation
    is fixed by (seed, epoch, index) whatever ``num_workers``. With ``num_replicas`` > 1 (default: the
    paddle.distributed world size) each rank loads its own shard. ``skip_batches`` leaves out the first
    batches of the epoch without reading them (resuming mid-epoch). ``use_shared_memory=False`` avoids
    bus errors where /dev/shm is small (Docker).
    """
    if num_replicas is None:
        num_replicas = paddle.distributed.get_world_size()
    if rank is None:
        rank = paddle.distributed.get_rank()
    dataset.seed = seed
    dataset.set_epoch(epoch)
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle, drop_last, seed, epoch, skip_batches,
                                num_replicas, rank)
    if num_workers == 0:
        return DataLoader(InProcessLoader(dataset, sampler), sampler)
    loader = paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
                                  use_shared_memory=use_shared_memory, timeout=timeout, return_list=True)
    return DataLoader(loader, sampler)
