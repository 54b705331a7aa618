"""A run owns its save_dir: it never deletes, renames or replaces what it did not write, refuses a
folder that holds another run, holds a lock against a second writer, and --resume_model auto
continues the folder's own run."""
import json
import signal
import subprocess
import sys

import pytest

from conftest import REPO, write_train_config
from fault_helpers import assert_user_error, run_script, run_with_fault, snapshot, train_args

pytestmark = pytest.mark.slow


def train_cmd(config, out, *extra):
    return train_args(config, out, "--save_interval", "2", "--skip_data_check", *extra)


@pytest.fixture
def config(tmp_path, tiny_cityscapes):
    return write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=4)


def plant_foreign(out):
    """What a user or another run left: a user's iter_7/, hidden folders that look like interrupted
    saves, another run's best_model with a higher score."""
    (out / "iter_7").mkdir(parents=True)
    (out / "iter_7" / "thesis.tex").write_text("six months of work")
    (out / ".thesis.partial-draft").mkdir()
    (out / ".thesis.partial-draft" / "ch1.tex").write_text("draft")
    (out / ".photos.old-2019").mkdir()
    (out / ".photos.old-2019" / "a.jpg").write_bytes(b"\xff\xd8")
    (out / "best_model").mkdir()
    (out / "best_model" / "score.json").write_text(json.dumps({"miou": 0.99, "iter": 100, "run_id": "other"}))
    (out / "notes.txt").write_text("keep me")


def test_a_new_run_in_a_folder_of_foreign_files_changes_nothing(tmp_path, config):
    out = tmp_path / "out"
    plant_foreign(out)
    before = snapshot(out)
    done = run_script("train.py", *train_cmd(config, out), cwd=tmp_path)
    assert_user_error(done, str(out), "not written by this run", "another --save_dir")
    assert snapshot(out) == before


def test_unrelated_files_do_not_block_and_survive_a_full_run(tmp_path, config):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / ".thesis.partial-draft").mkdir()
    (out / ".photos.old-2019").mkdir()
    done = run_script("train.py", *train_cmd(config, out, "--keep_checkpoint_max", "1"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == [".photos.old-2019", ".thesis.partial-draft", "iter_4", "notes.txt", "run.json", "train.log",
                     "train_history.json", "training_curves.png"]
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    assert json.loads((out / "iter_4" / "train_state.json").read_text())["run_id"] == run_id


def test_a_second_run_in_a_finished_runs_folder_is_refused_and_auto_does_nothing(tmp_path, config):
    out = tmp_path / "out"
    assert run_script("train.py", *train_cmd(config, out), cwd=tmp_path).returncode == 0
    before = snapshot(out)
    again = run_script("train.py", *train_cmd(config, out), cwd=tmp_path)
    assert_user_error(again, "already holds run", "iter_4", "--resume_model auto")
    assert snapshot(out) == before
    auto = run_script("train.py", *train_cmd(config, out, "--resume_model", "auto"), cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr[-3000:]
    assert "the run is finished, nothing to train" in auto.stderr
    assert {k: v for k, v in snapshot(out).items() if k not in ("train.log", "run.json")} == \
        {k: v for k, v in before.items() if k not in ("train.log", "run.json")}


HANG_AT_ITER_3 = """
import time
from paddleseg.core.training import loop as t
real = t.step
def step(*a, **k):
    values = real(*a, **k)
    if getattr(step, "n", 0) == 2:
        print("HOLDING", flush=True)
        time.sleep(600)
    step.n = getattr(step, "n", 0) + 1
    return values
t.step = step
"""


def test_a_second_concurrent_run_is_refused_naming_the_holder_and_a_dead_holder_never_blocks(tmp_path, config):
    out = tmp_path / "out"
    boot = (f"import runpy, sys\nsys.path.insert(0, {str(REPO)!r})\nsys.argv = [{str(REPO / 'train.py')!r}] + "
            f"sys.argv[1:]\n" + HANG_AT_ITER_3 + f"\nrunpy.run_path({str(REPO / 'train.py')!r}, run_name='__main__')\n")
    holder = subprocess.Popen([sys.executable, "-c", boot, *map(str, train_cmd(config, out))], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        before = snapshot(out)
        second = run_script("train.py", *train_cmd(config, out, "--resume_model", "auto"), cwd=tmp_path)
        assert_user_error(second, "in use by another training run", f"pid {holder.pid} on host")
        assert snapshot(out) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the dead holder's lock: the same command continues its run
    resumed = run_script("train.py", *train_cmd(config, out, "--resume_model", "auto"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing run" in resumed.stderr and "iter_2" in resumed.stderr
    assert json.loads((out / "iter_4" / "train_state.json").read_text())["iter"] == 4


KILL_AT_ITER_3 = """
import os, signal
from paddleseg.core.training import loop as t
real = t.step
def step(*a, **k):
    step.n = getattr(step, "n", 0) + 1
    if step.n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
t.step = step
"""


def test_the_same_command_after_a_crash_continues_bit_exact_with_auto(tmp_path, config):
    from paddleseg.checkpoint import safe_load

    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert run_script("train.py", *train_cmd(config, full), cwd=tmp_path).returncode == 0
    command = train_cmd(config, crashed, "--resume_model", "auto")
    killed = run_with_fault(KILL_AT_ITER_3, "train.py", *command, cwd=tmp_path)
    assert killed.returncode == -9 and "starting from scratch" in killed.stderr, killed.stderr[-3000:]
    again = run_script("train.py", *command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing run" in again.stderr and "iter_2" in again.stderr
    a, b = safe_load(full / "iter_4" / "model.pdparams"), safe_load(crashed / "iter_4" / "model.pdparams")
    assert sorted(a) == sorted(b) and all((a[k] == b[k]).all() for k in a)


def test_another_runs_checkpoint_cannot_be_resumed_into_a_folder_owned_by_a_third(tmp_path, config):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert run_script("train.py", *train_cmd(config, out, "--iters", "2"), cwd=tmp_path).returncode == 0
    before = snapshot(second)
    done = run_script("train.py", *train_cmd(config, second, "--resume_model", first / "iter_2"), cwd=tmp_path)
    assert_user_error(done, "belongs to run", "another --save_dir")
    assert snapshot(second) == before
    moved = run_script("train.py", *train_cmd(config, tmp_path / "elsewhere", "--resume_model", first / "iter_2"),
                       cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert json.loads((tmp_path / "elsewhere" / "run.json").read_text())["run_id"] == \
        json.loads((first / "run.json").read_text())["run_id"]


def test_the_default_save_dir_is_per_config(tmp_path, config):
    done = run_script("train.py", "--config", config, "--skip_data_check", "--iters", "2", "--save_interval", "2",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "output" / "cfg" / "iter_2" / "train_state.json").is_file()
