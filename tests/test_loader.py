"""The loader: (seed, epoch)-determined order, disjoint equal rank shards, mid-epoch skipping, batches
identical with and without worker processes, dropped incomplete batches."""
import os

import numpy as np
import paddle
import pytest

from paddleseg.datasets.loader import EpochBatchSampler, RunBatchSampler, build_dataloader, build_run_loader
from paddleseg.errors import DatasetError


class Toy:
    """A dataset whose samples encode their index and their own random draw."""

    def __init__(self, n=10):
        self.n, self.seed, self.epoch = n, 0, 0
        self.loaded = []

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        self.loaded.append(idx)
        draw = np.random.default_rng((self.seed, self.epoch, idx)).random()
        img = np.full((3, 4, 4), idx + draw, np.float32)
        return {"img": img, "label": np.full((4, 4), idx, np.int64), "img_path": f"{idx}.png", "label_path": None}


def test_order_is_a_function_of_seed_and_epoch():
    a = EpochBatchSampler(20, 4, shuffle=True, drop_last=False, seed=1, epoch=2).indices()
    assert a == EpochBatchSampler(20, 4, shuffle=True, drop_last=False, seed=1, epoch=2).indices()
    assert a != EpochBatchSampler(20, 4, shuffle=True, drop_last=False, seed=1, epoch=3).indices()
    assert sorted(a) == list(range(20))
    assert EpochBatchSampler(5, 2, shuffle=False, drop_last=False).indices() == [0, 1, 2, 3, 4]


def test_rank_shards_are_disjoint_equal_and_cover_the_set():
    shards = [EpochBatchSampler(12, 2, True, False, seed=0, epoch=1, num_replicas=3, rank=r).indices()
              for r in range(3)]
    assert all(len(s) == 4 for s in shards)
    assert sorted(sum(shards, [])) == list(range(12))
    uneven = [EpochBatchSampler(10, 2, True, False, num_replicas=3, rank=r).indices() for r in range(3)]
    assert [len(s) for s in uneven] == [4, 4, 4] and set(sum(uneven, [])) == set(range(10))


def test_evaluation_shards_read_every_sample_exactly_once():
    for n, world in ((5, 2), (10, 3), (2, 3)):
        shards = [EpochBatchSampler(n, 1, False, False, num_replicas=world, rank=r, pad=False).indices()
                  for r in range(world)]
        assert sorted(sum(shards, [])) == list(range(n)), (n, world, shards)
    assert [EpochBatchSampler(5, 1, False, False, num_replicas=2, rank=r, pad=False).indices()
            for r in range(2)] == [[0, 2, 4], [1, 3]]


def test_a_run_sampler_continues_epoch_after_epoch_as_the_epoch_samplers():
    run = iter(RunBatchSampler(10, 4, seed=7, epoch=1, skip_batches=1, num_replicas=2, rank=1))
    got = [next(run) for _ in range(3)]  # 1 batch per epoch and rank: epoch 1 is skipped whole
    expected = [[(e, i) for i in EpochBatchSampler(10, 4, True, True, 7, e, 0, 2, 1).all_batches()[0]]
                for e in (2, 3, 4)]
    assert got == expected
    with pytest.raises(ValueError, match="no full batch"):
        next(iter(RunBatchSampler(3, 4)))


class WhichProcess(Toy):
    """Toy whose image paths also name the process that read the sample."""

    def __getitem__(self, idx):
        sample = super().__getitem__(idx)
        sample["img_path"] += f"@{os.getpid()}"
        return sample


@pytest.mark.slow
def test_run_loader_workers_start_once_and_give_each_epochs_batches_of_one_process():
    per_epoch = 2  # Toy(10), batch 4, drop_last
    ref = [b["img"].numpy() for e in (1, 2) for b in build_dataloader(Toy(10), 4, shuffle=True, drop_last=True,
                                                                     seed=5, epoch=e, num_replicas=1, rank=0)]
    for skip in (0, 1):  # from the start of epoch 1, and resumed after its first batch
        batches = iter(build_run_loader(WhichProcess(10), 4, num_workers=2, seed=5, epoch=1, skip_batches=skip,
                                        use_shared_memory=False))
        got = [next(batches) for _ in range(2 * per_epoch - skip)]
        for a, b in zip(ref[skip:], got):
            assert np.array_equal(a, b["img"].numpy())
        readers = {path.split("@")[1] for b in got for path in b["img_path"]}
        assert 1 <= len(readers) <= 2 and str(os.getpid()) not in readers, readers  # the same 2 workers
        del batches


def test_drop_last_and_skip_batches():
    s = EpochBatchSampler(10, 4, shuffle=True, drop_last=True, seed=0, epoch=0)
    full = list(s)
    assert len(full) == len(s) == 2 and all(len(b) == 4 for b in full)
    assert len(list(EpochBatchSampler(10, 4, True, False))) == 3
    skipped = EpochBatchSampler(10, 4, shuffle=True, drop_last=True, seed=0, epoch=0, skip_batches=1)
    assert list(skipped) == full[1:] and len(skipped) == 1


def test_loader_batches_are_tensors_and_resume_without_reading_skipped():
    ds = Toy(10)
    loader = build_dataloader(ds, 4, shuffle=True, drop_last=True, seed=3, epoch=2, num_replicas=1, rank=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 2 and ds.seed == 3 and ds.epoch == 2
    b = batches[0]
    assert isinstance(b["img"], paddle.Tensor) and b["img"].shape == [4, 3, 4, 4] and b["img"].dtype == paddle.float32
    assert b["label"].dtype == paddle.int64 and b["label"].shape == [4, 4, 4]
    assert b["img_path"] == [f"{int(i)}.png" for i in b["label"][:, 0, 0].numpy()]
    ds.loaded.clear()
    resumed = list(build_dataloader(ds, 4, shuffle=True, drop_last=True, seed=3, epoch=2, skip_batches=1,
                                    num_replicas=1, rank=0))
    assert len(resumed) == 1 and np.array_equal(resumed[0]["img"].numpy(), batches[1]["img"].numpy())
    assert len(ds.loaded) == 4, "skipped batches must not be loaded"


@pytest.mark.slow
def test_workers_give_the_same_batches_as_one_process():
    ref = [b["img"].numpy() for b in build_dataloader(Toy(12), 3, shuffle=True, drop_last=False, seed=5,
                                                       epoch=1, num_replicas=1, rank=0)]
    got = [b["img"].numpy() for b in build_dataloader(Toy(12), 3, shuffle=True, drop_last=False, seed=5,
                                                       epoch=1, num_workers=2, num_replicas=1, rank=0,
                                                       use_shared_memory=False)]
    assert len(ref) == len(got) == 4
    for a, b in zip(ref, got):
        assert np.array_equal(a, b)
    other = [b["img"].numpy() for b in build_dataloader(Toy(12), 3, shuffle=True, drop_last=False, seed=5,
                                                         epoch=2, num_replicas=1, rank=0)]
    assert not np.array_equal(np.concatenate(ref), np.concatenate(other))


class Broken(Toy):
    """Sample 5 raises a user error (a bad file), as a corrupt image does."""

    def __getitem__(self, idx):
        if idx == 5:
            raise DatasetError("5.png: unreadable or truncated image")
        return super().__getitem__(idx)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_sample_error_reaches_the_caller_as_itself_without_a_thread_traceback(capfd, workers):
    loader = build_dataloader(Broken(8), 2, shuffle=False, drop_last=False, num_workers=workers, num_replicas=1,
                              rank=0, use_shared_memory=False)
    with pytest.raises(DatasetError, match=r"^5.png: unreadable or truncated image$"):
        for _ in loader:
            pass
    assert "Traceback" not in capfd.readouterr().err  # paddle's reader thread did not die printing one
