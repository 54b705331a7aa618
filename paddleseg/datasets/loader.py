"""Batches from a dataset: a deterministic (seed, epoch) order, sharded across ranks, loaded by workers.

    loader = build_dataloader(train_ds, 8, shuffle=True, drop_last=True, num_workers=2, seed=0, epoch=3)
    for batch in loader:  # {'img': (N, 3, H, W) float32, 'label': (N, H, W) int64, 'img_path': [str]}
        ...
"""
import math
import multiprocessing
import os
import signal
import threading
import time
import traceback
from typing import Dict, Iterator, List, Optional

import numpy as np
import paddle

from paddleseg.errors import DatasetError, UserError
from paddleseg.utils.paddle_compat import stop_loader_reader, unregister_loader_workers
from paddleseg.utils.processes import alive

DEFAULT_TIMEOUT = 120  # seconds the training loop waits for one batch from the workers
SHM_HINT = ("a DataLoader worker failed; if this is a bus error or a shared-memory error (common in Docker, "
            "whose /dev/shm is small), load with use_shared_memory=False or give the container more "
            "shared memory (docker run --shm-size=8g)")


class EpochBatchSampler:
    """Index batches of one epoch: shuffled by ``(seed, epoch)``, sharded ``rank::num_replicas``, then
    batched; the first ``skip_batches`` are left out.

    ``pad`` (training): the order is first padded to a multiple of the replicas, so every rank has
    the same number of samples and the ranks step together (as ``paddle.io.DistributedBatchSampler``).
    Evaluation passes ``pad=False``: each sample is read by exactly one rank, once (the shards may
    differ by one; only the summed confusion matrices meet)."""

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int = 0,
                 epoch: int = 0, skip_batches: int = 0, num_replicas: int = 1, rank: int = 0, pad: bool = True):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..{num_replicas - 1}, got {rank}")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.epoch, self.skip_batches = seed, epoch, skip_batches
        self.num_replicas, self.rank, self.pad = num_replicas, rank, pad

    def indices(self) -> List[int]:
        """This rank's sample indices for the epoch, before batching."""
        order = np.arange(self.num_samples)
        if self.shuffle:
            order = np.random.default_rng((int(self.seed), int(self.epoch))).permutation(self.num_samples)
        if not self.pad:
            return order[self.rank::self.num_replicas].tolist()
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


class RunBatchSampler:
    """Batches for epoch after epoch, without end: epoch ``epoch`` from its batch ``skip_batches`` on,
    then every following epoch whole, each as :class:`EpochBatchSampler` makes it. The keys are
    ``(epoch, index)`` pairs (:func:`read_sample`): one long-lived loader reads the whole run, so its
    worker processes start once, not every epoch, and a worker's copy of the data set, which the
    main process cannot reach, still draws each sample's augmentation from (seed, epoch, index)."""

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, epoch: int = 0, skip_batches: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.epoch, self.skip_batches, self.num_replicas, self.rank = epoch, skip_batches, num_replicas, rank

    def epoch_sampler(self, epoch: int) -> EpochBatchSampler:
        return EpochBatchSampler(self.num_samples, self.batch_size, True, True, self.seed, epoch, 0,
                                 self.num_replicas, self.rank)

    def __iter__(self) -> Iterator[List[tuple]]:
        epoch, skip = self.epoch, self.skip_batches
        if not len(self.epoch_sampler(epoch)):
            raise ValueError(f"no full batch of {self.batch_size} in {self.num_samples} samples on "
                             f"{self.num_replicas} rank(s)")
        while True:
            for batch in self.epoch_sampler(epoch).all_batches()[skip:]:
                yield [(epoch, i) for i in batch]
            epoch, skip = epoch + 1, 0


def read_sample(dataset, key) -> Dict:
    """``dataset[key]``; a key ``(epoch, index)`` (:class:`RunBatchSampler`) reads sample ``index`` as
    it is augmented in ``epoch``."""
    if isinstance(key, tuple):
        epoch, key = key
        dataset.set_epoch(epoch)
    return dataset[key]


def sample_index(key) -> int:
    return key[1] if isinstance(key, tuple) else key


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

    def __init__(self, dataset, sampler):
        self.dataset = dataset
        self.batch_sampler = sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Dict]:
        for keys in self.batch_sampler:
            yield to_tensors(collate([read_sample(self.dataset, k) for k in keys]))


class SampleWatch:
    """What each loader worker is doing, shared with the main process: the sample it is reading
    (index, start time, worker pid; index -1 when idle). So a worker that dies or hangs is named by
    its sample."""

    def __init__(self, num_workers: int):
        self.slots = multiprocessing.Array("d", [-1.0, 0.0, 0.0] * num_workers, lock=False)

    def start(self, worker: int, index: int) -> None:
        self.slots[3 * worker:3 * worker + 3] = [index, time.time(), os.getpid()]

    def stop(self, worker: int) -> None:
        self.slots[3 * worker] = -1.0

    def busy(self) -> List[tuple]:
        """(index, seconds spent on it, pid) of the samples being read, the longest first."""
        now, found = time.time(), []
        for w in range(len(self.slots) // 3):
            index, started, pid = self.slots[3 * w:3 * w + 3]
            if index >= 0:
                found.append((int(index), now - started, int(pid)))
        return sorted(found, key=lambda x: -x[1])


# A worker does not raise: paddle's reader thread would print the worker's traceback and die, and the
# main process would only learn that the queue was killed. It sends this batch instead, which the
# main process raises as the error (DataLoader.__iter__).
FAILED = "failed_sample"


def failure(where: str, error: Exception) -> Dict:
    """The sample (and batch) a worker sends for ``error`` raised while reading ``where``: a user
    error with its message (it names the file), anything else with its traceback."""
    user_error = isinstance(error, UserError)
    # paddle's queue needs an array in every batch (it misreads a batch of none)
    return {FAILED: where, "user_error": user_error, "queue_padding": np.zeros(1, dtype=np.float32),
            "message": str(error) if user_error else traceback.format_exc()}


def watched_collate(samples: List[Dict]) -> Dict:
    """:func:`collate` in a worker: a failed sample (or a failing collate) makes the batch a failure."""
    for s in samples:
        if FAILED in s:
            return s
    try:
        return collate(samples)
    except Exception as e:  # e.g. samples of different sizes: a config without a fixed-size crop
        return failure("the batch of " + ", ".join(str(s.get("img_path")) for s in samples), e)


class WatchedDataset:
    """``dataset`` as the workers read it: every sample recorded in a :class:`SampleWatch`, an error
    sent as a :func:`failure` sample."""

    def __init__(self, dataset, watch: SampleWatch):
        self.dataset, self.watch = dataset, watch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> Dict:
        worker, idx = paddle.io.get_worker_info().id, sample_index(key)
        self.watch.start(worker, idx)
        try:
            sample = read_sample(self.dataset, key)
        except Exception as e:
            sample = failure(sample_path(self.dataset, idx), e)
        self.watch.stop(worker)
        return sample


def sample_path(dataset, index: int) -> str:
    file_list = getattr(dataset, "file_list", None)
    return str(file_list[index][0]) if file_list else f"sample {index}"


class DataLoader:
    """The paddle DataLoader, failing clearly instead of hanging or dying without a path.

    A worker's error is raised in the main process as itself (a :class:`DatasetError` naming the
    file, one line) rather than paddle's "blocking queue is killed" after a reader-thread traceback;
    a worker that dies is named by the sample it was reading; and when no batch arrives within
    ``timeout`` seconds (0: no limit) the workers reading are killed and the samples they were stuck
    on are named."""

    def __init__(self, loader, sampler, dataset=None, watch: Optional[SampleWatch] = None,
                 timeout: float = 0):
        self.loader = loader
        self.batch_sampler = sampler
        self.dataset, self.watch, self.timeout = dataset, watch, timeout

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Dict]:
        if self.watch is None:
            yield from self.loader
            return
        try:
            batches = iter(self.loader)
            # paddle's SIGCHLD handler raises "worker exited" in whatever the main thread is running (a
            # forward pass...); unregistered, a dead worker is seen by paddle's reader thread, and
            # explained here
            unregister_loader_workers(batches)
        except (RuntimeError, SystemError, OSError) as e:  # a worker died while the workers started
            failure = self._explain(e, timed_out=False)
            self._kill_stuck()
            if failure is e:
                raise
            raise failure from e
        while True:
            timed_out = threading.Event()
            timer = None
            if self.timeout > 0:
                timer = threading.Timer(self.timeout, self._abort, (batches, timed_out))
                timer.daemon = True
                timer.start()
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (RuntimeError, SystemError, OSError) as e:
                failure = self._explain(e, timed_out.is_set())
                self._kill_stuck()
                if failure is e:
                    raise
                raise failure from e
            finally:
                if timer is not None:
                    timer.cancel()
            if FAILED in batch:
                failure = self._failed(batch)
                del batches, timer  # paddle's iterator shuts its workers down now, not when the traceback goes
                raise failure
            yield batch

    def _failed(self, batch: Dict) -> Exception:
        if batch["user_error"]:
            return DatasetError(batch["message"])
        return RuntimeError(f"a data-loader worker failed on {batch[FAILED]}:\n{batch['message']}")

    @staticmethod
    def _abort(batches, timed_out: threading.Event) -> None:
        """Make the main thread's blocked read fail: paddle's own ``timeout`` only polls, it never fails
        while the workers are alive."""
        timed_out.set()
        stop_loader_reader(batches)

    def _kill_stuck(self) -> None:
        """Kill the workers still stuck on a sample: paddle joins its workers without a time limit."""
        stuck = [pid for _, _, pid in self.watch.busy() if alive(pid)]
        for pid in stuck:
            try:
                os.kill(pid, signal.SIGKILL)
            except (OSError, SystemError):  # SystemError: paddle's SIGCHLD handler, seeing a worker killed
                pass
        if stuck:
            try:
                time.sleep(0.5)  # let that handler run here rather than in the caller
            except SystemError:
                pass

    def _explain(self, error: Exception, timed_out: bool) -> Exception:
        busy = self.watch.busy()
        named = "; ".join(f"{sample_path(self.dataset, i)} (sample {i}, {age:.0f} s)" for i, age, _ in busy)
        if timed_out and all(alive(pid) for _, _, pid in busy):
            return DatasetError(f"no batch from the data-loader workers for {self.timeout:g} s (--data_timeout); "
                                f"stuck reading: {named or 'no sample (a worker may have stopped)'}")
        if busy:
            return DatasetError(f"a data-loader worker died while reading {named}. If it was killed for memory, "
                                f"use fewer --num_workers; {SHM_HINT}")
        text = str(error).lower()
        if any(k in text for k in ("bus error", "shared memory", "shm", "worker", "sigbus", "killed")):
            return RuntimeError(f"{SHM_HINT}: {error}")
        return error


def build_dataloader(dataset, batch_size: int, *, shuffle: bool, drop_last: bool, num_workers: int = 0,
                     seed: int = 0, epoch: int = 0, skip_batches: int = 0, num_replicas: Optional[int] = None,
                     rank: Optional[int] = None, use_shared_memory: bool = True, timeout: float = 0,
                     pad: bool = True) -> DataLoader:
    """Batches of ``dataset`` for one epoch (``pad=False`` for evaluation: :class:`EpochBatchSampler`).

    The sample order is a function of ``(seed, epoch)`` only; ``dataset.seed`` is set to ``seed`` and
    ``dataset.set_epoch(epoch)`` is called before any worker starts, so each sample's augmentation
    is fixed by (seed, epoch, index) whatever ``num_workers``. With ``num_replicas`` > 1 (default: the
    paddle.distributed world size) each rank loads its own shard. ``skip_batches`` leaves out the first
    batches of the epoch without reading them (resuming mid-epoch). ``use_shared_memory=False`` avoids
    bus errors where /dev/shm is small (Docker). With workers, ``timeout`` > 0 bounds the wait for each
    batch (:class:`DataLoader`).
    """
    if num_replicas is None:
        num_replicas = paddle.distributed.get_world_size()
    if rank is None:
        rank = paddle.distributed.get_rank()
    dataset.seed = seed
    dataset.set_epoch(epoch)
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle, drop_last, seed, epoch, skip_batches,
                                num_replicas, rank, pad)
    return load(dataset, sampler, num_workers, use_shared_memory, timeout)


def build_run_loader(dataset, batch_size: int, *, num_workers: int = 0, seed: int = 0, epoch: int = 0,
                     skip_batches: int = 0, num_replicas: int = 1, rank: int = 0, use_shared_memory: bool = True,
                     timeout: float = 0) -> DataLoader:
    """Training batches for the rest of a run, epoch after epoch from ``epoch``'s batch ``skip_batches``
    (:class:`RunBatchSampler`): the same batches as one :func:`build_dataloader` per epoch (shuffled,
    drop_last), read by worker processes started once."""
    dataset.seed = seed
    sampler = RunBatchSampler(len(dataset), batch_size, seed=seed, epoch=epoch, skip_batches=skip_batches,
                              num_replicas=num_replicas, rank=rank)
    return load(dataset, sampler, num_workers, use_shared_memory, timeout)


def load(dataset, sampler, num_workers: int, use_shared_memory: bool, timeout: float) -> DataLoader:
    """``sampler``'s batches of ``dataset``, read in this thread or by ``num_workers`` processes."""
    if num_workers == 0:
        return DataLoader(InProcessLoader(dataset, sampler), sampler)
    watch = SampleWatch(num_workers)
    loader = paddle.io.DataLoader(WatchedDataset(dataset, watch), batch_sampler=sampler, num_workers=num_workers,
                                  collate_fn=watched_collate, use_shared_memory=use_shared_memory, return_list=True)
    return DataLoader(loader, sampler, dataset, watch, timeout)
