"""Hand-edited or hostile files of a save folder: ``run.json`` with a run id that would become a path, or
that is a FIFO or a link to ``/dev/zero``; a ``train_state.json`` claiming iteration 10^12; this run's
checkpoints that no longer verify. Each is named at start (nothing trained, nothing written), or, for the
invalid checkpoints, kept aside instead of being written over."""
import json
import os
import shutil
from pathlib import Path

import pytest

from paddleseg.checkpoint import training as checkpoints
from paddleseg.checkpoint.run_dir import RunRecord, SaveDirError
from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config
from paddleseg.errors import CheckpointError

from conftest import write_train_config
from fault_helpers import assert_user_error, memory_limit, run_with_fault, snapshot, train_args


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_cityscapes):
    """(config, a run of 4 iterations with iter_2 and iter_4)."""
    root = tmp_path_factory.mktemp("resume_files")
    config = write_train_config(root / "cfg.yml", tiny_cityscapes, iters=4)
    train(Config(config), TrainOptions(save_dir=root / "run", save_interval=2, log_iters=1, check_data=False))
    return config, root / "run"


def copy_run(finished, tmp_path):
    config, source = finished
    save_dir = tmp_path / "run"
    shutil.copytree(source, save_dir)
    return config, save_dir


def resume(config, save_dir, resume_model="auto", iters=6):
    cfg = Config(config, iters=iters)
    return train(cfg, TrainOptions(save_dir=save_dir, save_interval=2, log_iters=1, check_data=False,
                                   resume_model=Path(resume_model)))


@pytest.mark.parametrize("run_id", ["../../elsewhere/x", "a/b", "UPPER", ""])
def test_a_run_id_that_train_py_does_not_write_is_refused_at_start(tmp_path, finished, run_id):
    config, save_dir = copy_run(finished, tmp_path)
    record = json.loads((save_dir / "run.json").read_text())
    (save_dir / "run.json").write_text(json.dumps(dict(record, run_id=run_id)))
    before = snapshot(save_dir)
    with pytest.raises(SaveDirError, match=rf"{save_dir / 'run.json'}: (the run id .* is not one train.py writes|"
                                           rf"the run record has no run id)"):
        resume(config, save_dir)
    assert snapshot(save_dir) == before


def test_a_run_id_with_a_slash_in_a_checkpoint_is_named(tmp_path, finished):
    _, save_dir = copy_run(finished, tmp_path)
    state_file = save_dir / "iter_2" / "train_state.json"
    state_file.write_text(json.dumps(dict(json.loads(state_file.read_text()), run_id="x/../../y")))
    with pytest.raises(CheckpointError, match=rf"{state_file}: the field 'run_id' must be a run id"):
        checkpoints.read_train_state(save_dir / "iter_2")


@pytest.mark.parametrize("planned", [4, 10 ** 12])
def test_an_iteration_beyond_the_run_is_an_error_naming_the_file(tmp_path, finished, planned):
    """iter 10^12 was reported as a finished run. Against the file's own planned length (4) it is
    inconsistent; with that edited too, it is beyond this run's --iters."""
    config, save_dir = copy_run(finished, tmp_path)
    state_file = save_dir / "iter_4" / "train_state.json"
    state_file.write_text(json.dumps(dict(json.loads(state_file.read_text()), iter=10 ** 12, iters=planned)))
    before = snapshot(save_dir)
    expected = ("the field 'iter' \\(1000000000000\\) is beyond the run's planned length" if planned == 4 else
                "iteration 1000000000000 is beyond this run's 6 iterations \\(--iters\\)")
    with pytest.raises(CheckpointError, match=rf"{state_file}: {expected}"):
        resume(config, tmp_path / "elsewhere", resume_model=save_dir / "iter_4")
    assert snapshot(save_dir) == before and not (tmp_path / "elsewhere").exists()


def test_auto_resume_keeps_this_runs_invalid_checkpoints_aside_instead_of_writing_over_them(tmp_path, finished,
                                                                                            caplog):
    config, save_dir = copy_run(finished, tmp_path)
    weights = save_dir / "iter_4" / "model.pdparams"
    damaged = weights.read_bytes()[:1000]
    weights.write_bytes(damaged)
    state = resume(config, save_dir)  # continues from iter_2, writes iter_4 again
    assert state.iter == 6
    (kept,) = save_dir.glob("iter_4.invalid-*")
    assert (kept / "model.pdparams").read_bytes() == damaged
    assert checkpoints.read_train_state(save_dir / "iter_4").iter == 4  # the new one, complete
    assert "does not verify and this run would write it again: kept as iter_4.invalid-" in caplog.text
    assert [p.name for p in checkpoints.checkpoint_folders(save_dir)] == ["iter_2", "iter_4", "iter_6"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_a_run_json_that_is_not_a_regular_file_is_refused_without_waiting_or_reading(tmp_path, finished, kind):
    """A FIFO hung --resume_model auto, a link to /dev/zero read 7 GB: now one error line, at once, under
    an address-space cap of the size after importing Paddle plus 1 GB."""
    config, save_dir = copy_run(finished, tmp_path)
    run_json = save_dir / "run.json"
    run_json.unlink()
    if kind == "fifo":
        os.mkfifo(run_json)
    else:
        run_json.symlink_to("/dev/zero")
    before = snapshot(save_dir / "iter_4")  # not the whole folder: reading the FIFO would wait
    done = run_with_fault(memory_limit("paddle"), "train.py",
                          *train_args(config, save_dir, "--resume_model", "auto", "--skip_data_check"),
                          cwd=tmp_path, timeout=55)
    assert_user_error(done, f"{run_json}: unreadable run record",
                      "a FIFO (named pipe)" if kind == "fifo" else "a character device")
    assert snapshot(save_dir / "iter_4") == before
    assert not (save_dir / "train.log").read_text().count("resumed from")  # nothing trained


def test_the_run_record_reads_only_a_small_regular_file(tmp_path):
    os.mkfifo(tmp_path / "run.json")
    with pytest.raises(SaveDirError, match="a FIFO"):
        RunRecord.read(tmp_path)
    (tmp_path / "run.json").unlink()
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "20261123-153000-1a2b3c4d", "pad": "x" * (2 << 20)}))
    with pytest.raises(SaveDirError, match="more than the 1048576 bytes"):
        RunRecord.read(tmp_path)
