"""Beyond one machine: two single-process "nodes" on localhost equal one node of two processes bit
for bit, and a job that loses a rank (or its whole launcher) continues bit-exactly when the same
command, with ``--resume_model auto``, is run again."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from paddleseg.checkpoint import safe_load

from conftest import REPO, write_train_config

pytestmark = pytest.mark.slow

ITERS, SAVE = 6, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_argv(script, config, out, *extra):
    return [str(script), "--config", str(config), "--save_dir", str(out), "--log_iters", "1", "--save_interval",
            str(SAVE), "--iters", str(ITERS), "--skip_data_check", *extra]


def launcher(*args):
    return [sys.executable, "-m", "paddle.distributed.launch", *map(str, args)]


def weights(folder):
    return safe_load(folder / "model.pdparams")


def assert_bitwise_equal(a, b):
    assert sorted(a) == sorted(b)
    different = [k for k in a if not (a[k] == b[k]).all()]
    assert not different, different[:5]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_cityscapes):
    """One node, two CPU processes, uninterrupted."""
    root = tmp_path_factory.mktemp("reference")
    config = write_train_config(root / "cfg.yml", tiny_cityscapes)
    done = subprocess.run(launcher("--nproc_per_node", 2, "--log_dir", root / "log",
                                   *train_argv(REPO / "train.py", config, root / "out")),
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return config, weights(root / "out" / f"iter_{ITERS}")


def test_two_nodes_of_one_process_equal_one_node_of_two(tmp_path, reference):
    config, expected = reference
    master = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(launcher("--nnodes", 2, "--master", master, "--rank", rank, "--nproc_per_node", 1,
                                       "--log_dir", tmp_path / f"log{rank}",
                                       *train_argv(REPO / "train.py", config, tmp_path / "out")),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert_bitwise_equal(weights(tmp_path / "out" / f"iter_{ITERS}"), expected)


KILL_RANK_1 = """
import os, runpy, signal, sys
import paddle.distributed as dist
import paddleseg.core.training.loop as train
real, calls = train.step, []
def step(*args):
    calls.append(1)
    if dist.get_rank() == 1 and len(calls) == 4 and not os.environ.get("NO_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)   # after iter_2 is saved
    return real(*args)
train.step = step
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path(os.path.join(os.environ['REPO'], 'train.py'), run_name='__main__')
"""


@pytest.mark.parametrize("victim", ["rank 1", "whole launcher"])
def test_a_lost_rank_then_the_same_command_with_auto_resume_ends_bit_exact(tmp_path, reference, victim):
    config, expected = reference
    script = tmp_path / "train_with_fault.py"
    script.write_text(KILL_RANK_1)
    command = launcher("--nproc_per_node", 2, "--log_dir", tmp_path / "log",
                       *train_argv(script, config, tmp_path / "out", "--resume_model", "auto"))
    env = dict(os.environ, REPO=str(REPO))
    if victim == "rank 1":
        first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        assert first.returncode != 0
    else:  # the node is lost: launcher and ranks SIGKILLed together, once iter_2 is on disk
        job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(env, NO_KILL="1"), start_new_session=True)
        deadline = time.monotonic() + 240
        while not (tmp_path / "out" / "iter_2" / "train_state.json").exists():
            assert job.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert (tmp_path / "out" / "iter_2").is_dir() and not (tmp_path / "out" / f"iter_{ITERS}").exists()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env=dict(env, NO_KILL="1"))
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    log = (tmp_path / "log" / "workerlog.0").read_text()
    assert "--resume_model auto: continuing run" in log and "iter_" in log
    assert_bitwise_equal(weights(tmp_path / "out" / f"iter_{ITERS}"), expected)
