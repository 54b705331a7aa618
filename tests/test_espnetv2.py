import json

import numpy as np
import paddle
import pytest

import paddleseg  # noqa: F401
from paddleseg.cvlibs import Config
from paddleseg.models import EESPNetHead, ESPNetV2
from paddleseg.models.backbones import EESPNet
from paddleseg.models.backbones.eespnet import branch_dilations, level_channels

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


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_released_checkpoint_formats_reproduce_the_reference_logits(name):
    """Tolerance 1e-5 relative: both sides are float32 with the same op order; we get ~0."""
    weights = fixture_path("espnetv2", name, "model.pdparams")
    cfg = Config(REPO / CONFIGS[name], opts=["model.drop_prob=0.0"])
    model = cfg.model
    paddleseg.utils.load_entire_model(model, weights)
    model.eval()
    x = np.load(fixture_path("espnetv2", name, "input.npy"))
    ref = np.load(fixture_path("espnetv2", name, "logits.npy"))
    with paddle.no_grad():
        out = model(paddle.to_tensor(x))
    assert len(out) == 1
    got = out[0].numpy()
    assert got.shape == ref.shape
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-5


@pytest.mark.parametrize("height, width", [(750, 1000), (375, 500), (513, 1025), (97, 131)])
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


def test_export_with_dynamic_shape_has_no_while_ops_and_no_same_padding(tmp_path):
    model = ESPNetV2(num_classes=19, scale=0.5)
    model.eval()
    static = paddle.jit.to_static(model, input_spec=[paddle.static.InputSpec([None, 3, None, None], "float32")],
                                  full_graph=True)
    paddle.jit.save(static, str(tmp_path / "model"))
    graph = (tmp_path / "model.json").read_text()
    json.loads(graph)  # a valid PIR program
    assert "pd_op.while" not in graph
    assert '"SAME"' not in graph and "SAME" not in graph
    loaded = paddle.jit.load(str(tmp_path / "model"))
    x = paddle.randn([1, 3, 75, 100])
    with paddle.no_grad():
        ours = model(x)[0].numpy()
        exported = loaded(x)
    exported = (exported[0] if isinstance(exported, (list, tuple)) else exported).numpy()
    assert exported.shape == (1, 19, 75, 100)
    assert np.linalg.norm(exported - ours) / np.linalg.norm(ours) < 1e-5
