"""paddleseg.core.export and export.py: the three output ops, deploy.yaml, and three-way parity
(dygraph vs Paddle Inference with oneDNN on vs ONNX Runtime) on sizes that are not multiples of 32.

Parity tolerance: ‖a − b‖ / ‖b‖ ≤ 1e-4 on logits (the backends sum in different orders; measured
~1e-6) and identical argmax on ≥ 99.9% of pixels (ties can flip under float rounding)."""
import numpy as np
import paddle
import pytest
import yaml

from conftest import REPO, fixture_path
from paddleseg.core.export import export_model, per_channel_prelu
from paddleseg.errors import UserError
from paddleseg.models import ESPNetV2

CONFIG = REPO / "configs" / "espnetv2" / "espnetv2_cityscapes_1024x512_120k.yml"


def small_model():
    paddle.seed(3)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    model.eval()
    return model


def paddle_inference(result, x):
    from paddle import inference

    config = inference.Config(str(result.model_file), str(result.params_file))
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(2)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def onnx_runtime(result, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.onnx_file), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_per_channel_prelu_is_exact_and_changes_every_slope():
    model = small_model()
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 3, 45, 61)).astype("float32"))
    ref = model(x)[0].numpy()
    changed = per_channel_prelu(model)
    assert changed >= 40  # every PReLU on the eval path (a few serve only unused shortcuts)
    assert changed == sum(isinstance(l, paddle.nn.PReLU) and l._weight.shape[0] > 1 for l in model.sublayers())
    np.testing.assert_array_equal(model(x)[0].numpy(), ref)


@pytest.mark.parametrize("output_op", ["argmax", "softmax", "none"])
def test_export_output_ops_in_paddle_inference(tmp_path, output_op):
    model = small_model()
    x = np.random.default_rng(1).standard_normal((1, 3, 45, 61)).astype("float32")
    logits = model(paddle.to_tensor(x))[0].numpy()
    result = export_model(model, tmp_path, transforms=[{"type": "Normalize"}], num_classes=19, output_op=output_op)
    out = paddle_inference(result, x)
    if output_op == "argmax":
        assert out.dtype == np.int32 and out.shape == (1, 45, 61)
        assert (out == logits.argmax(1)).mean() >= 0.999
    elif output_op == "softmax":
        assert out.shape == (1, 19, 45, 61)
        np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)
        assert (out.argmax(1) == logits.argmax(1)).mean() >= 0.999
    else:
        assert rel(out, logits) <= 1e-4
    deploy = yaml.safe_load(result.deploy_file.read_text())["Deploy"]
    assert deploy["model"] == "model.json" and deploy["params"] == "model.pdiparams"
    assert deploy["output_op"] == output_op and deploy["input_shape"] == [-1, 3, -1, -1]
    assert deploy["transforms"] == [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}]
    assert deploy["label_ids"][0] == 7 and deploy["palette"][13] == [0, 0, 142]


def test_export_leaves_the_model_unchanged(tmp_path):
    model = small_model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    export_model(model, tmp_path, transforms=[{"type": "Normalize"}], num_classes=19)
    assert all(np.array_equal(before[k], v.numpy()) for k, v in model.state_dict().items())
    assert model.backbone.level1._prelu.act_func._weight.shape == [1]


def test_bad_input_shape_and_output_op_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="input_shape"):
        export_model(small_model(), tmp_path, transforms=[], num_classes=19, input_shape=[1, 4, 8, 8])
    with pytest.raises(UserError, match="output_op"):
        export_model(small_model(), tmp_path, transforms=[], num_classes=19, output_op="max")


@pytest.mark.slow
def test_three_way_parity_on_odd_and_large_sizes(tmp_path):
    model = ESPNetV2(19, scale=2.0, drop_prob=0.0)
    model.set_state_dict(paddle.load(str(fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams"))))
    model.eval()
    result = export_model(model, tmp_path, transforms=[{"type": "Normalize"}], num_classes=19,
                          output_op="none", onnx=True)
    for shape in [(1, 3, 375, 500), (1, 3, 512, 1024)]:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype("float32")
        dygraph = model(paddle.to_tensor(x))[0].numpy()
        for name, out in [("paddle inference", paddle_inference(result, x)), ("onnxruntime", onnx_runtime(result, x))]:
            assert out.shape == dygraph.shape, name
            assert rel(out, dygraph) <= 1e-4, name
            assert (out.argmax(1) == dygraph.argmax(1)).mean() >= 0.999, name


@pytest.mark.slow
def test_export_script_writes_onnx_and_static_model(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    import export

    code = export.main(["--config", str(CONFIG), "--save_dir", str(tmp_path), "--onnx", "--without_argmax",
                        "--opts", "model.scale=0.5", "--input_shape", "1", "3", "64", "128"])
    assert code == 0
    deploy = yaml.safe_load((tmp_path / "deploy.yaml").read_text())["Deploy"]
    assert deploy["output_op"] == "none" and deploy["onnx"] == "model.onnx" and deploy["onnx_opset"] == 13
    assert deploy["input_shape"] == [1, 3, 64, 128]
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 128)).astype("float32")
    from paddleseg.core.export import ExportResult
    result = ExportResult(tmp_path, tmp_path / "model.json", tmp_path / "model.pdiparams", tmp_path / "deploy.yaml",
                          tmp_path / "model.onnx")
    assert rel(onnx_runtime(result, x), paddle_inference(result, x)) <= 1e-4


def test_onnx_prelu_nodes_become_exact_leaky_relus(tmp_path):
    import onnx

    model = small_model()
    result = export_model(model, tmp_path, transforms=[{"type": "Normalize"}], num_classes=19, output_op="none",
                          onnx=True)
    ops = [node.op_type for node in onnx.load(str(result.onnx_file)).graph.node]
    assert "PRelu" not in ops and ops.count("LeakyRelu") >= 40
    x = np.random.default_rng(2).standard_normal((1, 3, 45, 61)).astype("float32")
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x))[0].numpy()
    assert rel(onnx_runtime(result, x), ref) < 1e-5
