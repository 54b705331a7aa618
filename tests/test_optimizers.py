"""Optimizer components: what they build, and two update steps against NumPy.

Tolerance: float32 parameters updated by Paddle vs a float64 NumPy reference; two steps of lr 0.1 on
values of order 1 agree to ~1e-7 absolute, we allow rtol 1e-5 / atol 1e-6.
"""
import numpy as np
import paddle
import pytest

from paddleseg.cvlibs import builder, manager
from paddleseg.errors import ConfigError
from paddleseg.optimizers import SGD, Adam, AdamW, Momentum

LR = 0.1
TOL = dict(rtol=1e-5, atol=1e-6)
X = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]], np.float32)
TARGET = np.array([[0.2, -0.4], [1.0, 0.5]], np.float32)


def _layer():
    paddle.seed(0)
    return paddle.nn.Linear(3, 2)


def _gradient(weight: np.ndarray, bias: np.ndarray):
    """Gradient of sum((X @ W + b - TARGET) ** 2) with respect to W and b."""
    residual = X.astype(np.float64) @ weight + bias - TARGET
    return 2 * X.T @ residual, 2 * residual.sum(axis=0)


def _run(optimizer_settings, steps: int = 2):
    layer = _layer()
    start = [layer.weight.numpy().astype(np.float64), layer.bias.numpy().astype(np.float64)]
    optimizer = optimizer_settings(layer.parameters(), learning_rate=LR)
    for _ in range(steps):
        loss = ((layer(paddle.to_tensor(X)) - paddle.to_tensor(TARGET)) ** 2).sum()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    return optimizer, start, [layer.weight.numpy(), layer.bias.numpy()]


def test_adam_with_weight_decay_matches_numpy_for_two_steps():
    decay, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    _, params, got = _run(Adam(weight_decay=decay, beta1=b1, beta2=b2, epsilon=eps))
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in (1, 2):
        grads = [g + decay * p for g, p in zip(_gradient(*params), params)]  # L2: added to the gradient
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            params[i] = params[i] - LR * m_hat / (np.sqrt(v_hat) + eps)
    for ours, ref in zip(got, params):
        np.testing.assert_allclose(ours, ref, **TOL)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_with_weight_decay_matches_numpy_for_two_steps(nesterov):
    decay, mu = 0.05, 0.9
    _, params, got = _run(Momentum(momentum=mu, use_nesterov=nesterov, weight_decay=decay))
    velocity = [np.zeros_like(p) for p in params]
    for _ in range(2):
        grads = [g + decay * p for g, p in zip(_gradient(*params), params)]
        for i, g in enumerate(grads):
            velocity[i] = mu * velocity[i] + g
            step = g + mu * velocity[i] if nesterov else velocity[i]
            params[i] = params[i] - LR * step
    for ours, ref in zip(got, params):
        np.testing.assert_allclose(ours, ref, **TOL)


def test_sgd_with_momentum_is_momentum_sgd_and_without_is_plain_sgd():
    momentum_sgd, _, got_momentum = _run(SGD(momentum=0.9, weight_decay=4e-5))
    _, _, got_reference = _run(Momentum(momentum=0.9, weight_decay=4e-5))
    assert isinstance(momentum_sgd, paddle.optimizer.Momentum)
    for ours, ref in zip(got_momentum, got_reference):
        np.testing.assert_array_equal(ours, ref)

    plain, params, got = _run(SGD(), steps=1)
    assert type(plain) is paddle.optimizer.SGD
    for ours, p, g in zip(got, params, _gradient(*params)):
        np.testing.assert_allclose(ours, p - LR * g, **TOL)


def test_grad_clip_norm_scales_the_gradient_to_the_global_norm():
    _, params, got = _run(SGD(grad_clip_norm=0.5), steps=1)
    grads = _gradient(*params)
    norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    assert norm > 0.5
    for ours, p, g in zip(got, params, grads):
        np.testing.assert_allclose(ours, p - LR * g * 0.5 / norm, **TOL)


def test_a_scheduler_drives_the_optimizer_learning_rate():
    scheduler = paddle.optimizer.lr.PiecewiseDecay([1], [0.1, 0.01])
    optimizer = Adam()(_layer().parameters(), learning_rate=scheduler)
    assert optimizer.get_lr() == pytest.approx(0.1)
    scheduler.step()
    assert optimizer.get_lr() == pytest.approx(0.01)


@pytest.mark.parametrize("name, cls", [("adam", Adam), ("Adam", Adam), ("adamw", AdamW), ("AdamW", AdamW),
                                       ("sgd", SGD), ("SGD", SGD),
                                       ("momentum", Momentum), ("Momentum", Momentum)])
def test_config_type_names_resolve_to_the_optimizer(name, cls):
    settings = builder.build_component({"type": name, "weight_decay": 0.0002}, manager.OPTIMIZERS)
    assert type(settings) is cls and settings.weight_decay == 0.0002


def test_paddleseg_style_sgd_config_builds_momentum():
    settings = builder.build_component({"type": "sgd", "momentum": 0.9, "weight_decay": 4.0e-5},
                                       manager.OPTIMIZERS)
    optimizer = settings(_layer().parameters(), 0.01)
    assert isinstance(optimizer, paddle.optimizer.Momentum)
    assert optimizer._momentum == pytest.approx(0.9)


@pytest.mark.parametrize("cfg, key, message", [
    ({"type": "adam", "weight_decay": -1.0}, "weight_decay", r"Adam.weight_decay must be a number >= 0, got -1.0"),
    ({"type": "adam", "beta1": 1.0}, "beta1", r"Adam.beta1 must be a number >= 0 and < 1, got 1.0"),
    ({"type": "adam", "epsilon": float("nan")}, "epsilon", r"Adam.epsilon must be a number > 0, got nan"),
    ({"type": "sgd", "momentum": -0.5}, "momentum", r"SGD.momentum must be a number >= 0 and < 1, got -0.5"),
    ({"type": "sgd", "use_nesterov": True}, "use_nesterov", "SGD.use_nesterov needs a momentum > 0"),
    ({"type": "momentum", "grad_clip_norm": 0.0}, "grad_clip_norm",
     r"Momentum.grad_clip_norm must be a number > 0, got 0.0"),
])
def test_invalid_settings_are_value_errors_and_config_errors_naming_the_key(cfg, key, message):
    """The component raises a plain ValueError; built from a config, it is a ConfigError naming the
    file (here 'cfg.yml') and the key path."""
    arguments = {k: v for k, v in cfg.items() if k != "type"}
    with pytest.raises(ValueError, match=message):
        manager.OPTIMIZERS[cfg["type"]](**arguments)
    with pytest.raises(ConfigError, match=rf"^cfg.yml: optimizer.{key}: {message}$"):
        builder.build_component(cfg, manager.OPTIMIZERS, "optimizer", lambda path: f"cfg.yml: {path}")


def test_unknown_argument_is_caught_by_the_signature():
    with pytest.raises(ConfigError, match="Did you mean: momentum"):
        builder.check_component({"type": "sgd", "momentun": 0.9}, "optimizer", manager.OPTIMIZERS)


def test_adamw_decays_decoupled_from_the_gradient_matching_numpy_for_two_steps():
    """AdamW: the decay shrinks the parameter by ``lr * weight_decay`` beside the Adam step (it never
    enters the moments), unlike Adam's L2 decay above."""
    decay, b1, b2, eps = 0.05, 0.8, 0.99, 1e-8
    optimizer, params, got = _run(AdamW(weight_decay=decay, beta1=b1, beta2=b2, epsilon=eps))
    assert isinstance(optimizer, paddle.optimizer.AdamW)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in (1, 2):
        grads = _gradient(*params)
        for i, g in enumerate(grads):
            params[i] = params[i] * (1 - LR * decay)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            params[i] = params[i] - LR * m_hat / (np.sqrt(v_hat) + eps)
    for ours, ref in zip(got, params):
        np.testing.assert_allclose(ours, ref, **TOL)


def test_adamw_takes_the_same_grad_clip_and_checks_as_adam():
    settings = builder.build_component({"type": "adamw", "weight_decay": 0.01, "grad_clip_norm": 1.0,
                                        "beta2": 0.98}, manager.OPTIMIZERS)
    optimizer = settings(_layer().parameters(), 0.01)
    assert isinstance(optimizer._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    with pytest.raises(ConfigError, match=r"^cfg.yml: optimizer.beta1: AdamW.beta1 must be a number >= 0 and < 1"):
        builder.build_component({"type": "AdamW", "beta1": 1.5}, manager.OPTIMIZERS, "optimizer",
                                lambda path: f"cfg.yml: {path}")
    with pytest.raises(ConfigError, match="optimizer.weight_decy: AdamW has no argument 'weight_decy'. Did you mean: "
                                          "weight_decay"):
        builder.check_component({"type": "AdamW", "weight_decy": 0.01}, "optimizer", manager.OPTIMIZERS)
