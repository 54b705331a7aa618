"""SIGTERM (Slurm, Kubernetes, ``timeout``, Paddle's launcher) is handled like Ctrl-C: training finishes
the iteration in progress, saves it, and exits 143 on every rank; val.py, predict.py and export.py exit
143 with one line and leave nothing half-written. Paddle's own SIGTERM banner never appears."""
import os
import re
import signal
import subprocess
import time

import paddle
import pytest

from paddleseg.checkpoint import training as checkpoints
from paddleseg.utils.signals import Terminated, install_sigterm_handler, interruptions_held

from conftest import REPO, write_train_config
from fault_helpers import PYTHON, hidden, run_with_fault, train_args

PADDLE_BANNER = "Termination signal"


@pytest.fixture
def our_sigterm_handler():
    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm_handler()
    yield
    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# ------------------------------------------------------------------------------------------------
# holding the signals (paddleseg/utils/signals.py)
# ------------------------------------------------------------------------------------------------
def test_sigterm_in_a_held_block_is_raised_when_it_ends_and_later_ones_are_ignored(our_sigterm_handler):
    finished = []
    with pytest.raises(Terminated):
        with interruptions_held():
            os.kill(os.getpid(), signal.SIGTERM)
            finished.append(True)  # the block is not cut short
    assert finished == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # a second SIGTERM cannot cut the save short
    os.kill(os.getpid(), signal.SIGTERM)  # ignored


def test_outside_a_held_block_sigterm_is_raised_at_once(our_sigterm_handler):
    reached = []
    with pytest.raises(Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append(True)
    assert reached == []
    assert isinstance(Terminated(), KeyboardInterrupt)  # every Ctrl-C clean-up serves SIGTERM too


def test_an_error_while_a_signal_is_held_gives_way_to_the_signal(our_sigterm_handler):
    with pytest.raises(Terminated) as caught:
        with interruptions_held():
            os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("gloo: connection closed by peer")  # the stop reaching a peer first
    assert isinstance(caught.value.__context__, RuntimeError)
    with pytest.raises(ValueError):  # without a signal an error is the error
        with interruptions_held():
            raise ValueError("a real error")


def test_the_ranks_agreement_stops_a_rank_that_received_nothing(our_sigterm_handler):
    asked = []

    def another_rank_got_sigterm(signum):
        asked.append(signum)
        return signal.SIGTERM

    with pytest.raises(Terminated):
        with interruptions_held(another_rank_got_sigterm):
            pass
    with interruptions_held(lambda signum: asked.append(signum) or 0):
        pass
    assert asked == [0, 0]


def test_a_library_caller_keeps_its_own_sigterm_handling():
    """Without install_sigterm_handler (a test, a notebook), holding leaves SIGTERM as it is."""
    previous = signal.getsignal(signal.SIGTERM)
    seen = []
    with interruptions_held(lambda signum: seen.append(signal.getsignal(signal.SIGTERM)) or signum):
        inside = signal.getsignal(signal.SIGTERM)
    assert inside == previous and seen == [previous] and signal.getsignal(signal.SIGTERM) == previous


# ------------------------------------------------------------------------------------------------
# train.py
# ------------------------------------------------------------------------------------------------
def wait_for(path, text, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"exited early with {proc.returncode}"
        time.sleep(0.2)
    pytest.fail(f"{text!r} did not appear in {path}")


@pytest.mark.slow
def test_sigterm_finishes_the_iteration_saves_it_and_exits_143(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=500)
    out = tmp_path / "out"
    proc = subprocess.Popen([PYTHON, str(REPO / "train.py"), *train_args(config, out, "--skip_data_check")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(out / "train.log", "[TRAIN] iter 3/500", proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr[-3000:]
    assert stderr.rstrip().splitlines()[-1] == "terminated" and PADDLE_BANNER not in stderr
    match = re.search(r"terminated \(SIGTERM\): saved (\S+) at iteration (\d+); continue with --resume_model", stderr)
    assert match, stderr[-3000:]
    iteration = int(match.group(2))
    assert iteration >= 3 and match.group(1) == str(out / f"iter_{iteration}")
    assert checkpoints.read_train_state(out / f"iter_{iteration}").iter == iteration  # complete and verified
    assert hidden(out) == []
    log = (out / "train.log").read_text()
    assert f"[TRAIN] iter {iteration}/500" in log and f"[TRAIN] iter {iteration + 1}/500" not in log


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_every_rank_after_the_same_iteration(tmp_path, tiny_cityscapes):
    """Paddle's launcher passes SIGTERM to its ranks one after the other; they agree on it and stop
    after the same iteration (equal parameter fingerprints), rank 0 saves it, both exit 143."""
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=500)
    out, logs = tmp_path / "out", tmp_path / "log"
    launcher = subprocess.Popen([PYTHON, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                                 str(logs), str(REPO / "train.py"), *train_args(config, out, "--skip_data_check")],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    try:
        wait_for(logs / "workerlog.0", "[TRAIN] iter 3/500", launcher, seconds=240)
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=90)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    worker = [(logs / f"workerlog.{rank}").read_text(errors="replace") for rank in (0, 1)]
    for log in worker:
        assert log.rstrip().splitlines()[-1] == "terminated", log[-3000:]
        assert PADDLE_BANNER not in log and "Traceback" not in log, log[-3000:]
    fingerprints = [re.findall(rf"rank {rank} trainable-parameter fingerprint: ([0-9a-f]{{64}})", worker[rank])
                    for rank in (0, 1)]
    assert len(fingerprints[0]) == 1 and fingerprints[0] == fingerprints[1]
    match = re.search(r"terminated \(SIGTERM\): saved (\S+) at iteration (\d+)", worker[0])
    assert match, worker[0][-3000:]
    assert checkpoints.read_train_state(out / f"iter_{match.group(2)}").iter == int(match.group(2))
    assert hidden(out) == []


# ------------------------------------------------------------------------------------------------
# val.py, predict.py, export.py: SIGTERM at a chosen point (a fault hook sends it to the process)
# ------------------------------------------------------------------------------------------------
def assert_terminated(done):
    """Exit 143 with the one line ``terminated`` (after a progress bar's last state, where one is drawn)."""
    assert done.returncode == 143, (done.returncode, done.stderr[-3000:])
    assert [line for line in done.stderr.splitlines() if line.endswith("terminated")], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and PADDLE_BANNER not in done.stderr, done.stderr[-3000:]
    assert not [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr[-3000:]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from paddleseg.models import ESPNetV2

    paddle.seed(3)
    path = tmp_path_factory.mktemp("weights") / "model.pdparams"
    paddle.save(ESPNetV2(19, scale=0.5, drop_prob=0.0).state_dict(), str(path))
    return path


SIGTERM_AT_SECOND_IMAGE = """
import os, signal
from paddleseg.utils import metrics
real_update = metrics.ConfusionMatrix.update
def update(self, *args, **kwargs):
    counts = real_update(self, *args, **kwargs)
    update.n = getattr(update, "n", 0) + 1
    if update.n == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return counts
metrics.ConfusionMatrix.update = update
"""


@pytest.mark.slow
def test_val_py_sigterm_writes_neither_report_nor_json(tmp_path, tiny_cityscapes, weights):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_with_fault(SIGTERM_AT_SECOND_IMAGE, "val.py", "--config", config, "--model_path", weights,
                          "--report", tmp_path / "report", "--json", tmp_path / "scores.json", cwd=tmp_path)
    assert_terminated(done)
    assert not (tmp_path / "report").exists() and not (tmp_path / "scores.json").exists()
    assert hidden(tmp_path) == []


SIGTERM_AFTER_SECOND_FILE = """
import os, signal
real_replace, real_rename = os.replace, os.rename
def publish(real):
    def move(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if 'predicted' in str(dst):
            move.n = getattr(move, "n", 0) + 1
            if move.n == 2:   # an output is complete, the next ones are not written yet
                os.kill(os.getpid(), signal.SIGTERM)
    return move
os.replace, os.rename = publish(real_replace), publish(real_rename)
"""


@pytest.mark.slow
def test_predict_py_sigterm_leaves_only_whole_files(tmp_path, tiny_cityscapes, weights):
    import cv2

    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    out = tmp_path / "predicted"
    done = run_with_fault(SIGTERM_AFTER_SECOND_FILE, "predict.py", "--config", config, "--model_path", weights,
                          "--image_path", tiny_cityscapes / "leftImg8bit" / "val", "--save_dir", out, cwd=tmp_path)
    assert_terminated(done)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 2 <= len(files) < 8  # stopped part-way (4 images, 2 pictures each)
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    for p in files:
        assert cv2.imread(str(p)) is not None, p  # whole PNGs


SIGTERM_AFTER_SAVING_THE_GRAPH = """
import os, signal, paddle
real_save = paddle.jit.save
def save(*args, **kwargs):
    real_save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
paddle.jit.save = save
"""


@pytest.mark.slow
def test_export_py_sigterm_publishes_nothing(tmp_path, tiny_cityscapes, weights):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_with_fault(SIGTERM_AFTER_SAVING_THE_GRAPH, "export.py", "--config", config, "--model_path", weights,
                          "--save_dir", tmp_path / "out" / "export", cwd=tmp_path, timeout=300)
    assert_terminated(done)
    assert not (tmp_path / "out" / "export").exists() and hidden(tmp_path / "out") == []
