"""A checkpoint whose pickle runs code: every script that loads weights or optimizer state refuses it
(exit 2, naming the file and the refused global) and the code never runs."""
import hashlib
import json
import os
import pickle

import numpy as np
import pytest

from conftest import fixture_path, write_train_config
from fault_helpers import assert_user_error, run_script, snapshot, train_args

pytestmark = pytest.mark.slow


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def evil_weights(path, marker):
    """A copy of the released fixture checkpoint with one extra entry that runs ``touch marker``."""
    state = {k: np.asarray(v) for k, v in _plain_fixture().items()}
    state["evil"] = _Payload(marker)
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=4)
    return path


def _plain_fixture():
    from paddleseg.checkpoint import safe_load

    return safe_load(fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams"))


@pytest.fixture
def scale2_config(tmp_path, tiny_cityscapes):
    return write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=2, model={
        "type": "ESPNetV2", "scale": 2.0, "num_classes": 19, "drop_prob": 0.0})


@pytest.mark.parametrize("name, extra", [
    ("val.py", ["--model_path", "EVIL"]),
    ("export.py", ["--model_path", "EVIL", "--save_dir", "OUT"]),
    ("predict.py", ["--model_path", "EVIL", "--image_path", "IMAGE", "--save_dir", "OUT"]),
    ("train.py", ["--finetune_from", "EVIL", "--save_dir", "OUT", "--skip_data_check"]),
])
def test_every_script_refuses_a_code_running_checkpoint(tmp_path, scale2_config, tiny_cityscapes, name, extra):
    marker = tmp_path / "pwned"
    evil = evil_weights(tmp_path / "evil.pdparams", marker)
    image = next((tiny_cityscapes / "leftImg8bit" / "val").rglob("*.png"))
    values = {"EVIL": str(evil), "OUT": str(tmp_path / "out"), "IMAGE": str(image)}
    done = run_script(name, "--config", scale2_config, *[values.get(e, e) for e in extra], cwd=tmp_path, timeout=300)
    assert_user_error(done, "evil.pdparams: refused to load", "posix.system")
    assert not marker.exists()


def test_resume_refuses_a_code_running_optimizer_state_with_matching_digests(tmp_path, tiny_cityscapes):
    """Digests do not help against an attacker who writes matching ones: the loader itself refuses."""
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=2)
    out = tmp_path / "run"
    first = run_script("train.py", *train_args(config, out, "--save_interval", "2", "--skip_data_check"),
                       cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = out / "iter_2"
    marker = tmp_path / "pwned"
    with open(checkpoint / "model.pdopt", "wb") as f:
        pickle.dump({"LR_Scheduler": {"last_epoch": 2}, "x": _Payload(marker)}, f)
    state = json.loads((checkpoint / "train_state.json").read_text())
    state["files"]["model.pdopt"] = hashlib.sha256((checkpoint / "model.pdopt").read_bytes()).hexdigest()
    (checkpoint / "train_state.json").write_text(json.dumps(state))
    before = snapshot(out)
    done = run_script("train.py", *train_args(config, out, "--resume_model", checkpoint, "--iters", "4",
                                              "--skip_data_check"), cwd=tmp_path, timeout=300)
    assert_user_error(done, "model.pdopt: refused to load", "posix.system")
    assert not marker.exists()
    # the checkpoints are untouched; the run's own log and run record (its holder's pid) are updated
    assert {k: v for k, v in snapshot(out).items() if k not in ("train.log", "run.json")} == \
        {k: v for k, v in before.items() if k not in ("train.log", "run.json")}
