"""Ctrl-C (a real SIGINT) during training: a final checkpoint at the current iteration is written
atomically, exit 130; a model whose weights are NaN is not saved."""
import json
import re
import signal
import subprocess
import time

import paddle
import pytest

from paddleseg.checkpoint import training as checkpoints
from paddleseg.core.training import loop as train_module  # where the loop looks up `step`
from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config

from conftest import REPO, write_train_config
from fault_helpers import PYTHON, hidden, train_args


@pytest.mark.slow
def test_sigint_writes_a_final_checkpoint_at_the_current_iteration(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=500)
    out = tmp_path / "out"
    # Ctrl-C's default action even when the tests run in a background job (nohup, `&`), whose SIGINT
    # is ignored and would be inherited
    proc = subprocess.Popen([PYTHON, str(REPO / "train.py"), *train_args(config, out, "--skip_data_check")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait until it has trained a few iterations
            log = (out / "train.log").read_text() if (out / "train.log").exists() else ""
            if "[TRAIN] iter 3/500" in log:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training did not reach iteration 3")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert stderr.rstrip().endswith("interrupted")
    match = re.search(r"interrupted: saved (\S+) at iteration (\d+); continue with --resume_model", stderr)
    assert match, stderr[-3000:]
    iteration = int(match.group(2))
    assert iteration >= 3 and match.group(1) == str(out / f"iter_{iteration}")
    assert checkpoints.read_train_state(out / f"iter_{iteration}").iter == iteration  # complete and verified
    assert hidden(out) == []
    assert json.loads((out / f"iter_{iteration}" / "train_state.json").read_text())["iter"] == iteration


def test_ctrl_c_with_nan_weights_saves_no_checkpoint(tmp_path, tiny_cityscapes, monkeypatch):
    real_step = train_module.step
    calls = []

    def poisoning_step(model, *args):
        calls.append(1)
        if len(calls) == 2:
            real_step(model, *args)
            weight = model.parameters()[0]
            weight.set_value(paddle.full(weight.shape, float("nan"), weight.dtype))
            raise KeyboardInterrupt  # Ctrl-C right after an update that left NaN weights
        return real_step(model, *args)

    monkeypatch.setattr(train_module, "step", poisoning_step)
    with pytest.raises(KeyboardInterrupt):
        train(Config(write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)),
              TrainOptions(save_dir=tmp_path / "out", save_interval=100, log_iters=1, check_data=False))
    assert len(calls) == 2
    assert list((tmp_path / "out").glob("iter_*")) == [] and hidden(tmp_path / "out") == []
