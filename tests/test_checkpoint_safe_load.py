"""The safe loader reads every checkpoint Paddle writes and refuses any pickle that asks for code."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import paddle
import pytest

from paddleseg.checkpoint import UnsafeCheckpointError, load_entire_model, safe_load
from paddleseg.checkpoint.training import optimizer_state, restore_optimizer_state
from paddleseg.errors import CheckpointError
from paddleseg.models import ESPNetV2

from conftest import REPO, fixture_path


class _RunsCode:
    """What an attacker pickles: unpickling it calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_payload(path, marker, wrap=lambda p: {"weight": np.zeros(3, "float32"), "evil": p}):
    with open(path, "wb") as f:
        pickle.dump(wrap(_RunsCode(f"touch {marker}")), f, protocol=4)
    return path


@pytest.mark.parametrize("wrap", [
    lambda p: p,
    lambda p: {"weight": np.zeros(3, "float32"), "evil": p},
    lambda p: OrderedDict(a=[1, (2, {"deep": p})]),
], ids=["top-level", "value", "nested"])
def test_a_pickle_that_runs_code_is_refused_naming_the_global(tmp_path, wrap):
    marker = tmp_path / "pwned"
    path = write_payload(tmp_path / "evil.pdparams", marker, wrap)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pdparams: refused to load: its pickle asks for posix.system"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["builtins.eval", "subprocess.Popen", "paddle.load", "numpy.load"])
def test_other_globals_are_refused_before_import(tmp_path, target):
    module, name = target.rsplit(".", 1)
    path = tmp_path / "x.pdparams"
    # protocol 0 GLOBAL opcode naming the target, then an empty tuple and REDUCE
    path.write_bytes(f"c{module}\n{name}\n(tR.".encode())
    with pytest.raises(UnsafeCheckpointError, match=rf"asks for {module}\.{name}"):
        safe_load(path)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"w": np.array([1, "a"], dtype=object)}, f)
    with pytest.raises(CheckpointError, match="array of Python objects"):
        safe_load(path)


@pytest.mark.parametrize("form", ["paddleseg_scale2", "seed_scale2"])
def test_both_released_formats_load_as_paddle_loads_them(form):
    path = fixture_path("espnetv2", form, "model.pdparams")
    ours, theirs = safe_load(path), paddle.load(str(path))
    assert sorted(ours) == sorted(theirs) and len(ours) == 365
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], np.asarray(value), err_msg=key)


def test_the_training_fixture_and_the_quickstart_model_load():
    after = safe_load(fixture_path("espnetv2", "paddleseg_scale2", "train", "after_5_steps.pdparams"))
    assert len(after) == 365
    model = ESPNetV2(num_classes=19, scale=1.0)
    report = load_entire_model(model, REPO / "output" / "quickstart" / "best_model")
    assert report.complete and len(report.loaded) == len(model.state_dict())


def test_optimizer_and_scheduler_state_round_trip(tmp_path):
    paddle.seed(0)
    model = ESPNetV2(num_classes=19, scale=0.5)
    scheduler = paddle.optimizer.lr.PolynomialDecay(0.01, 10)
    opt = paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters())
    model(paddle.randn([1, 3, 64, 64]))[0].mean().backward()
    opt.step()
    scheduler.step()
    paddle.save(optimizer_state(model, opt), str(tmp_path / "model.pdopt"))
    loaded = safe_load(tmp_path / "model.pdopt")
    assert loaded["LR_Scheduler"] == scheduler.state_dict()
    fresh_scheduler = paddle.optimizer.lr.PolynomialDecay(0.01, 10)
    fresh = paddle.optimizer.Adam(learning_rate=fresh_scheduler, parameters=model.parameters())
    restore_optimizer_state(model, fresh, loaded)
    assert fresh_scheduler.last_epoch == 1
    restored = optimizer_state(model, fresh)
    for key, value in optimizer_state(model, opt).items():
        if key != "LR_Scheduler":
            np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(value))


def test_numpy_1_pickles_and_python_scalars_load(tmp_path):
    """Files written with numpy 1.x name ``numpy.core.multiarray``; numpy scalars and tuples appear in
    scheduler state."""
    path = tmp_path / "old.pdparams"
    data = pickle.dumps({"w": np.arange(4, dtype="float32"), "s": np.float32(2.5), "t": (1, "x", None)}, protocol=2)
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in path.read_bytes()
    loaded = safe_load(path)
    np.testing.assert_array_equal(loaded["w"], np.arange(4, dtype="float32"))
    assert loaded["s"] == np.float32(2.5) and loaded["t"] == (1, "x", None)


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    good = tmp_path / "good.pdparams"
    paddle.save({"w": paddle.ones([64, 64])}, str(good))
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.pdparams: cannot be read as a Paddle checkpoint"):
        safe_load(truncated)
    text = tmp_path / "text.pdparams"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="text.pdparams: cannot be read as a Paddle checkpoint"):
        safe_load(text)
