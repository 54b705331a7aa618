import json
import re

import numpy as np
import paddle
import pytest

import paddleseg  # noqa: F401
from paddleseg.core.training import loop as train_module  # where the loop looks up `step`
from paddleseg.core.training import step as step_module
from paddleseg.core.training.divergence import TrainingDiverged
from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.core.training.prepare import train_outputs
from paddleseg.cvlibs import Config
from paddleseg.errors import ConfigError, UserError

from conftest import write_train_config


def run(tmp_path, root, name, opts=(), **options):
    cfg = Config(write_train_config(tmp_path / f"{name}.yml", root), opts=list(opts))
    options.setdefault("save_interval", 3)
    options.setdefault("log_iters", 1)
    return train(cfg, TrainOptions(save_dir=tmp_path / name, **options))


def params(path):
    return {k: np.asarray(v) for k, v in paddle.load(str(path / "model.pdparams")).items()}


@pytest.mark.slow
def test_resume_continues_bit_exact(tmp_path, tiny_cityscapes):
    """6 iterations (2 epochs of 4 batches would need 8; the batches cross an epoch boundary at 4) vs 3 + resumed 3.

    Tolerance 1e-7 absolute: the resumed run executes the identical op sequence on identical data, so
    the weights should be equal to the bit (observed: 0.0); the allowance only covers a change in the
    reduction order of multi-threaded CPU kernels, and is 1000x below what one iteration changes.
    """
    run(tmp_path, tiny_cityscapes, "full")
    run(tmp_path, tiny_cityscapes, "resumed", resume_model=tmp_path / "full" / "iter_3")
    full, resumed, middle = (params(tmp_path / "full" / "iter_6"), params(tmp_path / "resumed" / "iter_6"),
                             params(tmp_path / "full" / "iter_3"))
    assert max(np.abs(full[k] - middle[k]).max() for k in full) > 1e-4  # three iterations do change them
    for k in full:
        np.testing.assert_allclose(resumed[k], full[k], rtol=0, atol=1e-7, err_msg=k)
    state = json.loads((tmp_path / "resumed" / "iter_6" / "train_state.json").read_text())
    assert state["iter"] == 6 and state["seed"] == 0


@pytest.mark.slow
def test_checkpoints_are_pruned_to_keep_checkpoint_max(tmp_path, tiny_cityscapes):
    run(tmp_path, tiny_cityscapes, "pruned", save_interval=1, keep_checkpoint_max=2)
    assert sorted(p.name for p in (tmp_path / "pruned").glob("iter_*")) == ["iter_5", "iter_6"]
    log = (tmp_path / "pruned" / "train.log").read_text()
    assert re.search(r"\[TRAIN\] iter 6/6, epoch 2, loss_main=[\d.]+, loss_aux1=[\d.]+, lr=[\d.]+, "
                     r"batch_cost=[\d.]+ s, reader_cost=[\d.]+ s, ips=[\d.]+ images/s, ETA 0:00:00", log)


def test_a_nan_loss_stops_at_once_and_saves_no_nan_weights(tmp_path, tiny_cityscapes):
    with pytest.raises(TrainingDiverged) as err:
        run(tmp_path, tiny_cityscapes, "nan", opts=["lr_scheduler.learning_rate=1.0e+30"], save_interval=1)
    message = str(err.value)
    match = re.search(r"iteration (\d+): the loss is not finite \(loss_main=(nan|inf)", message)
    assert match, message
    diverged_at = int(match.group(1))
    assert f"Last good checkpoint: {tmp_path / 'nan' / f'iter_{diverged_at - 1}'}" in message
    saved = sorted(int(p.name[5:]) for p in (tmp_path / "nan").glob("iter_*"))
    assert saved == list(range(1, diverged_at))
    for i in saved:  # every checkpoint that exists holds finite weights
        assert all(np.isfinite(v).all() for v in params(tmp_path / "nan" / f"iter_{i}").values())


def test_ctrl_c_writes_a_final_checkpoint_at_the_current_iteration(tmp_path, tiny_cityscapes, monkeypatch):
    real_step = train_module.step
    calls = []

    def interrupting_step(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(train_module, "step", interrupting_step)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_cityscapes, "sigint")
    assert sorted(p.name for p in (tmp_path / "sigint").glob("iter_*")) == ["iter_3", "iter_4"]
    assert json.loads((tmp_path / "sigint" / "iter_4" / "train_state.json").read_text())["iter"] == 4


def test_a_loss_list_that_does_not_fit_the_outputs_is_a_config_error(tmp_path, tiny_cityscapes):
    with pytest.raises(ConfigError, match=r"1 loss term\(s\) .* returns 2 outputs"):
        run(tmp_path, tiny_cityscapes, "coef", opts=["loss.coef=[1]"])


def test_fp16_on_cpu_and_a_batch_larger_than_the_set_are_clear_errors(tmp_path, tiny_cityscapes):
    with pytest.raises(UserError, match="fp16 .* needs a GPU"):
        run(tmp_path, tiny_cityscapes, "amp", precision="fp16")
    with pytest.raises(ConfigError, match=r"batch_size 9 x 1 rank\(s\) is larger than the train set \(8 images\)"):
        run(tmp_path, tiny_cityscapes, "big", opts=["batch_size=9"])


@pytest.mark.slow
def test_training_lowers_the_loss_and_beats_the_majority_class_baseline(tmp_path, tiny_cityscapes):
    """60 iterations on 8 synthetic scenes (about 10 s): measured mIoU 0.22 against 0.02 for always
    predicting each image's majority class; the assertions leave a wide margin for other seeds/CPUs."""
    from paddleseg.utils.metrics import ConfusionMatrix

    transforms = [{"type": "RandomHorizontalFlip"}, {"type": "Normalize"}]
    cfg = Config(write_train_config(tmp_path / "e2e.yml", tiny_cityscapes, iters=60, batch_size=4, train_dataset={
        "type": "Cityscapes", "dataset_root": str(tiny_cityscapes), "mode": "train", "transforms": transforms}))
    state = train(cfg, TrainOptions(save_dir=tmp_path / "e2e", do_eval=True, save_interval=60, log_iters=10))
    losses = [float(x) for x in re.findall(r"loss_main=([\d.]+)", (tmp_path / "e2e" / "train.log").read_text())]
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0]
    baseline = ConfusionMatrix(19)
    val = cfg.val_dataset
    for i in range(len(val)):
        label = val[i]["label"]
        majority = np.bincount(label[label != 255], minlength=19).argmax()
        baseline.update(np.full_like(label, majority), label)
    assert state.best_miou > 3 * baseline.miou()
    score = json.loads((tmp_path / "e2e" / "best_model" / "score.json").read_text())
    assert score["miou"] == pytest.approx(state.best_miou) and score["iter"] == 60


def test_visualdl_scalars_are_written_with_use_vdl(tmp_path, tiny_cityscapes):
    from visualdl import LogReader

    state = run(tmp_path, tiny_cityscapes, "vdl", opts=["iters=3"], use_vdl=True, do_eval=True)
    (record,) = (tmp_path / "vdl" / "vdl").iterdir()
    reader = LogReader(file_path=str(record))
    assert {"Train/loss_main", "Train/loss_aux1", "Train/lr", "Evaluate/mIoU"} <= set(reader.get_tags()["scalar"])
    (miou,) = reader.get_data("scalar", "Evaluate/mIoU")
    assert miou.id == 3 and miou.value == pytest.approx(state.best_miou, abs=1e-6)
    assert [x.id for x in reader.get_data("scalar", "Train/loss_main")] == [1, 2, 3]


def test_counting_the_model_outputs_leaves_its_batchnorm_statistics_alone():
    from paddleseg.models import ESPNetV2

    model = ESPNetV2(num_classes=19, scale=0.5)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    assert train_outputs(model) == 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_the_declared_output_count_is_what_training_mode_returns_and_undeclared_models_are_probed():
    from paddleseg.models import ESPNetV2

    model = ESPNetV2(num_classes=19, scale=0.5)
    model.train()
    assert len(model(paddle.zeros([1, 3, 64, 96]))) == model.train_outputs == 2

    class Undeclared(paddle.nn.Layer):
        def forward(self, x):
            return [x, x, x] if self.training else [x]

    assert train_outputs(Undeclared()) == 3


def test_resuming_with_more_iters_continues_the_longer_schedule_without_a_zero_lr_step(tmp_path, tiny_cityscapes,
                                                                                         monkeypatch):
    """A 4-iteration poly run ends at lr 0; resumed with --iters 8, iteration 5 trains at the 8-iteration
    schedule's rate at iteration 4 (0.005 * (1 - 4/8) ** 0.9), not at 0."""
    run(tmp_path, tiny_cityscapes, "short", opts=["iters=4"], save_interval=4)
    seen = []
    real_step = train_module.step

    def spy(model, optimizer, *args):
        seen.append(optimizer.get_lr())
        return real_step(model, optimizer, *args)

    monkeypatch.setattr(train_module, "step", spy)
    run(tmp_path, tiny_cityscapes, "longer", opts=["iters=8"], save_interval=4,
        resume_model=tmp_path / "short" / "iter_4")
    expected = [0.005 * (1 - i / 8) ** 0.9 for i in range(4, 8)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


@pytest.mark.slow
def test_resuming_at_another_global_batch_is_refused_unless_allowed(tmp_path, tiny_cityscapes, caplog):
    run(tmp_path, tiny_cityscapes, "b2", opts=["iters=2"], save_interval=2)
    with pytest.raises(UserError, match=r"global batch of 2 per rank x 1 rank\(s\) = 2; this run has 4 per rank"):
        run(tmp_path, tiny_cityscapes, "b4", opts=["iters=4", "batch_size=4"], resume_model=tmp_path / "b2" / "iter_2")
    state = run(tmp_path, tiny_cityscapes, "b4", opts=["iters=4", "batch_size=4"], save_interval=2,
                resume_model=tmp_path / "b2" / "iter_2", allow_batch_change=True)
    assert state.iter == 4 and "at a global batch of 4 per rank x 1 rank(s) = 4" in caplog.text


def test_amp_runs_this_nets_gray_and_black_ops_in_fp16_deliberately(monkeypatch):
    """Each op named in AMP_FP16_OPS is one Paddle would otherwise keep in fp32 (not on its fp16 white
    list), so the override does something, and step() passes it to auto_cast."""
    from paddle.amp import amp_lists

    white = amp_lists.white_list()["float16"]["O1"]
    assert step_module.AMP_FP16_OPS and not set(step_module.AMP_FP16_OPS) & set(white)
    assert "bilinear_interp_v2" in amp_lists.black_list()["float16"]["O1"]
    seen = {}
    real = paddle.amp.auto_cast

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**{**kwargs, "enable": False})

    monkeypatch.setattr(paddle.amp, "auto_cast", spy)

    class Scaler:
        def scale(self, loss):
            return loss

        def step(self, optimizer):
            optimizer.step()

        def update(self):
            pass

    from paddleseg.losses import CrossEntropyLoss
    from paddleseg.models import ESPNetV2

    model = ESPNetV2(num_classes=19, scale=0.5)
    model.train()
    optimizer = paddle.optimizer.Adam(parameters=model.parameters())
    batch = {"img": paddle.randn([1, 3, 32, 64]), "label": paddle.zeros([1, 32, 64], dtype="int64")}
    train_module.step(model, optimizer, Scaler(), {"types": [CrossEntropyLoss()] * 2, "coef": [1, 1]}, batch)
    assert seen["custom_white_list"] == set(step_module.AMP_FP16_OPS) and seen["level"] == "O1"


def test_ctrl_c_during_the_backward_pass_is_raised_after_it():
    """SIGINT inside backward (where PyLayer.backward runs Python) must come out as KeyboardInterrupt."""
    import os
    import signal

    from paddleseg.utils.signals import interruptions_held as interrupt_after_backward

    finished = []
    # Python's own handler, as in a terminal (a background job, e.g. under nohup, starts with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupt_after_backward():
                os.kill(os.getpid(), signal.SIGINT)
                finished.append(True)  # the block is not cut short
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
