"""paddleseg.core.export and export.py: the three output ops, deploy.yaml, and three-way parity
(dygraph vs Paddle Inference with oneDNN on vs ONNX Runtime) on sizes that are not multiples of 32.

Parity tolerance: ‖a − b‖ / ‖b‖ ≤ 1e-4 on logits (the backends sum in different orders; measured
~1e-6) and identical argmax on ≥ 99.9% of pixels (ties can flip under float rounding)."""
import numpy as np
import paddle
import pytest
import yaml

from paddleseg.core.export import EXPORT_KIND, export_model, per_channel_prelu
from paddleseg.deploy.model_files import sha256
from paddleseg.errors import UserError
from paddleseg.models import ESPNetV2
from paddleseg.utils.output_targets import write_marker

from conftest import REPO, fixture_path

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
    assert changed == sum(isinstance(layer, paddle.nn.PReLU) and layer._weight.shape[0] > 1 for layer in model.sublayers())
    np.testing.assert_array_equal(model(x)[0].numpy(), ref)


@pytest.mark.slow
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
    assert deploy["digests"] == {n: sha256(result.save_dir / n) for n in ("model.json", "model.pdiparams")}


@pytest.mark.slow
def test_export_leaves_the_model_unchanged_and_records_the_data_sets_palette(tmp_path):
    model = small_model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    colours = [[i, 2 * i, 255 - i] for i in range(19)]
    export_model(model, tmp_path, transforms=[{"type": "Normalize"}], num_classes=19, palette=colours)
    assert yaml.safe_load((tmp_path / "deploy.yaml").read_text())["Deploy"]["palette"] == colours
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


@pytest.mark.slow
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


# --- atomic export: verified in a work folder, then swapped in whole (paddleseg.utils.atomic) ---

def old_export(folder):
    """A stand-in earlier export: only names export.py writes (and its marker), with contents no export
    would write."""
    folder.mkdir()
    for name in ("model.json", "model.pdiparams", "deploy.yaml", "model.onnx"):
        (folder / name).write_text(f"old {name}")
    write_marker(folder, EXPORT_KIND)
    return contents(folder)


def contents(folder):
    return {p.name: p.read_text(errors="replace") for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_export_is_verified_in_a_work_folder_then_replaces_every_file(tmp_path, monkeypatch):
    import paddleseg.core.export as export_module

    folder = tmp_path / "export"
    old = old_export(folder)
    seen = []
    real_verify = export_module.verify_export

    def spy(files, *args):
        seen.append((files.model_file.parent, contents(folder)))
        real_verify(files, *args)

    monkeypatch.setattr(export_module, "verify_export", spy)
    result = export_model(small_model(), folder, transforms=[{"type": "Normalize"}], num_classes=19)
    work, during = seen[0]
    assert work.parent == tmp_path and work.name.startswith(".export.partial-")
    assert during == old  # the earlier export was still whole while the new one was checked
    assert sorted(p.name for p in folder.iterdir()) == [".paddleseg-output", "deploy.yaml", "model.json",
                                                        "model.pdiparams"]
    assert result.model_file == folder / "model.json" and result.onnx_file is None
    assert yaml.safe_load(result.deploy_file.read_text())["Deploy"]["onnx"] is None  # the old model.onnx is gone
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


@pytest.mark.slow
@pytest.mark.parametrize("killed_mid_swap", [False, True])
def test_wrong_results_in_paddle_inference_fail_the_export_and_keep_the_previous(tmp_path, monkeypatch,
                                                                                 killed_mid_swap):
    import subprocess
    import sys

    import paddleseg.core.export as export_module

    folder = tmp_path / "export"
    old = old_export(folder)
    if killed_mid_swap:  # an earlier export died between its renames: the previous one sits aside
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
        folder.rename(tmp_path / f".export.old-{gone}")
    real_run = export_module.run_paddle_inference
    monkeypatch.setattr(export_module, "run_paddle_inference", lambda files, x: real_run(files, x) * 2)
    with pytest.raises(UserError, match=r"gives wrong results in Paddle Inference: relative difference 1\.00e\+00"
                                        r".*previous export .* is unchanged"):
        export_model(small_model(), folder, transforms=[{"type": "Normalize"}], num_classes=19, output_op="none")
    assert contents(folder) == old
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_save_dir_with_other_files_or_a_file_is_refused_untouched(tmp_path):
    from paddleseg.core.export import check_save_dir

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "iter_100").mkdir()
    (folder / "model.json").write_text("{}")
    with pytest.raises(UserError, match=r"holds iter_100, model.json but is not an earlier export"):
        export_model(small_model(), folder, transforms=[], num_classes=19)
    assert sorted(p.name for p in folder.iterdir()) == ["iter_100", "model.json"]
    write_marker(folder, EXPORT_KIND)  # an earlier export to which the user added a folder
    with pytest.raises(UserError, match=r"holds iter_100, which an export does not write"):
        export_model(small_model(), folder, transforms=[], num_classes=19)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_save_dir(tmp_path / "file")
    with pytest.raises(UserError, match="is inside .*file, which is a file"):
        check_save_dir(tmp_path / "file" / "export")
    assert check_save_dir(tmp_path / "new" / "export") == tmp_path / "new" / "export"


def test_opset_range_and_converter_messages():
    from paddleseg.core.export import check_opset, converter_reason, first_line

    assert check_opset(7) == 7 and check_opset(21) == 21
    for bad in (6, 22, 99):
        with pytest.raises(UserError, match=f"--opset {bad}: paddle2onnx writes opsets 7 to 21"):
            check_opset(bad)
    abort = ("[Paddle2ONNX] Please set the opset_version to 11 or set auto_upgrade_opset=true.\n"
             "[ERROR][Paddle2ONNX] Due to opset version, the model exporting is aborted.\n"
             "C++ Traceback (most recent call last):\n")
    assert converter_reason(abort) == "this model needs opset 11 or higher (--opset, up to 21)"
    failed = ("2026-01-01 10:00:00 [ERROR]\tFailed to convert PaddlePaddle model: boom.\n"
              "error: RuntimeError: paddle2onnx did not write m.onnx\n")
    assert converter_reason(failed) == ("Failed to convert PaddlePaddle model: boom.; "
                                        "RuntimeError: paddle2onnx did not write m.onnx")
    assert converter_reason("") == "it printed no reason"
    cpp = RuntimeError("\n----\nC++ Traceback (most recent call last):\n0 f()\n----\nError Message Summary:\n"
                       "----\nInvalidArgumentError: bad shape (at x.cc:1)\n")
    assert first_line(cpp) == "RuntimeError: InvalidArgumentError: bad shape (at x.cc:1)"


# Stride-2 layers pad as Paddle's 'SAME' ([0, 1] on an even size, [1, 1] on an odd one), resolved per
# input size in every backend. Sizes odd at (almost) every level, where a fixed padding went wrong:
# 257 -> 129 -> 65 -> 33 -> 17 (pyramid pooling 33 -> 17 -> 9 -> 5 -> 3), 513 -> ... -> 33 (17, 9, 5, 3).
ODD_SIZES = [(1, 3, 257, 513), (1, 3, 97, 131), (1, 3, 477, 719)]


def three_way(model, tmp_path, shapes):
    """Worst relative error of Paddle Inference (oneDNN on) and ONNX Runtime against the eager model,
    and the export."""
    from paddleseg.core.export import run_onnxruntime, run_paddle_inference

    result = export_model(model, tmp_path, transforms=[{"type": "Normalize"}], num_classes=19, output_op="none",
                          onnx=True)
    worst = 0.0
    for shape in shapes:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype("float32")
        with paddle.no_grad():
            eager = model(paddle.to_tensor(x))[0].numpy()
        for name, run in [("paddle inference", run_paddle_inference), ("onnxruntime", run_onnxruntime)]:
            out = run(result, x)
            assert out.shape == eager.shape, name
            worst = max(worst, rel(out, eager))
    return worst, result


@pytest.mark.slow
def test_three_way_parity_of_the_released_form_at_sizes_odd_at_every_level(tmp_path):
    model = ESPNetV2(19, scale=2.0, drop_prob=0.0)
    model.set_state_dict(paddle.load(str(fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams"))))
    model.eval()
    worst, _ = three_way(model, tmp_path, ODD_SIZES)
    assert worst <= 1e-4


@pytest.mark.slow
def test_three_way_parity_of_dilated_branches_padded_from_the_shape(tmp_path):
    """dilated=True: the stride-2 dilated branches get their extra zero row/column on odd sizes by
    concat and a slice from shape arithmetic. No ONNX Pad: paddle2onnx 2.1 writes a converted pad's
    fill value from uninitialised memory (measured: wrong outputs in about one export of three)."""
    import onnx

    paddle.seed(5)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0, dilated=True)
    model.eval()
    worst, result = three_way(model, tmp_path, [(1, 3, 257, 513), (1, 3, 96, 130), (2, 3, 65, 129)])
    assert worst <= 1e-4
    assert "Pad" not in {node.op_type for node in onnx.load(str(result.onnx_file)).graph.node}


def test_a_folder_that_only_looks_like_an_export_is_not_replaced(tmp_path):
    """A Kubernetes deploy.yaml is the user's: only a folder with the marker every export writes is an
    earlier export, which a new one may replace."""
    folder = tmp_path / "k8s"
    folder.mkdir()
    (folder / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n")
    with pytest.raises(UserError, match="is not an earlier export of this project"):
        export_model(small_model(), folder, transforms=[{"type": "Normalize"}], num_classes=19)
    assert (folder / "deploy.yaml").read_text().startswith("apiVersion")
    assert [p.name for p in tmp_path.iterdir()] == ["k8s"]
