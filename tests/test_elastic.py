"""Paddle's elastic launcher (``--master etcd://…``, ``--elastic_level`` 1 or 2, ``--max_restart``) restarts
the pod of a single node that lost a rank, and ``--resume_model auto`` continues the run bit-exactly from
the last checkpoint; ``--elastic_level 0`` stops instead. Only one node is tested: with two launchers the
restart is a race on Paddle 3.3.1 (see README, "Elastic restarts (etcd)").

Needs the ``etcd`` server on PATH and the ``etcd3`` Python client. This module starts its own etcd on free
127.0.0.1 ports with a temporary data directory and always stops it. etcd3 0.12.0's generated protobuf
modules import only with the pure-Python protobuf implementation
(``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``), so the launcher runs with that variable set."""
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, write_train_config
from test_multinode import assert_bitwise_equal, free_port, launcher, weights

pytestmark = pytest.mark.slow

ITERS, SAVE = 6, 2
LAUNCH_TIMEOUT = 400
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly, whatever *_proxy says
PURE_PYTHON_PROTOBUF = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}

# Rank 1 SIGKILLs itself once, at its 4th step (after iter_2 is saved); the marker file keeps the
# restarted rank 1 alive, and records that the kill happened.
KILL_RANK_1_ONCE = """
import os, runpy, signal, sys
import paddle.distributed as dist
import paddleseg.core.training.loop as train
real, calls = train.step, []
def step(*args):
    calls.append(1)
    marker = os.environ['KILL_MARKER']
    if dist.get_rank() == 1 and len(calls) == 4 and not os.path.exists(marker):
        open(marker, 'w').close()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args)
train.step = step
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path(os.path.join(os.environ['REPO'], 'train.py'), run_name='__main__')
"""




def etcd_client_import_error() -> str:
    """Why ``import etcd3`` fails in the launcher's environment, or '' when it works."""
    done = subprocess.run([sys.executable, "-c", "import etcd3"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **PURE_PYTHON_PROTOBUF))
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no output"])[-1]


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    """An etcd server on free 127.0.0.1 ports; yields its ``etcd://host:port`` address."""
    if shutil.which("etcd") is None:
        pytest.skip("the etcd server is not on PATH (Debian: apt-get install etcd-server)")
    error = etcd_client_import_error()
    if error:
        pytest.skip(f"the etcd3 Python client Paddle's elastic launcher imports is unusable: {error}")
    data = tmp_path_factory.mktemp("etcd")
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    with open(data / "etcd.log", "w") as log:
        server = subprocess.Popen(
            ["etcd", "--name", "test", "--data-dir", str(data / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", f"test={peer}"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (data / "etcd.log").read_text()[-2000:]
            try:
                with NO_PROXY.open(f"{client}/health", timeout=2) as reply:
                    if b'"health":"true"' in reply.read():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "etcd did not become healthy in 30 s"
            time.sleep(0.2)
        yield "etcd://" + client.removeprefix("http://")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(command, cwd, env=None) -> subprocess.CompletedProcess:
    """Run a launcher in its own process group, which a timeout kills whole (ranks included)."""
    job = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           start_new_session=True)
    try:
        output = job.communicate(timeout=LAUNCH_TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        output = job.communicate()[0]
        pytest.fail(f"launcher did not finish in {LAUNCH_TIMEOUT} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, job.returncode, output)


def train_argv(script, config, out):
    return [str(script), "--config", str(config), "--save_dir", str(out), "--log_iters", "1", "--save_interval",
            str(SAVE), "--iters", str(ITERS), "--skip_data_check", "--resume_model", "auto"]








@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_cityscapes, etcd):
    """One node, two CPU processes, plain launcher, uninterrupted (after ``etcd``: skip before paying for it)."""
    root = tmp_path_factory.mktemp("reference")
    config = write_train_config(root / "cfg.yml", tiny_cityscapes)
    done = run(launcher("--nproc_per_node", 2, "--log_dir", root / "log",
                        *train_argv(REPO / "train.py", config, root / "out")), cwd=root)
    assert done.returncode == 0, done.stdout[-3000:]
    return config, weights(root / "out" / f"iter_{ITERS}")


def elastic_run(tmp_path, etcd, config, level):
    script = tmp_path / "train_with_fault.py"
    script.write_text(KILL_RANK_1_ONCE)
    command = launcher("--master", etcd, "--nnodes", 1, "--nproc_per_node", 2, "--elastic_level", level,
                       "--max_restart", 3, "--elastic_timeout", 10, "--job_id", f"{tmp_path.name}-level{level}",
                       "--log_dir", tmp_path / "log", *train_argv(script, config, tmp_path / "out"))
    env = dict(os.environ, REPO=str(REPO), KILL_MARKER=str(tmp_path / "killed"), **PURE_PYTHON_PROTOBUF)
    return run(command, cwd=tmp_path, env=env)


@pytest.mark.parametrize("level", [1, 2])
def test_elastic_launcher_restarts_the_pod_and_auto_resume_ends_bit_exact(tmp_path, etcd, reference, level):
    config, expected = reference
    done = elastic_run(tmp_path, etcd, config, level)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "killed").exists(), "rank 1 was never killed"
    assert done.stdout.index("Pod failed") < done.stdout.index("Pod completed")
    log = (tmp_path / "log" / "workerlog.0").read_text()  # the launcher appends the restarted rank's log
    assert "no checkpoint of run" in log
    assert "--resume_model auto: continuing run" in log and f"iter_{SAVE}" in log.split("continuing run")[1]
    assert_bitwise_equal(weights(tmp_path / "out" / f"iter_{ITERS}"), expected)


def test_elastic_level_0_stops_the_job_without_restarting(tmp_path, etcd, reference):
    config, _ = reference
    done = elastic_run(tmp_path, etcd, config, 0)
    assert done.returncode != 0
    assert (tmp_path / "killed").exists() and "Pod completed" not in done.stdout
    assert (tmp_path / "out" / f"iter_{SAVE}").is_dir() and not (tmp_path / "out" / f"iter_{ITERS}").exists()
