import errno
import json

import numpy as np
import paddle
import pytest

from paddleseg.checkpoint import TrainState
from paddleseg.checkpoint import training as checkpoints
from paddleseg.errors import CheckpointError
from paddleseg.models import ESPNetV2

RUN = "20261123-120000-0123abcd"


@pytest.fixture
def trained(tmp_path):
    paddle.seed(0)
    model = ESPNetV2(num_classes=19, scale=0.5)
    opt = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.PolynomialDecay(0.01, 10), parameters=model.parameters())
    model(paddle.randn([1, 3, 64, 64]))[0].mean().backward()
    opt.step()
    opt.clear_grad()
    return model, opt


def test_save_and_load_round_trip_with_state(tmp_path, trained):
    model, opt = trained
    path = checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=7, seed=3, best_miou=0.5, best_iter=5))
    assert path == tmp_path / "iter_7"
    assert sorted(p.name for p in path.iterdir()) == ["model.pdopt", "model.pdparams", "train_state.json"]
    fresh = ESPNetV2(num_classes=19, scale=0.5)
    fresh_opt = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.PolynomialDecay(0.01, 10),
                                      parameters=fresh.parameters())
    state = checkpoints.load_checkpoint(path, fresh, fresh_opt)
    assert (state.iter, state.seed, state.best_miou, state.best_iter) == (7, 3, 0.5, 5)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), fresh.state_dict()[k].numpy(), err_msg=k)


def test_a_save_interrupted_by_an_exception_leaves_the_previous_checkpoint_and_no_partial(tmp_path, trained,
                                                                                         monkeypatch):
    model, opt = trained
    checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=1, seed=0, run_id=RUN))
    calls = []

    def failing_save(obj, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:  # the model file is written, the optimizer file fails
            raise KeyboardInterrupt
        return real_save(obj, path, *a, **k)

    real_save = paddle.save
    monkeypatch.setattr(paddle, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=2, seed=0, run_id=RUN))
    monkeypatch.setattr(paddle, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1"]
    assert checkpoints.read_train_state(tmp_path / "iter_1").iter == 1
    assert checkpoints.latest_valid(tmp_path, RUN) == tmp_path / "iter_1"


def test_a_full_disk_is_a_clear_error_and_keeps_older_checkpoints(tmp_path, trained, monkeypatch):
    model, opt = trained
    checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=1, seed=0, run_id=RUN))

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paddle, "save", no_space)
    with pytest.raises(CheckpointError, match=r"iter_2: cannot write the checkpoint \(No space left on device\); "
                                              r"the checkpoints already in .* are intact"):
        checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=2, seed=0, run_id=RUN))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1"]


def test_truncated_corrupt_and_incomplete_checkpoints_are_named(tmp_path, trained):
    model, opt = trained
    path = checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=3, seed=0, run_id=RUN))
    weights = path / "model.pdparams"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model.pdparams: corrupt or truncated"):
        checkpoints.read_train_state(path)
    (path / "train_state.json").unlink()
    with pytest.raises(CheckpointError, match=r"iter_3: not a complete training checkpoint"):
        checkpoints.read_train_state(path)
    with pytest.raises(CheckpointError, match=r"iter_9: checkpoint not found"):
        checkpoints.read_train_state(tmp_path / "iter_9")
    assert checkpoints.latest_valid(tmp_path, RUN) is None


def test_prune_keeps_the_newest(tmp_path, trained):
    model, opt = trained
    for i in (2, 4, 6, 8):
        checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=i, seed=0, run_id=RUN))
    removed = checkpoints.prune(tmp_path, keep=2, run_id=RUN)
    assert [p.name for p in removed] == ["iter_2", "iter_4"]
    assert [p.name for p in checkpoints.checkpoint_folders(tmp_path)] == ["iter_6", "iter_8"]
    assert checkpoints.prune(tmp_path, keep=0, run_id=RUN) == []


def test_best_model_has_its_score_beside_it_and_an_interrupted_replace_is_restored(tmp_path, trained):
    model, _ = trained
    best = checkpoints.save_best(tmp_path, model, 0.42, 10, run_id=RUN)
    assert json.loads((best / "score.json").read_text())["miou"] == 0.42
    # a kill between the two renames of a replacement leaves only the hidden old copy
    best.rename(tmp_path / f".best_model.old-{RUN}-123")
    (tmp_path / f".iter_5.partial-{RUN}-123").mkdir()
    checkpoints.remove_partials(tmp_path, RUN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model"]
    assert json.loads((tmp_path / "best_model" / "score.json").read_text())["iter"] == 10


def test_prune_cleanup_and_best_model_touch_only_this_runs_folders(tmp_path, trained):
    """A user's iter_7/, another run's checkpoints and best_model, and hidden folders that merely look
    like interrupted saves are never deleted, renamed or replaced."""
    model, opt = trained
    other = "20260101-000000-ffffffff"
    (tmp_path / "iter_7").mkdir()
    (tmp_path / "iter_7" / "notes.txt").write_text("mine")
    checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=1, seed=0, run_id=other))
    for i in (2, 4, 6):
        checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=i, seed=0, run_id=RUN))
    for name in (".thesis.partial-draft", ".photos.old-2019", f".iter_3.partial-{other}-1", ".iter_9.partial-77"):
        (tmp_path / name).mkdir()
    assert [p.name for p in checkpoints.prune(tmp_path, keep=1, run_id=RUN)] == ["iter_2", "iter_4"]
    assert checkpoints.remove_partials(tmp_path, RUN) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".iter_3.partial-20260101-000000-ffffffff-1", ".iter_9.partial-77", ".photos.old-2019",
        ".thesis.partial-draft", "iter_1", "iter_6", "iter_7"]
    assert (tmp_path / "iter_7" / "notes.txt").read_text() == "mine"
    checkpoints.save_best(tmp_path, model, 0.99, 1, run_id=other)
    with pytest.raises(CheckpointError, match=r"best_model: exists and was not written by this run"):
        checkpoints.save_best(tmp_path, model, 0.002, 6, run_id=RUN)
    assert json.loads((tmp_path / "best_model" / "score.json").read_text())["miou"] == 0.99
    assert checkpoints.owner(tmp_path / "iter_6") == RUN and checkpoints.owner(tmp_path / "iter_7") is None


@pytest.mark.parametrize("field, value, message", [
    ("iter", "4", "'iter' must be an integer >= 0"),
    ("iter", -1, "'iter' must be an integer >= 0"),
    ("seed", 1.5, "'seed' must be an integer"),
    ("best_miou", "high", "'best_miou' must be a finite number"),
    ("files", ["model.pdparams"], "'files' must be an object"),
    ("world_size", 0, "'world_size' must be an integer >= 1"),
    ("surprise", 1, "unknown field"),
])
def test_wrong_field_types_in_train_state_are_named(tmp_path, trained, field, value, message):
    model, opt = trained
    path = checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=3, seed=0, run_id=RUN))
    state_file = path / "train_state.json"
    raw = json.loads(state_file.read_text())
    raw[field] = value
    state_file.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=rf"train_state.json: .*{message}"):
        checkpoints.read_train_state(path)


class _FakeScaler:
    """GradScaler's state only exists on GPU builds; this stands in with the same two methods."""

    def __init__(self, scale):
        self.state = {"scale": np.array([scale], dtype="float32"), "incr_count": 7, "decr_count": 0}

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = dict(state)


def test_the_fp16_loss_scaler_round_trips_through_the_checkpoint(tmp_path, trained, caplog):
    model, opt = trained
    path = checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=3, seed=0, run_id=RUN),
                                       _FakeScaler(4096.0))
    restored = _FakeScaler(1.0)
    checkpoints.load_checkpoint(path, model, opt, restored)
    assert float(restored.state["scale"][0]) == 4096.0 and restored.state["incr_count"] == 7
    plain = checkpoints.save_checkpoint(tmp_path, model, opt, TrainState(iter=4, seed=0, run_id=RUN))
    fresh = _FakeScaler(1.0)
    checkpoints.load_checkpoint(plain, model, opt, fresh)
    assert float(fresh.state["scale"][0]) == 1.0 and "holds no loss-scaler state" in caplog.text
