"""paddleseg.core.train_history: the logged values behind training_curves.png, rewritten at every
checkpoint, and continued (not duplicated, not lost) by a resumed run."""
import json
from pathlib import Path

import numpy as np
import pytest

from paddleseg.core.train_history import CURVES_FILE, HISTORY_FILE, TrainHistory
from paddleseg.core.training import loop as train_module  # where the loop looks up `step`
from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config

from conftest import write_train_config


def run(tmp_path, root, name, **options):
    cfg = Config(write_train_config(tmp_path / f"{name}.yml", root))
    options = {"save_interval": 3, "log_iters": 1, "do_eval": True, **options}
    return train(cfg, TrainOptions(save_dir=tmp_path / name, **options))


def history(folder):
    return json.loads((folder / HISTORY_FILE).read_text())


def test_resume_keeps_only_this_runs_history_up_to_its_checkpoint(tmp_path):
    written = TrainHistory("run-a")
    for i in range(1, 7):
        written.add_train(i, lr=0.1 * i, losses={"loss_main": float(i)})
    written.add_eval(3, miou=0.3, acc=0.5)
    written.add_eval(6, miou=0.6, acc=0.7)
    curves = written.write(tmp_path)
    assert curves == tmp_path / CURVES_FILE and curves.stat().st_size > 10_000

    resumed = TrainHistory.resume(tmp_path, "run-a", 4)  # continuing from iter_4: 5 and 6 are trained again
    assert [row["iter"] for row in resumed.train] == [1, 2, 3, 4] and resumed.eval == [written.eval[0]]
    assert resumed.train[3] == {"iter": 4, "lr": pytest.approx(0.4), "loss_main": 4.0}
    assert TrainHistory.resume(tmp_path, "run-b", 4).train == []  # another run's history is not continued
    assert TrainHistory.resume(tmp_path / "new", "run-a", 0).train == []
    (tmp_path / HISTORY_FILE).write_text("{not json")
    assert TrainHistory.resume(tmp_path, "run-a", 4).train == []


@pytest.mark.slow
def test_curves_are_redrawn_at_every_checkpoint_and_a_resume_continues_them(tmp_path, tiny_cityscapes, monkeypatch):
    """Interrupted at iteration 5 (the checkpoint of iteration 4 is written with the history), then
    resumed: the history holds every iteration once, equal to an uninterrupted run's (resuming is
    bit-exact; 1e-6 allows for a change in the reduction order of CPU kernels)."""
    run(tmp_path, tiny_cityscapes, "full")
    pictures = []
    real_write = TrainHistory.write

    def recording_write(self, save_dir):
        path = real_write(self, save_dir)
        pictures.append(path.read_bytes())
        return path

    monkeypatch.setattr(TrainHistory, "write", recording_write)
    real_step, calls = train_module.step, []

    def interrupting_step(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(train_module, "step", interrupting_step)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_cityscapes, "resumed")
    interrupted = history(tmp_path / "resumed")
    assert [row["iter"] for row in interrupted["train"]] == [1, 2, 3, 4]
    assert [row["iter"] for row in interrupted["eval"]] == [3]
    monkeypatch.setattr(train_module, "step", real_step)
    run(tmp_path, tiny_cityscapes, "resumed", resume_model=Path("auto"))  # continues from iter_4

    assert len(pictures) == 3  # at the evaluation of 3, at the interruption, at the evaluation of 6
    assert pictures[0] != pictures[1] != pictures[2]
    assert (tmp_path / "resumed" / CURVES_FILE).read_bytes() == pictures[-1]
    full, resumed = history(tmp_path / "full"), history(tmp_path / "resumed")
    assert [row["iter"] for row in resumed["train"]] == [1, 2, 3, 4, 5, 6]
    assert [row["iter"] for row in resumed["eval"]] == [3, 6]
    for ours, theirs in zip(resumed["train"] + resumed["eval"], full["train"] + full["eval"]):
        assert ours.keys() == theirs.keys()
        np.testing.assert_allclose([ours[k] for k in ours], [theirs[k] for k in ours], rtol=1e-6, atol=0)
    assert set(resumed["train"][0]) == {"iter", "lr", "loss_main", "loss_aux1"}
