"""SIGKILL of train.py at several points of a checkpoint save: the previous complete checkpoint loads,
no partial folder is taken for valid, and --resume_model of the latest valid one finishes the run."""
import json
import re

import pytest

from paddleseg.checkpoint import training as checkpoints
from paddleseg.cvlibs import Config

from conftest import write_train_config
from fault_helpers import hidden, run_script, run_with_fault, train_args

pytestmark = pytest.mark.slow

# Each hook kills the process (SIGKILL: no handler, no cleanup) during the save of iter_4 (or of the
# second best_model), at one point of checkpoints._write_folder / _publish.
HOOK = """
import os, signal
from pathlib import Path
import paddle
from paddleseg.checkpoint import training as checkpoints

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def target(path):
    return '.iter_4.partial-' in str(path)

POINT = {point!r}
real_save, real_json, real_rename = paddle.save, checkpoints._write_json, os.rename

def save(obj, path, *a, **k):
    real_save(obj, path, *a, **k)
    if target(path) and path.endswith(POINT):          # after model.pdparams / model.pdopt is on disk
        die()

def write_json(path, data):
    if target(path) and POINT == 'before_state':
        die()
    real_json(path, data)

def rename(src, dst, *a, **k):
    if target(src) and POINT == 'before_rename':
        die()
    replacing = '.best_model.partial-' in str(src) and any(Path(src).parent.glob('.best_model.old-*'))
    if replacing and POINT == 'best_between_renames':
        die()                                          # the old best_model is already moved aside
    real_rename(src, dst, *a, **k)
    if target(src) and POINT == 'after_rename':
        die()

paddle.save, checkpoints._write_json, os.rename = save, write_json, rename
if POINT == 'best_between_renames':   # make every evaluation a new best, so iter_4 replaces best_model
    from paddleseg.utils import metrics
    scores = iter(range(1, 100))
    metrics.ConfusionMatrix.miou = lambda self: next(scores) / 100
"""

POINTS = {  # point -> is iter_4 complete after the kill
    "model.pdparams": False,
    "model.pdopt": False,
    "before_state": False,
    "before_rename": False,
    "after_rename": True,
}


def verify_and_load(config, folder):
    """The checkpoint verifies (SHA-256) and loads into a fresh model and optimizer."""
    cfg = Config(config)
    model = cfg.model
    return checkpoints.load_checkpoint(folder, model, cfg.optimizer)


@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_during_a_save_keeps_the_previous_checkpoint(tmp_path, tiny_cityscapes, point):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    out = tmp_path / "out"
    done = run_with_fault(HOOK.format(point=point), "train.py",
                          *train_args(config, out, "--save_interval", "2", "--skip_data_check"), cwd=tmp_path)
    assert done.returncode == -9, done.stderr[-3000:]
    assert verify_and_load(config, out / "iter_2").iter == 2
    complete = POINTS[point]
    names = sorted(p.name for p in checkpoints.checkpoint_folders(out))
    assert names == (["iter_2", "iter_4"] if complete else ["iter_2"])
    latest = checkpoints.latest_valid(out, json.loads((out / "run.json").read_text())["run_id"])
    assert latest == out / ("iter_4" if complete else "iter_2")
    if complete:
        assert verify_and_load(config, latest).iter == 4
        assert hidden(out) == []
    else:
        assert len(hidden(out)) == 1 and hidden(out)[0].startswith(".iter_4.partial-")
    if point in ("model.pdopt", "after_rename"):  # the resume of the latest valid checkpoint finishes the run
        resumed = run_script("train.py", *train_args(config, out, "--save_interval", "2", "--skip_data_check",
                                                     "--resume_model", str(latest)), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert json.loads((out / "iter_6" / "train_state.json").read_text())["iter"] == 6
        assert hidden(out) == []
        if not complete:
            assert re.search(r"removed .*\.iter_4\.partial-[0-9a-f-]+-\d+, left by an interrupted save", resumed.stderr)


def test_sigkill_between_the_renames_of_a_best_model_replacement_restores_it(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    out = tmp_path / "out"
    done = run_with_fault(HOOK.format(point="best_between_renames"), "train.py",
                          *train_args(config, out, "--save_interval", "2", "--do_eval", "--skip_data_check"),
                          cwd=tmp_path)
    assert done.returncode == -9, done.stderr[-3000:]
    assert not (out / "best_model").exists()  # killed after moving the old best aside
    assert [h.split(".old-")[0] for h in hidden(out) if ".old-" in h] == [".best_model"]
    assert json.loads(next(out.glob(".best_model.old-*/score.json")).read_text())["iter"] == 2
    assert checkpoints.latest_valid(out, json.loads((out / "run.json").read_text())["run_id"]) == out / "iter_2"  # best_model is replaced before iter_4 is saved
    resumed = run_script("train.py", *train_args(config, out, "--save_interval", "2", "--do_eval",
                                                 "--skip_data_check", "--resume_model", str(out / "iter_2")),
                         cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"restored .*best_model from an interrupted save", resumed.stderr)
    assert hidden(out) == []
    assert json.loads((out / "best_model" / "score.json").read_text())["iter"] in (2, 4, 6)
    assert (out / "best_model" / "model.pdparams").is_file()
