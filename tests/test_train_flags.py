"""PaddleSeg 2.8's training flags: --use_ema, --early_stop_intervals, --amp_level, --to_static_training,
--profiler_options (paddleseg/core/ema.py, profiling.py, static_training.py and their use in core/training/)."""
import json
import re

import numpy as np
import paddle
import pytest

from paddleseg.checkpoint.safe_load import safe_load
from paddleseg.checkpoint.training import EMA_KEY
from paddleseg.core.ema import ModelEMA
from paddleseg.core.profiling import ProfilerOptions, parse_profiler_options
from paddleseg.core.training import loop as train_module  # where the loop looks up `step`
from paddleseg.errors import UserError

from test_train import params, run


def ema_weights(path):
    return {k: np.asarray(v) for k, v in safe_load(path / "model.pdopt")[EMA_KEY].items()}


# ------------------------------------------------------------------------------------------------
# --use_ema
# ------------------------------------------------------------------------------------------------
def test_the_average_follows_upstreams_formula_with_warm_up_over_all_floating_state():
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(3, 2), paddle.nn.BatchNorm1D(2))
    ema = ModelEMA(model)
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    expected = dict(start)
    for t in (1, 2, 500):
        with paddle.no_grad():
            for v in model.state_dict().values():  # weights and BatchNorm statistics both move
                v.set_value(v + 1.0)
        d = min(0.99, (1 + t) / (10 + t))
        now = {k: v.numpy() for k, v in model.state_dict().items()}
        expected = {k: d * expected[k] + (1 - d) * now[k] for k in now}
        ema.update(model, t)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(10_000) == 0.99
    got = ema.state_dict()
    assert "1._mean" in got and "1._variance" in got
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, err_msg=k)
    assert all(p.stop_gradient for p in ema.model.parameters()) and not ema.model.training


@pytest.mark.slow
def test_resume_with_ema_continues_bit_exact_ema_included_and_best_model_is_the_average(tmp_path, tiny_cityscapes):
    """3 + resumed 3 with --use_ema equals 6 uninterrupted, weights and average; tolerance as in
    tests/test_train.py::test_resume_continues_bit_exact (observed 0.0)."""
    run(tmp_path, tiny_cityscapes, "full", use_ema=True, do_eval=True)
    run(tmp_path, tiny_cityscapes, "resumed", use_ema=True, do_eval=True, resume_model=tmp_path / "full" / "iter_3")
    full, resumed = tmp_path / "full" / "iter_6", tmp_path / "resumed" / "iter_6"
    for load in (params, ema_weights):
        a, b = load(full), load(resumed)
        assert sorted(a) == sorted(b)
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-7, err_msg=k)
    weights, average = params(full), ema_weights(full)
    assert sorted(average) == sorted(weights)  # same structured names, BatchNorm statistics included
    assert max(np.abs(weights[k] - average[k]).max() for k in weights) > 1e-5  # an average, not a copy
    best = json.loads((tmp_path / "full" / "best_model" / "score.json").read_text())
    best_weights = params(tmp_path / "full" / "best_model")
    for k, v in ema_weights(tmp_path / "full" / f"iter_{best['iter']}").items():
        np.testing.assert_array_equal(best_weights[k], v, err_msg=k)
    assert "(EMA weights)" in (tmp_path / "full" / "train.log").read_text()


@pytest.mark.slow
def test_resuming_a_checkpoint_without_an_average_starts_it_from_the_weights(tmp_path, tiny_cityscapes, caplog):
    run(tmp_path, tiny_cityscapes, "plain", opts=["iters=3"])
    run(tmp_path, tiny_cityscapes, "ema", opts=["iters=4"], save_interval=4, use_ema=True,
        resume_model=tmp_path / "plain" / "iter_3")
    assert "holds no moving average of the weights" in caplog.text
    assert EMA_KEY not in safe_load(tmp_path / "plain" / "iter_3" / "model.pdopt")
    start, after = params(tmp_path / "plain" / "iter_3"), params(tmp_path / "ema" / "iter_4")
    d = min(0.99, 5 / 14)
    for k, v in ema_weights(tmp_path / "ema" / "iter_4").items():
        if v.dtype.kind == "f":
            np.testing.assert_allclose(v, d * start[k] + (1 - d) * after[k], rtol=1e-5, atol=1e-6, err_msg=k)


# ------------------------------------------------------------------------------------------------
# --early_stop_intervals
# ------------------------------------------------------------------------------------------------
class ScriptedResult:
    """What evaluate() returns, with a scripted mIoU."""

    def __init__(self, miou):
        self._miou = miou

    def miou(self):
        return self._miou

    def pixel_accuracy(self):
        return 0.5

    kappa = mean_dice = pixel_accuracy

    def table(self, names):
        return ""


@pytest.fixture
def scripted_miou(monkeypatch):
    """evaluate() returns mIoU 0.1, 0.2 (iteration 2), then 0.15 for ever."""
    calls = []

    def fake_evaluate(model, dataset, **kwargs):
        calls.append(1)
        return ScriptedResult({1: 0.1, 2: 0.2}.get(len(calls), 0.15))

    monkeypatch.setattr("paddleseg.core.training.evaluation.evaluate", fake_evaluate)
    return calls


@pytest.mark.slow
def test_early_stop_saves_and_stops_after_n_evaluations_without_a_better_miou(tmp_path, tiny_cityscapes,
                                                                             scripted_miou):
    state = run(tmp_path, tiny_cityscapes, "stop", opts=["iters=8"], save_interval=1, do_eval=True,
                early_stop_intervals=2)
    assert state.iter == 4 and state.best_iter == 2 and state.best_miou == pytest.approx(0.2)
    assert sorted(p.name for p in (tmp_path / "stop").glob("iter_*"))[-1] == "iter_4"
    assert not (tmp_path / "stop" / "iter_5").exists()
    assert re.search(r"no better mIoU than 0\.2000 \(iteration 2\) in 2 evaluations \(--early_stop_intervals 2\): "
                     r"stopped early at iteration 4 of 8", (tmp_path / "stop" / "train.log").read_text())


@pytest.mark.slow
def test_the_early_stop_count_survives_a_resume(tmp_path, tiny_cityscapes, scripted_miou):
    run(tmp_path, tiny_cityscapes, "first", opts=["iters=8"], save_interval=1, do_eval=True, early_stop_intervals=2)
    scripted_miou.extend([1] * 10)  # from here every evaluation returns 0.15, below iteration 2's 0.2
    # resumed at iteration 3 (one stale evaluation behind it): one more stale evaluation stops it
    state = run(tmp_path, tiny_cityscapes, "second", opts=["iters=8"], save_interval=1, do_eval=True,
                early_stop_intervals=2, resume_model=tmp_path / "first" / "iter_3")
    assert state.iter == 4 and state.best_iter == 2
    # resumed where it stopped: nothing to do
    state = run(tmp_path, tiny_cityscapes, "third", opts=["iters=8"], save_interval=1, do_eval=True,
                early_stop_intervals=2, resume_model=tmp_path / "first" / "iter_4")
    assert state.iter == 4 and not list((tmp_path / "third").glob("iter_*"))


def test_early_stop_without_do_eval_and_a_bad_amp_level_are_user_errors(tmp_path, tiny_cityscapes):
    with pytest.raises(UserError, match="--early_stop_intervals needs --do_eval"):
        run(tmp_path, tiny_cityscapes, "no_eval", early_stop_intervals=2)
    with pytest.raises(UserError, match="--amp_level must be O1 or O2, got 'O3'"):
        run(tmp_path, tiny_cityscapes, "o3", amp_level="O3")
    with pytest.raises(UserError, match="fp16 .* needs a GPU"):
        run(tmp_path, tiny_cityscapes, "o2", precision="fp16", amp_level="O2")
    assert not (tmp_path / "no_eval").exists() and not (tmp_path / "o2").exists()


# ------------------------------------------------------------------------------------------------
# --to_static_training
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_to_static_training_matches_dygraph_losses_and_keeps_the_checkpoint_format(tmp_path, tiny_cityscapes,
                                                                                   monkeypatch):
    """3 iterations each on the tiny config. Tolerance 1e-4 relative on every loss term: the static
    program fuses and orders some CPU kernels differently (observed differences about 1e-7). The
    first to_static iteration traces and compiles the program (about 30 s on a loaded 2-core host)."""
    seen = {}
    real_step = train_module.step

    def spy(*args):
        values = real_step(*args)
        seen.setdefault(current, []).append(values)
        return values

    monkeypatch.setattr(train_module, "step", spy)
    for current, static in (("dygraph", False), ("static", True)):
        run(tmp_path, tiny_cityscapes, current, opts=["iters=3"], to_static_training=static)
    np.testing.assert_allclose(seen["static"], seen["dygraph"], rtol=1e-4)
    assert len(seen["static"]) == 3 and seen["static"][0] != seen["static"][2]
    dygraph, static = params(tmp_path / "dygraph" / "iter_3"), params(tmp_path / "static" / "iter_3")
    assert sorted(static) == sorted(dygraph)  # the structured names, not the wrapper's
    for k in dygraph:
        np.testing.assert_allclose(static[k], dygraph[k], rtol=1e-3, atol=1e-4, err_msg=k)


# ------------------------------------------------------------------------------------------------
# --profiler_options
# ------------------------------------------------------------------------------------------------
def test_profiler_options_parse_paddleseg_format_and_name_bad_keys():
    options = parse_profiler_options("batch_range=[10,20];state=CPU;tracer_option=Default;"
                                     "profile_path=model.profile")
    assert options.batch_range == (10, 20) and options.state == "CPU" and str(options.profile_path) == "model.profile"
    assert parse_profiler_options("") == ProfilerOptions()
    assert parse_profiler_options("exit_on_finished=true; sorted_key=ave").exit_on_finished
    for text, message in [("batch_range=[3,3]", "0 <= start < end"), ("batch_range=5", r"\[start,end\]"),
                          ("state=TPU", "state must be one of CPU, GPU, All"), ("color=red", "unknown key 'color'"),
                          ("state", "expected key=value"), ("timer_only=maybe", "true or false"),
                          ("state=CPU;state=CPU", "given twice")]:
        with pytest.raises(ValueError, match=message):
            parse_profiler_options(text)


@pytest.mark.slow
def test_the_profiler_writes_a_chrome_trace_logs_the_summary_and_can_end_the_run(tmp_path, tiny_cityscapes):
    options = parse_profiler_options(f"batch_range=[1,3];state=CPU;profile_path={tmp_path / 'trace'};"
                                     f"exit_on_finished=true")
    state = run(tmp_path, tiny_cityscapes, "prof", opts=["iters=6"], save_interval=2, profiler_options=options)
    assert state.iter == 3 and (tmp_path / "prof" / "iter_3").is_dir()
    (trace,) = (tmp_path / "trace").glob("*.json")
    assert json.loads(trace.read_text())["traceEvents"]
    log = (tmp_path / "prof" / "train.log").read_text()
    assert "profiler summary of iterations 1 to 2" in log and "Overview Summary" in log
    assert "profiling finished at iteration 3 (exit_on_finished=true)" in log
