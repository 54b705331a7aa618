"""Learning-rate schedules: values at chosen iterations against closed-form formulas; exact resume.

Tolerance: the schedules are Python floats; 1e-12 relative covers the different order of operations.
"""
import math
import re

import paddle
import pytest

from paddleseg.cvlibs import builder, manager
from paddleseg.errors import ConfigError
from paddleseg.optimizers import CosineAnnealingDecay, PiecewiseDecay, PolynomialDecay


def _lrs(scheduler, count: int):
    """The rates for iterations 0 .. count-1 (one ``step()`` after each iteration)."""
    values = []
    for _ in range(count):
        values.append(scheduler())
        scheduler.step()
    return values


def _poly(step, base=0.01, end=0.0, power=0.9, steps=100):
    return (base - end) * (1 - min(step, steps) / steps) ** power + end


def test_poly_decays_over_the_training_iters_by_default():
    scheduler = PolynomialDecay(learning_rate=0.01, iters=100)
    lrs = _lrs(scheduler, 101)
    assert isinstance(scheduler, paddle.optimizer.lr.LRScheduler)
    assert lrs[0] == pytest.approx(0.01, rel=1e-12)
    assert lrs[50] == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-12)
    assert lrs[100] == pytest.approx(0.0, abs=1e-15)
    assert lrs == pytest.approx([_poly(i) for i in range(101)], rel=1e-12)


def test_poly_with_end_lr_power_and_explicit_decay_steps():
    lrs = _lrs(PolynomialDecay(learning_rate=0.1, decay_steps=40, end_lr=0.001, power=2.0, iters=1000), 60)
    assert lrs == pytest.approx([_poly(i, 0.1, 0.001, 2.0, 40) for i in range(60)], rel=1e-12)
    assert lrs[59] == pytest.approx(0.001)  # stays at end_lr after decay_steps without cycle


def test_poly_warmup_ramps_linearly_then_decays_over_the_rest():
    lrs = _lrs(PolynomialDecay(learning_rate=0.01, warmup_iters=10, warmup_start_lr=0.001, iters=110), 111)
    assert lrs[:10] == pytest.approx([0.001 + (0.01 - 0.001) * i / 10 for i in range(10)], rel=1e-12)
    # decay_steps = iters - warmup_iters = 100, counted from the end of the warm-up
    assert lrs[10:] == pytest.approx([_poly(i) for i in range(101)], rel=1e-12)


def test_cosine_reaches_eta_min_at_the_last_iteration():
    lrs = _lrs(CosineAnnealingDecay(learning_rate=0.02, eta_min=0.001, warmup_iters=5, iters=85), 86)
    assert lrs[:5] == pytest.approx([0.02 * i / 5 for i in range(5)], rel=1e-12)
    expected = [0.001 + (0.02 - 0.001) * (1 + math.cos(math.pi * i / 80)) / 2 for i in range(81)]
    assert lrs[5:] == pytest.approx(expected, rel=1e-12)
    assert lrs[45] == pytest.approx((0.02 + 0.001) / 2, rel=1e-12)


def test_piecewise_switches_at_the_boundaries():
    lrs = _lrs(PiecewiseDecay(boundaries=[3, 6], values=[0.1, 0.01, 0.001]), 8)
    assert lrs == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 2, rel=1e-12)


@pytest.mark.parametrize("make", [
    lambda: PolynomialDecay(learning_rate=0.01, warmup_iters=7, warmup_start_lr=1e-4, iters=50),
    lambda: PolynomialDecay(learning_rate=0.01, decay_steps=9, cycle=True, iters=50),
    lambda: CosineAnnealingDecay(learning_rate=0.01, warmup_iters=3, iters=50),
    lambda: PiecewiseDecay(boundaries=[10, 20], values=[0.1, 0.01, 0.001], warmup_iters=4),
])
@pytest.mark.parametrize("k", [0, 5, 12])
def test_state_dict_resumes_the_schedule_exactly(make, k):
    reference = make()
    expected = _lrs(reference, k + 15)[k:]
    trained = make()
    _lrs(trained, k)
    state = trained.state_dict()
    resumed = make()
    resumed.set_state_dict(state)
    assert _lrs(resumed, 15) == expected  # bit-exact, not approximately


def test_config_builds_the_schedule_with_iters_from_code():
    scheduler = builder.build_component({"type": "PolynomialDecay", "learning_rate": 0.01, "end_lr": 0.0,
                                         "power": 0.9}, manager.LR_SCHEDULERS, "lr_scheduler", iters=100)
    assert scheduler.decay.decay_steps == 100
    assert _lrs(scheduler, 51)[50] == pytest.approx(_poly(50), rel=1e-12)


def test_missing_length_is_a_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="decay_steps is not set"):
        PolynomialDecay(learning_rate=0.01)
    with pytest.raises(ValueError, match="T_max is not set"):
        CosineAnnealingDecay(learning_rate=0.01)


def test_warmup_as_long_as_training_is_a_value_error():
    with pytest.raises(ValueError, match=r"warmup_iters \(100\) leaves no iterations"):
        PolynomialDecay(learning_rate=0.01, warmup_iters=100, iters=100)


def test_piecewise_values_must_be_one_more_than_boundaries():
    with pytest.raises(ValueError, match="2 values for 2 boundaries"):
        PiecewiseDecay(boundaries=[3, 6], values=[0.1, 0.01])


@pytest.mark.parametrize("cls, arguments, message", [
    (PolynomialDecay, {"power": -2}, "PolynomialDecay.power must be a number > 0, got -2"),
    (PolynomialDecay, {"learning_rate": -0.01}, "PolynomialDecay.learning_rate must be a number > 0, got -0.01"),
    (PolynomialDecay, {"learning_rate": float("nan")}, "PolynomialDecay.learning_rate must be a number > 0, got nan"),
    (PolynomialDecay, {"end_lr": -1.0}, "PolynomialDecay.end_lr must be a number >= 0, got -1.0"),
    (PolynomialDecay, {"decay_steps": 0}, "PolynomialDecay.decay_steps must be an integer > 0, got 0"),
    (PolynomialDecay, {"warmup_iters": -1}, "PolynomialDecay.warmup_iters must be an integer >= 0, got -1"),
    (CosineAnnealingDecay, {"eta_min": -0.1}, "CosineAnnealingDecay.eta_min must be a number >= 0, got -0.1"),
    (CosineAnnealingDecay, {"T_max": 2.5}, "CosineAnnealingDecay.T_max must be an integer > 0, got 2.5"),
])
def test_bad_arguments_are_value_errors_naming_the_argument_and_value(cls, arguments, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cls(**{"learning_rate": 0.01, "iters": 100, **arguments})


@pytest.mark.parametrize("arguments, message", [
    ({"boundaries": [6, 3], "values": [0.1, 0.01, 0.001]}, "PiecewiseDecay.boundaries must be increasing"),
    ({"boundaries": [0, 3], "values": [0.1, 0.01, 0.001]}, "PiecewiseDecay.boundaries[0] must be an integer > 0"),
    ({"boundaries": [3], "values": [0.1, -0.01]}, "PiecewiseDecay.values[1] must be a number >= 0, got -0.01"),
])
def test_piecewise_bad_arguments_are_value_errors(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PiecewiseDecay(**arguments)


def test_built_from_a_config_a_bad_argument_is_a_config_error_naming_file_and_key():
    with pytest.raises(ConfigError, match=r"^cfg.yml: lr_scheduler.power: PolynomialDecay.power must be a number "
                                          r"> 0, got -2$"):
        builder.build_component({"type": "PolynomialDecay", "learning_rate": 0.01, "power": -2},
                                manager.LR_SCHEDULERS, "lr_scheduler", lambda path: f"cfg.yml: {path}", iters=100)


# -- every paddle.optimizer.lr schedule by its Paddle name (PaddleSeg 2.8 configs) ---------------------
def _build(cfg, iters=100):
    return builder.build_component(cfg, manager.LR_SCHEDULERS, "lr_scheduler", lambda path: f"cfg.yml: {path}",
                                   iters=iters)


def test_our_three_schedules_keep_their_names_and_the_rest_of_paddles_are_registered():
    assert manager.LR_SCHEDULERS["PolynomialDecay"] is PolynomialDecay
    assert manager.LR_SCHEDULERS["CosineAnnealingDecay"] is CosineAnnealingDecay
    assert manager.LR_SCHEDULERS["PiecewiseDecay"] is PiecewiseDecay
    for name in ("StepDecay", "MultiStepDecay", "ExponentialDecay", "OneCycleLR", "LinearWarmup", "NoamDecay",
                 "CyclicLR", "LinearLR", "CosineAnnealingWarmRestarts", "NaturalExpDecay", "InverseTimeDecay"):
        assert name in manager.LR_SCHEDULERS, name
    for name in ("LambdaDecay", "MultiplicativeDecay", "ReduceOnPlateau"):  # need Python code or a metric
        assert name not in manager.LR_SCHEDULERS


def test_cosine_with_upstream_warmup_keys_equals_the_closed_form():
    scheduler = _build({"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 100, "warmup_iters": 5,
                        "warmup_start_lr": 1e-5})
    lrs = _lrs(scheduler, 120)
    for i in (0, 1, 4):
        assert lrs[i] == pytest.approx(1e-5 + (0.01 - 1e-5) * i / 5, rel=1e-12)
    for i in (5, 6, 55, 105):
        assert lrs[i] == pytest.approx(0.01 * (1 + math.cos(math.pi * (i - 5) / 100)) / 2, rel=1e-12, abs=1e-18)


@pytest.mark.parametrize("cfg, closed_form", [
    ({"type": "StepDecay", "learning_rate": 0.1, "step_size": 7, "gamma": 0.5},
     lambda s: 0.1 * 0.5 ** (s // 7)),
    ({"type": "MultiStepDecay", "learning_rate": 0.1, "milestones": [10, 30]},
     lambda s: 0.1 * 0.1 ** sum(s >= m for m in (10, 30))),
    ({"type": "ExponentialDecay", "learning_rate": 0.1, "gamma": 0.95}, lambda s: 0.1 * 0.95 ** s),
    ({"type": "LinearLR", "learning_rate": 0.1, "start_factor": 0.5},  # total_steps: iters - warmup_iters
     lambda s: 0.1 * (0.5 + 0.5 * min(s, 37) / 37)),
])
def test_paddle_schedules_with_warmup_equal_their_closed_forms(cfg, closed_form):
    scheduler = _build({**cfg, "warmup_iters": 3, "warmup_start_lr": 0.0}, iters=40)
    lrs = _lrs(scheduler, 40)
    assert lrs[:3] == pytest.approx([closed_form(0) * i / 3 for i in range(3)], rel=1e-12)
    assert lrs[3:] == pytest.approx([closed_form(s) for s in range(37)], rel=1e-9)


def test_one_cycle_runs_over_the_training_iters_by_default():
    scheduler = _build({"type": "OneCycleLR", "max_learning_rate": 0.1, "phase_pct": 0.5,
                        "anneal_strategy": "linear", "divide_factor": 10.0, "end_learning_rate": 0.0}, iters=22)
    assert scheduler.decay.total_steps == 22
    lrs = _lrs(scheduler, 22)  # Paddle: up over steps 0..10 (phase_pct * 22 - 1), down over 10..21
    assert lrs == pytest.approx([0.01 + 0.09 * s / 10 for s in range(11)] + [0.1 * (1 - s / 11) for s in range(1, 12)],
                                rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("cfg", [
    {"type": "StepDecay", "learning_rate": 0.1, "step_size": 3, "warmup_iters": 2},
    {"type": "LinearLR", "learning_rate": 0.1, "warmup_iters": 2},  # recursive in Paddle: replayed on resume
])
def test_paddle_schedules_resume_exactly_from_state_dict(cfg):
    full = _lrs(_build(cfg, iters=20), 20)
    first = _build(cfg, iters=20)
    _lrs(first, 9)
    resumed = _build(cfg, iters=20)
    resumed.set_state_dict(first.state_dict())
    assert _lrs(resumed, 11) == pytest.approx(full[9:], rel=1e-12)


def test_a_wrong_argument_name_of_a_paddle_schedule_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"^cfg.yml: lr_scheduler.step_sise: StepDecay has no argument 'step_sise'. "
                                          r"Did you mean: step_size\?"):
        builder.check_component({"type": "StepDecay", "learning_rate": 0.1, "step_sise": 3}, "lr_scheduler",
                                manager.LR_SCHEDULERS, lambda path: f"cfg.yml: {path}")
    with pytest.raises(ConfigError, match=r"^cfg.yml: lr_scheduler.step_size: StepDecay.step_size expects int, "
                                          r"got 'ten'"):
        builder.check_component({"type": "StepDecay", "learning_rate": 0.1, "step_size": "ten"}, "lr_scheduler",
                                manager.LR_SCHEDULERS, lambda path: f"cfg.yml: {path}")
    with pytest.raises(ConfigError, match=r"^cfg.yml: lr_scheduler: StepDecay is missing required argument\(s\): "
                                          r"step_size"):
        builder.check_component({"type": "StepDecay", "learning_rate": 0.1}, "lr_scheduler",
                                manager.LR_SCHEDULERS, lambda path: f"cfg.yml: {path}")
    with pytest.raises(ConfigError, match=r"unknown lr_scheduler type 'StepDecy'. Did you mean: StepDecay"):
        builder.check_component({"type": "StepDecy"}, "lr_scheduler", manager.LR_SCHEDULERS)


def test_a_config_with_adamw_and_a_warmed_up_cosine_builds_and_steps(tmp_path):
    import numpy as np
    import yaml

    from paddleseg.cvlibs import Config

    path = tmp_path / "adamw.yml"
    path.write_text(yaml.safe_dump({
        "iters": 100,
        "model": {"type": "ESPNetV2", "scale": 0.5, "num_classes": 3, "drop_prob": 0.0},
        "optimizer": {"type": "AdamW", "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        "lr_scheduler": {"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 100, "warmup_iters": 5,
                         "warmup_start_lr": 1e-5}}))
    cfg = Config(path)
    optimizer, scheduler, model = cfg.optimizer, cfg.lr_scheduler, cfg.model
    assert isinstance(optimizer, paddle.optimizer.AdamW)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    paddle.seed(0)
    image = paddle.randn([1, 3, 32, 64])
    rates = []
    for _ in range(7):
        rates.append(optimizer.get_lr())
        loss = model(image)[0].mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        scheduler.step()
    expected = [1e-5 + (0.01 - 1e-5) * i / 5 for i in range(5)] + [
        0.01 * (1 + math.cos(math.pi * s / 100)) / 2 for s in (0, 1)]
    assert rates == pytest.approx(expected, rel=1e-12)
    changed = [k for k, v in model.state_dict().items() if not np.array_equal(v.numpy(), before[k])]
    assert changed, "no parameter moved"

    path.write_text(path.read_text().replace("T_max", "T_maxx"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: lr_scheduler.T_maxx: CosineAnnealingDecay has "
                                          r"no argument 'T_maxx'. Did you mean: T_max"):
        Config(path)
