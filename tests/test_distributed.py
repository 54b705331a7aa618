"""Two CPU processes through paddle.distributed.launch (gloo): sync, sharding, and a failing rank."""
import re
import shutil
import subprocess
import sys
import time

import pytest

from paddleseg.datasets.cityscapes import Cityscapes
from paddleseg.datasets.loader import EpochBatchSampler
from paddleseg.transforms import Normalize

from conftest import REPO, write_train_config

pytestmark = pytest.mark.slow


def launch(tmp_path, config, *extra, timeout=180):
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
           str(tmp_path / "log"), str(REPO / "train.py"), "--config", str(config), "--save_dir",
           str(tmp_path / "out"), "--log_iters", "1", "--save_interval", "100", "--iters", "4", *extra]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def worker_log(tmp_path, rank):
    return (tmp_path / "log" / f"workerlog.{rank}").read_text(errors="replace")


def test_two_cpu_ranks_stay_in_sync_on_different_shards(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    # with --do_eval rank 0 is still evaluating and saving after rank 1 has finished: not a failure
    done, _ = launch(tmp_path, config, "--do_eval")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "out" / "best_model" / "score.json").is_file()
    fingerprints, firsts = [], []
    for rank in (0, 1):
        log = worker_log(tmp_path, rank)
        fingerprints += re.findall(rf"rank {rank} trainable-parameter fingerprint: ([0-9a-f]{{64}})", log)
        firsts += re.findall(rf"rank {rank}/2 reads 4 of 8 training images per epoch; epoch 1 starts with (\S+)", log)
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]  # identical trainable parameters
    assert len(firsts) == 2 and firsts[0] != firsts[1]  # each rank reads its own shard
    assert sorted(p.name for p in (tmp_path / "out").glob("iter_*")) == ["iter_4"]  # rank 0 alone saves


def test_a_failing_rank_stops_the_job_with_its_error(tmp_path, tiny_cityscapes):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    # corrupt the first image of rank 1's shard (seed 0, epoch 0)
    dataset = Cityscapes(str(root), [Normalize()], mode="train")
    index = EpochBatchSampler(len(dataset), 2, True, True, seed=0, epoch=0, num_replicas=2, rank=1).indices()[0]
    bad = dataset.file_list[index][0]
    with open(bad, "r+b") as f:
        f.truncate(2000)
    config = write_train_config(tmp_path / "cfg.yml", root)
    done, seconds = launch(tmp_path, config, "--skip_data_check")  # else rank 0's data check names it first
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert re.search(rf"error: rank 1 failed: {re.escape(bad)}: unreadable or truncated image", output), output[-3000:]
    assert seconds < 60  # bounded: the job does not wait for a collective time-out


def test_a_rank_killed_outright_stops_the_job_naming_it(tmp_path, tiny_cityscapes):
    """SIGKILL leaves no error report: the peers notice the vanished process instead."""
    killer = tmp_path / "killer.py"
    killer.write_text(
        "import os, runpy, signal, sys\n"
        "import paddle.distributed as dist\n"
        "import paddleseg.core.training.loop as train\n"
        "real, calls = train.step, []\n"
        "def step(*args):\n"
        "    calls.append(1)\n"
        "    if dist.get_rank() == 1 and len(calls) == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(*args)\n"
        "train.step = step\n"
        f"sys.argv = ['train.py'] + sys.argv[1:]\n"
        f"runpy.run_path({str(REPO / 'train.py')!r}, run_name='__main__')\n")
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(tmp_path / "log"),
           str(killer), "--config", str(config), "--save_dir", str(tmp_path / "out"), "--iters", "6",
           "--skip_data_check"]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    log = worker_log(tmp_path, 0)
    assert re.search(r"error: rank 1 \(pid \d+\) exited without an error report", log), log[-3000:]
    # rank 0's log says it once (the launcher's output may or may not show it: gloo can abort rank 0
    # within milliseconds of rank 1's sockets closing, before the launcher reads the log again)
    assert worker_log(tmp_path, 0).count("exited without an error report") == 1
    assert time.monotonic() - started < 60
