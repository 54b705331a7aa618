"""A data-loader worker that dies or hangs on one sample: train.py fails within a bounded time, naming
the sample's path (exit 2), instead of waiting forever."""
import shutil
import time

import pytest

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, run_with_fault, train_args

pytestmark = pytest.mark.slow

HOOK = """
import os, time
from paddleseg.datasets.dataset import SegmentationDataset
real_getitem = SegmentationDataset.__getitem__

def getitem(self, idx):
    if self.file_list[idx][0].endswith({name!r}):
        {fault}
    return real_getitem(self, idx)

SegmentationDataset.__getitem__ = getitem
"""
FAULTS = {
    "dies": ("os._exit(9)", [], "a data-loader worker died while reading"),
    "hangs": ("time.sleep(3600)", ["--data_timeout", "8"], "no batch from the data-loader workers for 8 s"),
    "raises": ("raise ValueError('decoder bug')", [], "ValueError: decoder bug"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_worker_fault_fails_in_bounded_time_naming_the_sample(tmp_path, tiny_cityscapes, fault):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    bad = sorted((tiny_cityscapes / "leftImg8bit" / "train").glob("*/*.png"))[3]
    code, extra, message = FAULTS[fault]
    started = time.monotonic()
    done = run_with_fault(HOOK.format(name=bad.name, fault=code), "train.py",
                          *train_args(config, tmp_path / "out", "--num_workers", "2", "--skip_data_check", *extra),
                          cwd=tmp_path, timeout=120)
    seconds = time.monotonic() - started
    assert "Exception in thread" not in done.stderr  # paddle's reader thread did not die printing a traceback
    if fault == "raises":  # not a user error: exit 1 with the worker's traceback, but the path is named
        assert done.returncode == 1 and message in done.stderr and str(bad) in done.stderr, done.stderr[-3000:]
    else:
        error = assert_user_error(done, message)
        assert str(bad) in error
    assert seconds < 60


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_workers_user_error_is_one_error_line_without_the_reader_threads_traceback(tmp_path, tiny_cityscapes,
                                                                                     workers):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    bad = sorted((root / "leftImg8bit" / "train").glob("*/*.png"))[3]
    bad.write_bytes(bad.read_bytes()[:300])
    config = write_train_config(tmp_path / "cfg.yml", root)
    done = run_script("train.py", *train_args(config, tmp_path / "out", "--num_workers", workers,
                                              "--skip_data_check"), cwd=tmp_path, timeout=120)
    error = assert_user_error(done, "unreadable or truncated image")
    assert error == f"error: {bad}: unreadable or truncated image"
    assert "Exception in thread" not in done.stderr and "DataLoader worker" not in done.stderr
