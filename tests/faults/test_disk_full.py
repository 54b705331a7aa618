"""A full disk during a save, and an unwritable save_dir: a clear error (exit 2), older checkpoints intact."""
import json

import pytest

from paddleseg.checkpoint import training as checkpoints

from conftest import write_train_config
from fault_helpers import assert_user_error, hidden, run_script, run_with_fault, train_args

ENOSPC_HOOK = """
import errno
from pathlib import Path
import paddle
real_save = paddle.save
FAILING = {failing!r}

def save(obj, path, *a, **k):
    if '.' + FAILING + '.partial-' in str(path) and (FAILING != 'best_model' or any(Path(path).parents[1].glob('iter_2'))):
        raise OSError(errno.ENOSPC, 'No space left on device')
    return real_save(obj, path, *a, **k)

paddle.save = save
if FAILING == 'best_model':   # every evaluation a new best, so the second one writes best_model again
    from paddleseg.utils import metrics
    scores = iter(range(1, 100))
    metrics.ConfusionMatrix.miou = lambda self: next(scores) / 100
"""


@pytest.mark.slow
@pytest.mark.parametrize("failing", ["iter_4", "best_model"])
def test_a_full_disk_mid_training_is_a_clear_error_and_keeps_older_checkpoints(tmp_path, tiny_cityscapes, failing):
    out = tmp_path / "out"
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_with_fault(ENOSPC_HOOK.format(failing=failing), "train.py",
                          *train_args(config, out, "--save_interval", "2", "--skip_data_check", "--do_eval"),
                          cwd=tmp_path)
    assert_user_error(done, f"error: {out / failing}: cannot write the checkpoint (No space left on device); the "
                            f"checkpoints already in {out} are intact")
    assert [p.name for p in checkpoints.checkpoint_folders(out)] == ["iter_2"]
    assert checkpoints.read_train_state(out / "iter_2").iter == 2
    assert hidden(out) == []
    if failing == "best_model":  # the older best_model is intact too
        assert json.loads((out / "best_model" / "score.json").read_text())["iter"] == 2


@pytest.mark.slow
def test_an_unwritable_save_dir_fails_before_training(tmp_path, tiny_cityscapes):
    # root ignores permissions: a save_dir below a regular file cannot be created by anyone
    (tmp_path / "a_file").write_text("")
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("train.py", *train_args(config, tmp_path / "a_file" / "out"), cwd=tmp_path)
    assert_user_error(done, f"{tmp_path / 'a_file' / 'out'}: the save directory is not writable (Not a directory)")
