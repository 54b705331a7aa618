import json
import math
import re

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import paddleseg  # noqa: F401
from paddleseg.checkpoint import load_entire_model
from paddleseg.cvlibs import Config
from paddleseg.models import EESPNetHead, ESPNetV2
from paddleseg.models.backbones import EESPNet
from paddleseg.models.backbones.eespnet import branch_dilations, level_channels
from paddleseg.models.layer_config import LayerConfig, configured_copy
from paddleseg.models.layers import StridedDilatedConv2D, conv2d_same

from conftest import REPO, fixture_path

CONFIGS = {
    "paddleseg_scale2": "configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml",
    "seed_scale2": "configs/espnet_cityscapes_1024_512_120k_x2.yml",
}


def count(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


@pytest.mark.parametrize("scale, expected", [(0.5, 102_534), (1.0, 346_998), (2.0, 1_265_526)])
def test_parameter_counts_of_the_upstream_form(scale, expected):
    assert count(ESPNetV2(num_classes=19, scale=scale)) == expected


def test_parameter_count_of_the_reference_form():
    assert count(EESPNetHead(EESPNet(scale=2.0, drop_prob=0.0), num_classes=19, drop_prob=0.0)) == 1_265_532


@pytest.mark.parametrize("scale, widths", [(0.5, (16, 32, 64, 128)), (1.0, (32, 64, 128, 256)),
                                           (1.5, (32, 96, 192, 384)), (2.0, (32, 128, 256, 512))])
def test_level_widths_follow_the_scale(scale, widths):
    assert level_channels(scale) == widths
    assert tuple(EESPNet(scale=scale).out_channels) == widths


def test_branch_dilations_follow_the_kernel_caps():
    assert branch_dilations(4, 13) == [1, 2, 3, 4]
    assert branch_dilations(4, 7) == [1, 1, 2, 3]  # 9 is over the cap and falls back to 3
    assert branch_dilations(4, 7, dilated=False) == [1, 1, 1, 1]
    model = ESPNetV2(scale=0.5, dilated=True)
    assert [c._dilation[0] for c in model.backbone.level4[0].spp_modules] == [1, 1, 2, 3]
    assert [c._dilation[0] for c in model.backbone.level3[0].spp_modules] == [1, 2, 3, 4]
    assert count(model) == 102_534


@pytest.mark.parametrize("size", ["", "_224x448"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_released_checkpoint_formats_reproduce_the_reference_logits(name, size):
    """Tolerance 1e-5 relative: both sides are float32 with the same op order; we get 0. At 224x448
    the head's pyramid pooling meets odd sizes (7x14, 4x7), where 'SAME' pads [1, 1]; a fixed
    padding was off by 2e-2 there."""
    weights = fixture_path("espnetv2", name, "model.pdparams")
    cfg = Config(REPO / CONFIGS[name], opts=["model.drop_prob=0.0"])
    model = cfg.model
    load_entire_model(model, weights)
    model.eval()
    x = np.load(fixture_path("espnetv2", name, f"input{size}.npy"))
    ref = np.load(fixture_path("espnetv2", name, f"logits{size}.npy"))
    with paddle.no_grad():
        out = model(paddle.to_tensor(x))
    assert len(out) == 1
    got = out[0].numpy()
    assert got.shape == ref.shape
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-5


@pytest.mark.parametrize("height, width", [(750, 1000), (375, 500), (513, 1025), (97, 131), (257, 513)])
def test_any_input_size_gives_logits_of_that_size_in_eval_and_train(height, width):
    paddle.seed(0)
    model = ESPNetV2(num_classes=5, scale=0.5)
    x = paddle.randn([1, 3, height, width])
    model.eval()
    with paddle.no_grad():
        (logits,) = model(x)
    assert list(logits.shape) == [1, 5, height, width]
    assert np.isfinite(logits.numpy()).all()
    model.train()
    main, aux = model(x)
    assert list(main.shape) == [1, 5, height, width] and list(aux.shape) == [1, 5, height, width]


def test_odd_sizes_work_at_scale_2():
    model = EESPNetHead(EESPNet(scale=2.0), num_classes=19)
    model.eval()
    with paddle.no_grad():
        (logits,) = model(paddle.randn([2, 3, 97, 131]))
    assert list(logits.shape) == [2, 19, 97, 131]


@pytest.mark.parametrize("dilation", [1, 2, 4])
@pytest.mark.parametrize("height, width", [(9, 12), (12, 9), (17, 17), (1, 2)])
def test_strided_convolutions_centre_their_windows_as_same_does_at_odd_and_even_sizes(height, width, dilation):
    """Output o of a stride-2 'SAME' convolution is centred on input 2o + 1 - size % 2 (pads [0, 1] on
    an even size, [1, 1] on an odd one): Paddle's own 'SAME' for dilation 1, the same rule with the
    dilation kept otherwise. Checked against the stride-1 convolution sampled at those centres."""
    paddle.seed(dilation)
    strided = conv2d_same(4, 4, 3, stride=2, dilation=dilation, groups=4)
    assert isinstance(strided, StridedDilatedConv2D) == (dilation > 1)
    dense = nn.Conv2D(4, 4, 3, padding=dilation, dilation=dilation, groups=4, bias_attr=False)
    dense.weight.set_value(strided.weight)
    x = paddle.randn([2, 4, height, width])
    expected = dense(x).numpy()[:, :, 1 - height % 2::2, 1 - width % 2::2]
    out = strided(x).numpy()
    assert out.shape == (2, 4, math.ceil(height / 2), math.ceil(width / 2))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_training_aux_output_is_the_level3_class_map_upsampled_level_by_level():
    """The references' hierarchical upsampling: three bilinear (align_corners) steps, to level 2's, level
    1's and the input's size, not one 8x step (2e-2 away here). 1e-6: the composed matrices round
    differently from three F.interpolate calls (measured 6e-8)."""
    paddle.seed(0)
    model = ESPNetV2(num_classes=5, scale=0.5, drop_prob=0.0)
    model.train()
    seen = {}

    def keep(name):
        def hook(layer, inputs, output):
            seen[name] = output
        return hook

    model.act_l3.register_forward_post_hook(keep("classes_l3"))
    model.backbone.register_forward_post_hook(keep("levels"))
    x = paddle.randn([2, 3, 97, 131])
    _, aux = model(x)
    expected = seen["classes_l3"]
    for like in (seen["levels"][1], seen["levels"][0], x):
        expected = F.interpolate(expected, size=like.shape[2:], mode="bilinear", align_corners=True)
    assert expected.shape == aux.shape == [2, 5, 97, 131]
    assert np.linalg.norm(aux.numpy() - expected.numpy()) <= 1e-6 * np.linalg.norm(expected.numpy())


BAD_HEAD_ARGUMENTS = [("num_classes", 0), ("num_classes", -3), ("num_classes", 2.5), ("num_classes", True),
                      ("drop_prob", 1.0), ("drop_prob", -0.1), ("drop_prob", float("nan")), ("drop_prob", "0.1")]
BAD_SCALES = [("scale", 3.0), ("scale", 0.75), ("scale", 0), ("scale", -2.0), ("scale", float("nan")),
              ("scale", float("inf")), ("scale", True), ("scale", "2.0")]


def raises_naming(name, value):
    return pytest.raises(ValueError, match=rf"\b{name}\b.*{re.escape(repr(value))}")


@pytest.mark.parametrize("name, value", BAD_HEAD_ARGUMENTS + BAD_SCALES + [("in_channels", 0)])
def test_espnetv2_rejects_bad_arguments_naming_argument_and_value(name, value):
    with raises_naming(name, value):
        ESPNetV2(**{name: value})


@pytest.mark.parametrize("name, value", BAD_HEAD_ARGUMENTS)
def test_eespnet_head_rejects_bad_arguments_naming_argument_and_value(name, value):
    with raises_naming(name, value):
        EESPNetHead(EESPNet(scale=0.5), **{name: value})


@pytest.mark.parametrize("name, value", BAD_SCALES + [("drop_prob", 1.5), ("in_channels", 1.0)])
def test_eespnet_rejects_bad_arguments_naming_argument_and_value(name, value):
    with raises_naming(name, value):
        EESPNet(**{name: value})


def test_supported_scales_are_accepted_as_any_real_number_type():
    assert EESPNet(scale=np.float64(0.5)).out_channels == level_channels(0.5)
    assert EESPNet(scale=2).out_channels == (32, 128, 256, 512)
    assert ESPNetV2(num_classes=np.int64(3), scale=0.5, drop_prob=0).num_classes == 3


def test_reference_form_state_dict_uses_the_reproduction_key_names_and_round_trips():
    a = EESPNetHead(EESPNet(scale=0.5), num_classes=19)
    keys = list(a.state_dict())
    assert "backbone.level1._bn.weight" in keys and "backbone.level1._act._weight" in keys
    assert "backbone.level2.shortcut_layer.0._batch_norm.weight" in keys
    assert "backbone.level2.shortcut_layer.0._conv.bias" in keys
    assert not any("_prelu.act_func" in k for k in keys)
    paddle.seed(1)
    b = EESPNetHead(EESPNet(scale=0.5), num_classes=19)
    b.set_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), b.state_dict()[k].numpy(), err_msg=k)


def graph_ops(node, kinds):
    """(op name, {attribute: value}) of every op of a PIR JSON program whose name ends in one of ``kinds``."""
    if isinstance(node, dict):
        if str(node.get("#", "")).split(".")[-1] in kinds and "A" in node:
            def value(at):
                data = at["D"]
                return [v["D"] for v in data] if at["#"].endswith("a_array") else data
            yield node["#"].split(".")[-1], {a["N"]: value(a["AT"]) for a in node["A"]}
        for child in node.values():
            yield from graph_ops(child, kinds)
    elif isinstance(node, list):
        for child in node:
            yield from graph_ops(child, kinds)


@pytest.mark.slow
@pytest.mark.parametrize("dilated", [False, True])
def test_export_has_no_while_ops_and_same_padding_only_where_undilated(tmp_path, dilated):
    """'SAME' (resolved per size at run time) pads the stride-2 convolutions and the pyramid pooling;
    Paddle's 'SAME' resets the dilation to 1, so no dilated convolution may use it: dilated stride-2
    branches pad [d - 1, d] and get one more zero row/column by concat on odd sizes, with no pad op
    (paddle2onnx fills converted pads with garbage). The exported graph equals the eager model at a
    size that is odd at most levels (75 -> 38 -> 19 -> 10 -> 5; 99 -> 50 -> 25 -> 13 -> 7)."""
    paddle.seed(2)
    model = ESPNetV2(num_classes=19, scale=0.5, dilated=dilated)
    model.eval()
    x = paddle.randn([1, 3, 75, 99])
    with paddle.no_grad():
        eager = model(x)[0].numpy()
    traced = configured_copy(model, LayerConfig.for_tracing())  # to_static converts it in place
    static = paddle.jit.to_static(traced, input_spec=[paddle.static.InputSpec([None, 3, None, None], "float32")],
                                  full_graph=True)
    paddle.jit.save(static, str(tmp_path / "model"))
    text = (tmp_path / "model.json").read_text()
    assert "pd_op.while" not in text
    ops = list(graph_ops(json.loads(text), {"conv2d", "depthwise_conv2d", "pool2d"}))
    same = [(name, attrs) for name, attrs in ops if attrs["padding_algorithm"] == "SAME"]
    assert all(attrs.get("dilations", [1, 1]) == [1, 1] for _, attrs in same)
    strided = [attrs for name, attrs in ops if name != "pool2d" and attrs["strides"] == [2, 2]]
    assert len(strided) == 1 + 3 * 4  # level1 and the 4 branches of each down-sampler
    dilated_strided = [a for a in strided if a["dilations"] != [1, 1]]
    assert all(a["padding_algorithm"] == "EXPLICIT" and a["paddings"] == [d - 1, d, d - 1, d]
               for a in dilated_strided for d in a["dilations"][:1])
    assert not list(graph_ops(json.loads(text), {"pad", "pad3d"}))
    assert len(dilated_strided) == (9 if dilated else 0)  # dilations [1, 2, 3, 4] in each down-sampler
    assert sum(name == "pool2d" and attrs["padding_algorithm"] == "SAME" for name, attrs in ops) == 4
    with paddle.no_grad():
        exported = paddle.jit.load(str(tmp_path / "model"))(x)
    exported = (exported[0] if isinstance(exported, (list, tuple)) else exported).numpy()
    assert exported.shape == (1, 19, 75, 99)
    assert np.linalg.norm(exported - eager) / np.linalg.norm(eager) < 1e-5


@pytest.mark.parametrize("form, shortcut", [("paddleseg_scale2", "prelu"), ("seed_scale2", "relu")])
def test_backbone_pretrained_takes_the_backbone_of_a_whole_released_checkpoint(form, shortcut):
    from paddleseg.checkpoint import safe_load
    from paddleseg.models.backbones.eespnet import EESPNet

    path = fixture_path("espnetv2", form, "model.pdparams")
    backbone = EESPNet(scale=2.0, drop_prob=0.0, input_shortcut=shortcut, pretrained=str(path))
    whole = safe_load(path)
    own = backbone.state_dict()
    assert len(own) == sum(k.startswith("backbone.") for k in whole)
    for key, value in own.items():
        from paddleseg.models.backbones.eespnet import reference_key

        source = [k for k in whole if k[len("backbone."):] in (key, reference_key(key)) and k.startswith("backbone.")]
        assert len(source) == 1, key
        np.testing.assert_array_equal(value.numpy(), whole[source[0]], err_msg=key)
