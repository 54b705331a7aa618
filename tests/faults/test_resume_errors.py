"""--resume_model at a missing, truncated, corrupt or incomplete checkpoint: a clear error naming the
file and what is wrong, exit 2, and nothing in save_dir modified."""
import shutil

import pytest

from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, snapshot, train_args


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_cityscapes):
    """A finished 2-iteration run with iter_2."""
    root = tmp_path_factory.mktemp("resume_errors")
    config = write_train_config(root / "cfg.yml", tiny_cityscapes, iters=2)
    train(Config(config), TrainOptions(save_dir=root / "run", save_interval=2, log_iters=1, check_data=False))
    return config, root / "run"


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


BREAKAGES = {
    "missing": (lambda ck: shutil.rmtree(ck), "checkpoint not found", ""),
    "truncated": (lambda ck: (ck / "model.pdparams").write_bytes((ck / "model.pdparams").read_bytes()[:500]),
                  "corrupt or truncated", "model.pdparams"),
    "corrupt": (lambda ck: flip_byte(ck / "model.pdopt", 300), "corrupt or truncated", "model.pdopt"),
    "no_state": (lambda ck: (ck / "train_state.json").unlink(), "not a complete training checkpoint", ""),
    "garbled_state": (lambda ck: (ck / "train_state.json").write_text("{\"iter\": 2,"), "unreadable training state",
                      "train_state.json"),
}


@pytest.mark.slow
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_bad_resume_checkpoint_is_named_and_nothing_is_written(tmp_path, run_dir, breakage):
    config, source = run_dir
    save_dir = tmp_path / "run"
    shutil.copytree(source, save_dir)
    break_it, what, file = BREAKAGES[breakage]
    checkpoint = save_dir / "iter_2"
    break_it(checkpoint)
    before = snapshot(save_dir)
    done = run_script("train.py", *train_args(config, save_dir, "--resume_model", str(checkpoint), "--iters", "4"),
                      cwd=tmp_path)
    error = assert_user_error(done, what)
    assert str(checkpoint / file).rstrip("/") in error
    assert snapshot(save_dir) == before  # no log, no checkpoint, no cleanup
