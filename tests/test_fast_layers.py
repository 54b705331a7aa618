"""The eager CPU fast paths of the training step (models/layers.py) compute what Paddle's own layers
compute: outputs bit for bit, gradients to float rounding, and a whole training step's losses and
gradients in the CPU layer configuration equal to those of the plain-Paddle one (every layer in
Paddle's own op; models/layer_config.py) on a fixed batch (1e-5 relative per tensor)."""
import gc
import weakref

import numpy as np
import paddle
import pytest

from paddleseg.cvlibs import Config
from paddleseg.losses import compute_losses
from paddleseg.models import layer_config, layers
from paddleseg.models.layer_config import LayerConfig
from paddleseg.utils.paddle_compat import prelu_slope

from conftest import REPO

CPU = LayerConfig(device="cpu")
PLAIN = LayerConfig(device="gpu")  # Paddle's own ops everywhere, run here on the CPU
TRACED = LayerConfig.for_tracing()

CONFIG = REPO / "configs" / "espnetv2" / "espnetv2_cityscapes_1024x512_120k.yml"


def rel(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref| (0 when both are 0)."""
    scale = np.abs(ref).max()
    return float(np.abs(ours - ref).max() / scale) if scale > 0 else float(np.abs(ours).max())


def prelu_pair(slope: float, config: LayerConfig = CPU):
    with layer_config.use(config):
        ours = layers.PReLU()
    plain = paddle.nn.PReLU()
    for layer in (ours, plain):
        prelu_slope(layer).set_value(paddle.to_tensor([slope], dtype="float32"))
    return ours, plain


def run_prelu(layer, x: np.ndarray, grad: np.ndarray):
    inputs = paddle.to_tensor(x, stop_gradient=False)
    out = layer(inputs)
    out.backward(paddle.to_tensor(grad))
    return out.numpy(), inputs.grad.numpy(), prelu_slope(layer).grad.numpy()


@pytest.mark.parametrize("slope", [0.25, 1e-30, 0.0, -0.2, 1.5])
@pytest.mark.parametrize("shape", [[2, 8, 17, 33], [1, 3, 5, 7]])
def test_prelu_fast_path_equals_paddles_prelu(slope, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    grad = rng.standard_normal(shape, dtype=np.float32)
    ours, plain = prelu_pair(slope)
    out, x_grad, slope_grad = run_prelu(ours, x, grad)
    ref_out, ref_x_grad, ref_slope_grad = run_prelu(plain, x, grad)
    assert np.array_equal(out, ref_out)
    assert np.array_equal(x_grad, ref_x_grad)
    assert rel(slope_grad, ref_slope_grad) <= 1e-5


def test_prelu_gradient_at_exactly_zero_is_leaky_relus_convention():
    ours, plain = prelu_pair(0.25)
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    grad = np.ones_like(x)
    assert run_prelu(ours, x, grad)[1].tolist() == [[0.25, 1.0, 1.0]]
    assert run_prelu(plain, x, grad)[1].tolist() == [[0.25, 0.25, 1.0]]  # prelu's kernel; both subgradients


@pytest.mark.parametrize("slope, keeps_input", [(0.25, False), (-0.25, True), (0.0, True)])
def test_prelu_keeps_its_output_for_backward_and_frees_its_input_when_the_slope_is_positive(slope, keeps_input):
    """The memory saving: with a positive slope nothing holds the input after the forward."""
    ours, plain = prelu_pair(slope)
    source = paddle.randn([2, 3, 4, 5])
    source.stop_gradient = False
    x = source * 2.0  # an intermediate, like a BatchNorm output
    watch = weakref.ref(x)
    out = ours(x)
    del x
    gc.collect()
    assert (watch() is not None) == keeps_input
    out.sum().backward()
    reference = paddle.to_tensor(source.numpy(), stop_gradient=False)
    plain(reference * 2.0).sum().backward()
    assert np.array_equal(source.grad.numpy(), reference.grad.numpy())


def test_prelu_without_gradients_or_built_for_a_traced_graph_equals_paddles_prelu():
    ours, plain = prelu_pair(0.3)
    x = paddle.randn([2, 4, 6, 7])
    with paddle.no_grad():
        assert ours.variant == "leaky_relu" and np.array_equal(ours(x).numpy(), plain(x).numpy())
    traced, _ = prelu_pair(0.3, TRACED)
    assert traced.variant == "prelu"
    static = paddle.jit.to_static(traced.forward, full_graph=True)
    assert np.allclose(static(x).numpy(), plain(x).numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("shape, kernel, bias", [([2, 8, 17, 33], 3, False), ([1, 5, 6, 7], 3, True),
                                                  ([2, 4, 9, 4], 5, False)])
def test_depthwise_fast_backward_equals_paddles_depthwise_convolution(shape, kernel, bias):
    channels = shape[1]
    with layer_config.use(CPU):
        ours = layers.DepthwiseConv2D(channels, kernel, bias)
    assert ours.variant == "conv_backward"
    plain = paddle.nn.Conv2D(channels, channels, kernel, padding=kernel // 2, groups=channels,
                             bias_attr=None if bias else False)
    plain.set_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(plain.state_dict())
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape, dtype=np.float32)
    grad = rng.standard_normal(shape, dtype=np.float32)
    results = []
    for layer in (ours, plain):
        inputs = paddle.to_tensor(x, stop_gradient=False)
        out = layer(inputs)
        out.backward(paddle.to_tensor(grad))
        results.append([out.numpy(), inputs.grad.numpy(), layer.weight.grad.numpy()]
                       + ([layer.bias.grad.numpy()] if bias else []))
    (out, x_grad, w_grad, *b_grad), (ref_out, ref_x_grad, ref_w_grad, *ref_b_grad) = results
    assert np.array_equal(out, ref_out) if not bias else rel(out, ref_out) <= 1e-6
    assert rel(x_grad, ref_x_grad) <= 1e-6
    assert np.array_equal(w_grad, ref_w_grad)
    for ours_b, ref_b in zip(b_grad, ref_b_grad):
        assert rel(ours_b, ref_b) <= 1e-6


def test_depthwise_with_a_frozen_weight_or_input_still_gives_the_other_gradient():
    with layer_config.use(CPU):
        ours = layers.DepthwiseConv2D(3, 3)
    x = paddle.randn([1, 3, 8, 8])
    x.stop_gradient = False
    ours.weight.stop_gradient = True
    ours(x).sum().backward()
    assert x.grad is not None and ours.weight.grad is None
    ours.weight.stop_gradient = False
    frozen_input = paddle.randn([1, 3, 8, 8])
    ours(frozen_input).sum().backward()
    assert ours.weight.grad is not None


def step_gradients(model, losses, image, label):
    logits = model(image)
    total, terms = compute_losses(losses["types"], losses["coef"], logits, label)
    total.backward()
    grads = [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    model.clear_gradients()
    return [float(t) for t in terms], grads


def build(dtype: str):
    default = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        cfg = Config(CONFIG, opts=["model.scale=1.0", "model.drop_prob=0.0"])
        with layer_config.use(CPU):
            model = cfg.model
    finally:
        paddle.set_default_dtype(default)
    model.train()
    return model, cfg.loss


def fixed_batch(size, dtype):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((2, 3) + size).astype(dtype)
    label = rng.integers(0, 19, (2,) + size)
    label[rng.random(label.shape) < 0.1] = 255
    return paddle.to_tensor(image), paddle.to_tensor(label)


def fast_and_plain_steps(size, dtype, only_prelu: bool):
    """The step's losses and gradients as built for the CPU, then with Paddle's own ops: in the PReLU
    layers alone (``only_prelu``), or in every layer (the plain configuration)."""
    paddle.seed(0)
    model, losses = build(dtype)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    slopes = [p.name.startswith("p_re_lu") for p in model.parameters()]
    image, label = fixed_batch(size, dtype)
    fast = step_gradients(model, losses, image, label)
    assert {layer.variant for layer in model.sublayers() if isinstance(layer, layers.PReLU)} == {"leaky_relu"}
    if only_prelu:
        for layer in model.sublayers():
            if isinstance(layer, layers.PReLU):
                layer.configure(PLAIN)
    else:
        configured = layer_config.configure_layers(model, PLAIN)
        assert {getattr(layer, "variant", None) for layer in configured} == {None, "prelu", "depthwise_conv2d",
                                                                             "interpolate"}
    model.set_state_dict(state)  # BatchNorm statistics moved in the first step
    plain = step_gradients(model, losses, image, label)
    assert [g is None for g in fast[1]] == [g is None for g in plain[1]]
    return fast, plain, slopes


@pytest.mark.parametrize("size", [(64, 128), (45, 83)])
def test_a_training_step_computes_the_plain_formulations_losses_and_gradients(size):
    """float32, as trained: the losses and every gradient but the PReLU slopes' within 1e-5 (relative,
    per tensor; the forms differ in float rounding order only). A slope's gradient is
    one sum over a whole activation map, with cancellation: ``prelu``'s kernel and ours sum in another
    order and differ by its float32 round-off, measured up to 5e-4; the float64 test below shows the
    formulas agree."""
    (fast_terms, fast), (plain_terms, plain), slopes = fast_and_plain_steps(size, "float32", only_prelu=True)
    assert np.allclose(fast_terms, plain_terms, rtol=1e-6, atol=0)
    errors = [(rel(f, p), i) for i, (f, p) in enumerate(zip(fast, plain)) if f is not None]
    assert len(errors) > 100 and sum(slopes) > 20
    assert max(e for e in errors if not slopes[e[1]]) <= (1e-5, len(fast))
    assert max(e for e in errors if slopes[e[1]]) <= (2e-3, len(fast))


def test_in_float64_the_fast_step_and_the_plain_configurations_agree_to_round_off():
    """The comparison in float64, where round-off is ~1e-13, with every layer in Paddle's own op (the
    depthwise convolutions' and the resizes' forms too; in float32 their rounding differences reach
    3e-3, through BatchNorm's gradient, on the weights of the BatchNorms before the depthwise branches):
    every gradient, slopes included, equal to 1e-9, so a wrong formula (a slope gradient off by any
    factor) cannot hide in float32 noise."""
    (fast_terms, fast), (plain_terms, plain), _ = fast_and_plain_steps((45, 83), "float64", only_prelu=False)
    assert np.allclose(fast_terms, plain_terms, rtol=1e-12, atol=0)
    assert fast[0].dtype == np.float64
    assert max(rel(f, p) for f, p in zip(fast, plain) if f is not None) <= 1e-9
