"""paddleseg.core.training.loop: the companions' fixed points, in order, and what they are handed."""
import pytest

from paddleseg.core.training import loop
from paddleseg.core.training.companion import Companion
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config

from conftest import write_train_config


class Recorder(Companion):
    """A feature added as the brief says: a class, and a line in loop.COMPANIONS."""

    events = []
    stop_after = None

    def start(self, t):
        self.events.append(("start", t.state.iter))
        return False

    def after_step(self, t, step):
        self.events.append(("after_step", step.iteration, step.averages is not None, sorted(step.losses)))
        return step.iteration == self.stop_after

    def at_checkpoint(self, t, point):
        self.events.append(("at_checkpoint", point.iteration, point.scheduled, point.path is not None))
        return False

    def on_interrupt(self, t, point):
        self.events.append(("on_interrupt", point.iteration, point.path is not None))

    def at_end(self, t):
        self.events.append(("at_end",))


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setattr(loop, "COMPANIONS", loop.COMPANIONS + (Recorder,))
    Recorder.events, Recorder.stop_after = [], None
    return Recorder


def run(tmp_path, root, **options):
    cfg = Config(write_train_config(tmp_path / "cfg.yml", root, iters=3))
    return loop.train(cfg, TrainOptions(save_dir=tmp_path / "out", save_interval=2, log_iters=2, check_data=False,
                                        **options))


def test_the_companions_are_called_at_fixed_points_after_the_checkpoint_companion(tmp_path, tiny_cityscapes, recorder):
    run(tmp_path, tiny_cityscapes)
    terms = ["loss_aux1", "loss_main"]
    assert recorder.events == [("start", 0), ("after_step", 1, False, terms), ("after_step", 2, True, terms),
                               ("at_checkpoint", 2, True, True), ("after_step", 3, True, terms),
                               ("at_checkpoint", 3, True, True), ("at_end",)]


def test_a_companion_that_ends_the_run_gets_it_checkpointed_unscheduled(tmp_path, tiny_cityscapes, recorder):
    recorder.stop_after = 1
    state = run(tmp_path, tiny_cityscapes)
    assert state.iter == 1 and (tmp_path / "out" / "iter_1").is_dir()
    assert recorder.events[-2:] == [("at_checkpoint", 1, False, True), ("at_end",)]


def test_an_interruption_reaches_every_companion_after_the_last_complete_iteration(tmp_path, tiny_cityscapes,
                                                                                   recorder, monkeypatch):
    real_step, calls = loop.step, []

    def interrupted_at_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(loop, "step", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_cityscapes)
    assert recorder.events[-2:] == [("on_interrupt", 2, True), ("at_end",)]
