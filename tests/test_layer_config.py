"""The layer configuration (paddleseg/models/layer_config.py): a model built in each configuration has
the layer forms that configuration names, whatever device Paddle is set to; its forward asks neither
the device nor the execution mode; a configured copy changes the forms and nothing else."""
import ast
import contextlib
import inspect
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddleseg.core.static_training import StaticForward
from paddleseg.cvlibs import Config
from paddleseg.models import EESPNetHead, ESPNetV2, layer_config, layers, recompute
from paddleseg.models.backbones import EESPNet
from paddleseg.models.layer_config import Configurable, LayerConfig, configure_layers, configured_copy

from conftest import REPO

CPU = LayerConfig(device="cpu")
GPU = LayerConfig(device="gpu")
TRACED = LayerConfig.for_tracing()
# configuration -> the form each kind of layer takes in it
EXPECTED = {
    CPU: {"PReLU": "leaky_relu", "DepthwiseConv2D": "conv_backward", "Resize": "matmul_where_cheap"},
    GPU: {"PReLU": "prelu", "DepthwiseConv2D": "depthwise_conv2d", "Resize": "interpolate"},
    TRACED: {"PReLU": "prelu", "DepthwiseConv2D": "depthwise_conv2d", "Resize": "gather"},
}
MODEL_MODULES = ("layers", "espnetv2", "recompute", "backbones/eespnet")


def build(config: LayerConfig, form: str = "upstream"):
    paddle.seed(0)
    with layer_config.use(config):
        if form == "upstream":
            return ESPNetV2(num_classes=5, scale=0.5)
        return EESPNetHead(EESPNet(scale=0.5), num_classes=5)


def without_gradient(model) -> list:
    """Trainable parameters a backward pass left without a gradient."""
    return [name for name, p in model.named_parameters() if not p.stop_gradient and p.grad is None]


# the strided EESP units of the down-samplers return before their activation (eespnet.EESP), so its
# slope gets no gradient in any form
UNUSED = [f"backbone.{level}.eesp._act._weight" for level in ("level2", "level3_0", "level4_0")]


def variants(model) -> dict:
    """{layer class: {variant: count}} over the configurable layers that have variants."""
    found = {}
    for layer in model.sublayers(include_self=True):
        if hasattr(layer, "variant"):
            found.setdefault(type(layer).__name__, Counter())[layer.variant] += 1
    return found


@pytest.mark.parametrize("form", ["upstream", "reference"])
@pytest.mark.parametrize("config", [CPU, GPU, TRACED], ids=["cpu", "gpu", "traced"])
def test_a_model_built_in_a_configuration_has_its_layer_forms(config, form):
    model = build(config, form)
    found = variants(model)
    assert {name: set(counts) for name, counts in found.items()} == {k: {v} for k, v in EXPECTED[config].items()}
    assert sum(found["PReLU"].values()) > 40 and sum(found["DepthwiseConv2D"].values()) > 40
    configured = [layer for layer in model.sublayers(include_self=True) if isinstance(layer, Configurable)]
    assert model in configured and all(layer.layer_config == config for layer in configured)


def test_every_declared_form_is_the_choice_of_some_configuration():
    chosen = {}
    for config in (CPU, GPU, TRACED):
        for name, counts in variants(build(config)).items():
            chosen.setdefault(name, set()).update(counts)
    assert chosen == {name: set(getattr(layers, name).VARIANTS) for name in chosen}


def test_the_configuration_reaches_models_built_from_a_yaml_config():
    cfg = Config(REPO / "configs" / "espnetv2" / "espnetv2_cityscapes_1024x512_120k.yml", opts=["model.scale=0.5"])
    with layer_config.use(TRACED):
        model = cfg.model
    assert {name: set(counts) for name, counts in variants(model).items()} == {
        k: {v} for k, v in EXPECTED[TRACED].items()}


@pytest.mark.parametrize("device, expected", [("cpu", CPU), ("gpu:0", GPU), ("gpu:1", GPU), ("xpu:0", GPU)])
def test_without_a_configuration_layers_take_the_eager_forms_of_paddles_device_when_built(monkeypatch, device,
                                                                                        expected):
    monkeypatch.setattr(paddle, "get_device", lambda: device)
    assert layer_config.current() == expected
    layer = layers.PReLU()
    assert layer.variant == EXPECTED[expected]["PReLU"] and layer.layer_config == expected
    with layer_config.use(TRACED):
        assert layer_config.current() == TRACED and layers.PReLU().variant == "prelu"
    assert layer_config.current() == expected


def test_use_nests_and_restores_after_an_error():
    outer = layer_config.current()
    with layer_config.use(GPU):
        with pytest.raises(RuntimeError):
            with layer_config.use(TRACED):
                assert layer_config.current() == TRACED
                raise RuntimeError("while building")
        assert layer_config.current() == GPU
    assert layer_config.current() == outer


def test_a_configuration_names_a_known_device():
    with pytest.raises(ValueError, match="device must be one of cpu, gpu, got 'tpu'"):
        LayerConfig(device="tpu")
    with pytest.raises(TypeError, match="needs a LayerConfig, got dict"):
        with layer_config.use({"device": "cpu"}):
            pass


@pytest.mark.parametrize("form", ["upstream", "reference"])
def test_every_configuration_has_the_same_state_dict_keys(form):
    keys = [list(build(config, form).state_dict()) for config in (CPU, GPU, TRACED)]
    assert keys[0] == keys[1] == keys[2] and len(keys[0]) > 300


# ------------------------------------------------------------------------------------------------
# forward asks no device or mode question
# ------------------------------------------------------------------------------------------------
QUERIES = [(paddle, "get_device"), (paddle.device, "get_device"), (paddle, "is_compiled_with_cuda"),
           (paddle.device, "is_compiled_with_cuda"), (paddle, "in_dynamic_mode"),
           (paddle.device, "get_all_device_type")]


def _from_this_project(frame) -> bool:
    return frame is not None and frame.f_globals.get("__name__", "").startswith("paddleseg")


@contextlib.contextmanager
def device_queries_fail():
    """Every device or execution-mode query made by this project's code raises; Paddle's own internals
    (which read ``Tensor.place`` and their own mode checks inside ops) are left alone."""
    asked = []

    def guard(name, original):
        def query(*args, **kwargs):
            if _from_this_project(sys._getframe(1)):
                asked.append(name)
                raise AssertionError(f"{name} asked during forward")
            return original(*args, **kwargs)
        return query

    place = paddle.Tensor.place

    def read_place(tensor):
        if _from_this_project(sys._getframe(1)):
            asked.append("Tensor.place")
            raise AssertionError("Tensor.place asked during forward")
        return place.__get__(tensor)

    saved = [(owner, name, getattr(owner, name)) for owner, name in QUERIES]
    try:
        for owner, name, original in saved:
            setattr(owner, name, guard(name, original))
        paddle.Tensor.place = property(read_place)
        yield asked
    finally:
        paddle.Tensor.place = place
        for owner, name, original in saved:
            setattr(owner, name, original)


def test_the_guard_catches_a_query_from_this_projects_code():
    """The guard itself can fail: the project's own call of a query raises, Paddle's does not."""
    x = paddle.ones([2])
    with device_queries_fail() as asked:
        with pytest.raises(AssertionError, match="get_device asked"):
            layer_config.current()
        assert paddle.ones_like(x).shape == [2]  # full_like reads x.place inside Paddle
    assert asked == ["get_device"]


@pytest.mark.parametrize("config", [CPU, GPU, TRACED], ids=["cpu", "gpu", "traced"])
def test_forward_and_backward_ask_no_device_or_mode_question(config):
    model = build(config)
    model.train()
    model.set_recompute(config is CPU)  # the recomputed blocks' switch is read in forward too
    x = paddle.randn([2, 3, 45, 61])
    with device_queries_fail() as asked:
        outputs = model(x)
        sum(out.mean() for out in outputs).backward()
        model.eval()
        with paddle.no_grad():
            logits = model(x)[0]
    assert asked == [] and logits.shape == [2, 5, 45, 61]
    assert without_gradient(model) == UNUSED


def forward_sources():
    root = Path(layers.__file__).parent
    for name in MODEL_MODULES:
        path = root / f"{name}.py"
        yield path, ast.parse(path.read_text())


def test_no_model_module_asks_the_device_or_mode_anywhere():
    """The source-level statement of the same: only layer_config.py may ask Paddle's device."""
    banned = {"in_dynamic_mode", "is_cpu_place", "is_gpu_place", "place", "get_device", "is_compiled_with_cuda",
              "in_dygraph_mode", "in_pir_mode", "in_dynamic_or_pir_mode"}
    found = [(path.name, node.lineno, node.attr) for path, tree in forward_sources() for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in banned]
    assert found == []


# ------------------------------------------------------------------------------------------------
# a built model in another configuration
# ------------------------------------------------------------------------------------------------
def test_a_configured_copy_has_the_new_forms_and_the_same_values_and_the_model_keeps_its_own():
    model = build(CPU)
    copy = configured_copy(model, TRACED)
    assert {n: set(c) for n, c in variants(copy).items()} == {k: {v} for k, v in EXPECTED[TRACED].items()}
    assert {n: set(c) for n, c in variants(model).items()} == {k: {v} for k, v in EXPECTED[CPU].items()}
    for (name, ours), (copy_name, theirs) in zip(model.state_dict().items(), copy.state_dict().items()):
        assert name == copy_name and ours is not theirs and np.array_equal(ours.numpy(), theirs.numpy())
    model.eval()
    copy.eval()
    x = paddle.randn([1, 3, 37, 50])
    with paddle.no_grad():
        eager, traced_form = model(x)[0].numpy(), copy(x)[0].numpy()
    assert np.linalg.norm(traced_form - eager) <= 1e-5 * np.linalg.norm(eager)  # float rounding of the forms


def test_a_copy_that_shares_tensors_trains_the_models_parameters():
    model = build(CPU)
    twin = configured_copy(model, TRACED, share_tensors=True)
    assert all(a is b for a, b in zip(model.parameters(), twin.parameters()))
    assert all(a is b for a, b in zip(model.buffers(), twin.buffers()))
    twin.train()
    sum(out.mean() for out in twin(paddle.randn([2, 3, 32, 48]))).backward()
    assert without_gradient(model) == UNUSED


def test_configure_layers_reaches_every_configurable_layer_and_only_those():
    model = build(CPU)
    configured = configure_layers(model, GPU)
    everything = model.sublayers(include_self=True)
    assert configured == [layer for layer in everything if isinstance(layer, Configurable)]
    assert len(configured) > 100 and len(configured) < len(everything)
    assert all(layer.layer_config == GPU for layer in configured)


def test_a_model_built_for_a_traced_graph_never_recomputes():
    model = build(TRACED)
    model.train()
    model.set_recompute(True, head=True)
    blocks = [layer for layer in model.sublayers(include_self=True) if getattr(layer, "recompute", False)]
    assert blocks and not any(recompute.applies(layer) for layer in blocks)
    eager = build(CPU)
    eager.train()
    eager.set_recompute(True, head=True)
    assert all(recompute.applies(layer) for layer in eager.sublayers(include_self=True)
               if getattr(layer, "recompute", False))


def test_static_training_traces_a_twin_in_the_traced_forms_that_trains_the_model():
    model = build(CPU)
    static = StaticForward(model)
    assert {n: set(c) for n, c in variants(static.model).items()} == {k: {v} for k, v in EXPECTED[TRACED].items()}
    assert {n: set(c) for n, c in variants(model).items()} == {k: {v} for k, v in EXPECTED[CPU].items()}
    assert [id(p) for p in static.parameters()] == [id(p) for p in model.parameters()]


def test_an_interpolate_resize_is_paddles_bilinear_interp_exactly():
    with layer_config.use(GPU):
        resize = layers.Resize()
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 2, 6, 9)).astype("float32"))
    like = paddle.zeros([1, 1, 13, 17])
    ref = F.interpolate(x, size=[13, 17], mode="bilinear", align_corners=True)
    assert np.array_equal(resize(x, like).numpy(), ref.numpy())
    assert inspect.signature(layers.Resize).parameters == {}  # nothing but the configuration chooses
