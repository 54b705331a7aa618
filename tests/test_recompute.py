"""Activation recomputation (paddleseg/models/recompute.py, the models' ``set_recompute``, the config's
``recompute`` key and ``train.py --recompute``).

Tolerances: outputs, losses and BatchNorm statistics must be equal to the bit (the recomputed forward
runs the same kernels on the same inputs, and the statistics are those of the one real forward); the
gradients 1e-6 relative (max-abs error per tensor over the tensor's max-abs), the allowance for a
gradient summed from several paths in another order (observed: 0.0).
"""
import copy
import importlib.util
import re

import numpy as np
import paddle
import pytest

from paddleseg.core.training.options import TrainOptions
from paddleseg.core.training.prepare import set_up_recompute
from paddleseg.core.training.step import step
from paddleseg.cvlibs import Config
from paddleseg.errors import ConfigError, UserError
from paddleseg.losses import CrossEntropyLoss, compute_losses
from paddleseg.models import EESPNetHead, ESPNetV2
from paddleseg.models import recompute as recompute_module
from paddleseg.models.backbones.eespnet import EESPNet

from conftest import REPO, write_train_config
from test_distributed import launch, worker_log
from test_train import params, run

GRADIENT_RTOL = 1e-6
CASES = [(0.5, [2, 3, 64, 128]), (1.0, [1, 3, 67, 133])]


def pair(scale: float, drop_prob: float = 0.0, head: bool = True):
    """The same freshly initialised model twice, in training mode; the second recomputes every block
    it can (with ``head=False``: train.py --recompute's set)."""
    paddle.seed(0)
    plain = ESPNetV2(scale=scale, drop_prob=drop_prob)
    plain.train()
    recomputing = copy.deepcopy(plain)
    recomputing.set_recompute(True, head=head)
    return plain, recomputing


def batch(shape, seed: int = 1):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal(shape, dtype=np.float32)
    label = rng.integers(0, 19, (shape[0],) + tuple(shape[2:]), dtype=np.int64)
    label[rng.random(label.shape) < 0.1] = 255
    return paddle.to_tensor(image), paddle.to_tensor(label)


LOSSES = {"types": [CrossEntropyLoss(), CrossEntropyLoss()], "coef": [1, 0.4]}


def forward_backward(model, image, label, seed: int = 5):
    """Outputs and loss terms of one forward and backward pass; paddle's generator seeded first."""
    paddle.seed(seed)
    outputs = model(image)
    total, terms = compute_losses(LOSSES["types"], LOSSES["coef"], outputs, label)
    total.backward()
    return [o.numpy() for o in outputs], [float(t) for t in terms]


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def assert_same_gradients(plain, recomputing):
    named = dict(recomputing.named_parameters())
    for name, p in plain.named_parameters():
        q = named[name]
        assert (p.grad is None) == (q.grad is None), f"{name}: gradient {'missing' if q.grad is None else 'extra'}"
        if p.grad is not None:
            assert relative_error(p.grad.numpy(), q.grad.numpy()) <= GRADIENT_RTOL, name


def assert_same_state(plain, recomputing):
    ours = recomputing.state_dict()
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(ours[key].numpy(), value.numpy(), err_msg=key)


def running_statistics(model):
    return {k: v.numpy() for k, v in model.state_dict().items() if k.endswith(("._mean", "._variance"))}


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, shape", CASES)
def test_recompute_gives_the_same_outputs_losses_gradients_and_batchnorm_statistics(scale, shape):
    plain, recomputing = pair(scale)
    image, label = batch(shape)
    before = running_statistics(plain)
    outputs, losses = forward_backward(plain, image, label)
    outputs_r, losses_r = forward_backward(recomputing, image, label)
    assert losses_r == losses
    for a, b in zip(outputs, outputs_r):
        np.testing.assert_array_equal(b, a)
    assert_same_gradients(plain, recomputing)
    after = running_statistics(plain)
    assert max(np.abs(after[k] - before[k]).max() for k in after) > 1e-3  # the statistics did move, once
    assert_same_state(plain, recomputing)  # running statistics included


def test_steps_with_the_optimizer_stay_equal(tmp_path):
    """Three Adam steps through ``core.training.step.step``: from the second on every parameter already holds
    a gradient tensor, which Paddle's recompute saves differently from the first step's."""
    paddle.seed(0)
    cfg = Config(write_train_config(tmp_path / "cfg.yml", tmp_path), opts=["model.scale=0.5"])
    plain = cfg.model
    plain.train()
    recomputing = copy.deepcopy(plain)
    set_up_recompute(Config(tmp_path / "cfg.yml", recompute=True), recomputing, TrainOptions())
    optimizers = [paddle.optimizer.Adam(1e-3, parameters=m.parameters()) for m in (plain, recomputing)]
    losses = cfg.loss
    for i in range(3):
        image, label = batch([2, 3, 64, 128], seed=i)
        values = [step(m, o, None, losses, {"img": image, "label": label}) for m, o in zip((plain, recomputing),
                                                                                         optimizers)]
        assert values[1] == values[0], i
    assert_same_state(plain, recomputing)


def test_without_putting_the_statistics_back_the_rerun_would_move_them_twice(monkeypatch):
    """The pitfall :func:`recompute` handles: a re-run forward in training mode updates BatchNorm's
    running statistics again."""
    monkeypatch.setattr(recompute_module, "_state_updated_once", lambda layers, function: function)
    plain, recomputing = pair(0.5)
    image, label = batch([2, 3, 64, 128])
    forward_backward(plain, image, label)
    forward_backward(recomputing, image, label)
    assert_same_gradients(plain, recomputing)  # the gradients do not depend on the statistics
    ours, theirs = running_statistics(recomputing), running_statistics(plain)
    assert max(np.abs(ours[k] - theirs[k]).max() for k in ours) > 1e-4


def test_dropout_in_a_recomputed_block_draws_the_same_mask_and_leaves_the_generator_as_without():
    """project_l1's dropout runs inside the recomputed refinement (project_l3's outside any block): the
    re-run restores the random state of the forward (``preserve_rng_state``), so the gradients are those
    of the mask the forward drew, and afterwards the generator is where it would be without recompute."""
    plain, recomputing = pair(0.5, drop_prob=0.3)
    image, label = batch([2, 3, 64, 128])
    _, losses = forward_backward(plain, image, label)
    after_plain = paddle.rand([8]).numpy()
    _, losses_r = forward_backward(recomputing, image, label)
    after_recomputing = paddle.rand([8]).numpy()
    assert losses_r == losses
    assert_same_gradients(plain, recomputing)
    np.testing.assert_array_equal(after_recomputing, after_plain)


def test_evaluation_and_no_grad_do_not_recompute(monkeypatch):
    plain, recomputing = pair(0.5)
    calls = []
    real = recompute_module.paddle_recompute
    monkeypatch.setattr(recompute_module, "paddle_recompute", lambda *a, **k: calls.append(1) or real(*a, **k))
    image, _ = batch([1, 3, 67, 133])
    with paddle.no_grad():
        for model in (plain, recomputing):
            model(image)  # training mode (which moves the running statistics), no gradients
    assert not calls
    plain.eval()
    recomputing.eval()
    (expected,), (got,) = plain(image), recomputing(image)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert not calls
    recomputing.train()
    recomputing(image)
    assert len(calls) == 3 + 3 + 7 + 3  # down-samplers, level-3 and level-4 units; context, PSP, refine


@pytest.mark.parametrize("model", [lambda: ESPNetV2(scale=0.5), lambda: EESPNetHead(EESPNet(scale=0.5))])
def test_the_state_dict_keys_do_not_change(model):
    built = model()
    keys = list(built.state_dict())
    built.set_recompute(True)
    assert list(built.state_dict()) == keys


def test_recomputed_blocks_never_nest():
    """Paddle allows one pair of saved-tensor hooks at a time (paddleseg/models/recompute.py)."""
    model = ESPNetV2(scale=0.5)
    model.set_recompute(True, head=True)
    on = [name for name, layer in model.named_sublayers() if getattr(layer, "recompute", False)]
    head_blocks = ["proj_l4_c", "eesp_psp.0", "project_l2", "project_l1"]  # the head's context and refine
    for name in on + head_blocks:
        assert not any(other != name and other.startswith(name + ".") for other in on), name


# ------------------------------------------------------------------------------------------------
# the option: config key, train.py flag, training
# ------------------------------------------------------------------------------------------------
def load_train_script():
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_config_key_and_the_flag_parse(tmp_path):
    config = write_train_config(tmp_path / "on.yml", tmp_path, recompute=True)
    assert Config(config).recompute
    assert not Config(write_train_config(tmp_path / "off.yml", tmp_path)).recompute
    assert not Config(config, opts=["recompute=false"]).recompute
    flagged = Config(write_train_config(tmp_path / "off.yml", tmp_path, recompute=False), recompute=True)
    assert flagged.recompute and flagged.origin("recompute") == "--recompute: recompute"
    script = load_train_script()
    assert script.parse_args(["--config", str(config), "--recompute"]).recompute is True
    assert script.parse_args(["--config", str(config)]).recompute is None  # the config decides


@pytest.mark.parametrize("value", [3, "yes", [True]])
def test_a_recompute_value_that_is_not_a_bool_is_a_config_error_naming_the_file_and_key(tmp_path, value):
    config = write_train_config(tmp_path / "bad.yml", tmp_path, recompute=value)
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'bad.yml'}: recompute: must be true or false, got "):
        Config(config)


def test_recompute_with_to_static_training_is_a_user_error(tmp_path, tiny_cityscapes):
    """One line, exit 2 (paddleseg/utils/cli.py) from the flags, and from the config key in train()."""
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    with pytest.raises(UserError, match="argument --recompute: cannot be combined with --to_static_training"):
        load_train_script().parse_args(["--config", str(config), "--recompute", "--to_static_training"])
    with pytest.raises(UserError, match=r"--opts: recompute: recompute cannot be combined with --to_static"):
        run(tmp_path, tiny_cityscapes, "static", opts=["recompute=true"], to_static_training=True)
    assert not (tmp_path / "static").exists()


def test_a_model_without_set_recompute_is_a_config_error(tmp_path):
    cfg = Config(write_train_config(tmp_path / "cfg.yml", tmp_path), recompute=True)
    with pytest.raises(ConfigError, match=r"--recompute: recompute: the model \(Linear\) has no set_recompute"):
        set_up_recompute(cfg, paddle.nn.Linear(2, 2), TrainOptions())


def test_training_with_the_config_key_recomputes_and_ends_with_the_same_weights(tmp_path, tiny_cityscapes):
    """Two iterations of train() each way; the tolerance of the gradients, through Adam (observed 0.0)."""
    run(tmp_path, tiny_cityscapes, "plain", opts=["iters=2"], save_interval=2)
    run(tmp_path, tiny_cityscapes, "recomputed", opts=["iters=2", "recompute=true"], save_interval=2)
    log = (tmp_path / "recomputed" / "train.log").read_text()
    assert "--opts: recompute: ESPNetV2 recomputes its blocks' activations in the backward pass" in log
    plain, recomputed = params(tmp_path / "plain" / "iter_2"), params(tmp_path / "recomputed" / "iter_2")
    assert sorted(recomputed) == sorted(plain)
    for k in plain:
        np.testing.assert_allclose(recomputed[k], plain[k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.slow
def test_two_data_parallel_ranks_train_the_same_weights_with_recompute(tmp_path, tiny_cityscapes):
    """paddle.DataParallel (2 CPU ranks, gloo) sees the recomputed blocks' parameter gradients: 4 iterations
    end with the trainable-parameter fingerprint of the run without recompute, on both ranks."""
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    fingerprints = {}
    for name, extra in (("plain", ()), ("recomputed", ("--recompute",))):
        (tmp_path / name).mkdir()
        done, _ = launch(tmp_path / name, config, "--skip_data_check", *extra)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        fingerprints[name] = [re.findall(rf"rank {rank} trainable-parameter fingerprint: ([0-9a-f]{{64}})",
                                         worker_log(tmp_path / name, rank)) for rank in (0, 1)]
    (plain,) = fingerprints["plain"][0]
    assert fingerprints["plain"] == fingerprints["recomputed"] == [[plain], [plain]]


def test_train_py_recompute_takes_the_backbone_and_refinement_and_head_true_adds_context_and_psp():
    model = ESPNetV2(scale=0.5)
    model.set_recompute(True)
    on = {name for name, layer in model.named_sublayers() if getattr(layer, "recompute", False)}
    assert {"backbone.level2", "backbone.level3_0", "backbone.level4_0", "backbone.level3.0", "backbone.level4.6"} <= on
    assert model.recompute_refine
    assert not model.recompute and not any(name.startswith("eesp_psp") for name in on)
    model.set_recompute(True, head=True)
    assert model.recompute and model.recompute_refine and model.eesp_psp[1].recompute
    model.set_recompute(False)
    assert not model.recompute_refine
    assert not any(getattr(layer, "recompute", False) for _, layer in model.named_sublayers())


def test_train_py_recomputes_set_gives_the_same_gradients_and_runs_the_refinement_again(monkeypatch):
    plain, recomputing = pair(1.0, drop_prob=0.3, head=False)
    calls = []
    real = recompute_module.paddle_recompute
    monkeypatch.setattr(recompute_module, "paddle_recompute", lambda *a, **k: calls.append(1) or real(*a, **k))
    image, label = batch([1, 3, 67, 133])
    outputs, losses = forward_backward(plain, image, label)
    outputs_r, losses_r = forward_backward(recomputing, image, label)
    assert len(calls) == 3 + 3 + 7 + 1  # down-samplers, level-3 and level-4 units; the refinement
    assert losses_r == losses
    for a, b in zip(outputs, outputs_r):
        np.testing.assert_array_equal(a, b)
    assert_same_gradients(plain, recomputing)
