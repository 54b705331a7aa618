"""tools/infer.py: the command line over paddleseg.deploy gives predict.py's outputs from an export folder,
with both backends, and its benchmark prints latency statistics. It skips unreadable and oversized
images with exit 3, and checks its arguments (exit 2, one line). (The runtime's parts in detail:
tests/test_deploy_*.py; predict.py and tools/infer.py side by side: tests/test_front_ends.py.)"""
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from paddleseg.core.export import export_model
from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.tensorrt_settings import ShapeRange
from paddleseg.errors import UserError
from paddleseg.models import ESPNetV2

from conftest import REPO

SCRIPT = REPO / "tools" / "infer.py"


@pytest.fixture(scope="module")
def infer():
    """tools/infer.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("deploy_infer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_onnx_export(folder):
    """An export folder whose "model" is an ONNX ArgMax over the channels: the fastest model that
    tools/infer.py runs end to end (the labels are 0..2, the argmax of the normalised RGB)."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0)], "argmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None, None, None])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
              str(folder / "model.onnx"))
    deploy = {"model": "model.json", "params": "model.pdiparams", "onnx": "model.onnx", "output_op": "argmax",
              "transforms": [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}],
              "palette": [[128, 64, 128], [244, 35, 232], [70, 70, 70]]}
    (folder / "deploy.yaml").write_text(yaml.safe_dump({"Deploy": deploy}))
    for unused in ("model.json", "model.pdiparams"):  # an export always has the Paddle model too
        (folder / unused).write_bytes(b"")
    return folder


def run_infer(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(7)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    model.eval()
    folder = tmp_path_factory.mktemp("export")
    export_model(model, folder, transforms=[{"type": "Normalize"}], num_classes=19, onnx=True)
    return model, folder


def images(root):
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.png"), rng.integers(0, 255, (33, 47, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "sub" / "b.jpg"), rng.integers(0, 255, (40, 24, 3), dtype=np.uint8))
    return {"a.png": root / "a.png", "sub/b.png": root / "sub" / "b.jpg"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["paddle", "onnxruntime"])
def test_folder_outputs_match_dygraph_prediction(tmp_path, exported, backend):
    from paddleseg.core.predict import build_transforms, predict_image
    from paddleseg.transforms import read_image

    model, folder = exported
    files = images(tmp_path / "in")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model_dir", str(folder), "--image_path",
                           str(tmp_path / "in"), "--save_dir", str(out), "--backend", backend, "--save_label",
                           "--benchmark", "--repeats", "2", "--warmup", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "median" in proc.stdout and "p90" in proc.stdout and "images/s" in proc.stdout
    transforms = build_transforms([{"type": "Normalize"}])
    for name, src in files.items():
        expected = predict_image(model, read_image(src), transforms)
        with Image.open(out / "label" / name) as im:
            got = np.asarray(im)
        assert (got == expected).mean() >= 0.999
        assert (out / "pseudo_color_prediction" / name).is_file() and (out / "added_prediction" / name).is_file()


def test_missing_deploy_yaml_is_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model_dir", str(tmp_path), "--image_path", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "deploy.yaml" in proc.stderr


def test_importing_the_script_imports_neither_paddle_nor_onnxruntime():
    """tools/infer.py runs on paddleseg.deploy; importing it (without running main) in a fresh
    interpreter must still leave Paddle and onnxruntime unloaded (they load per backend)."""
    code = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.insert(0, {str(SCRIPT.parent)!r})
        spec = importlib.util.spec_from_file_location("deploy_infer", {str(SCRIPT)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.main) and callable(module.parse_args)
        roots = {{name.split(".")[0] for name in sys.modules}}
        print(sorted(roots & {{"paddle", "onnxruntime"}}), "paddleseg.deploy.pipeline" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"], done.stdout


def test_skipped_images_give_exit_3_and_the_others_are_written(tmp_path):
    model_dir = tiny_onnx_export(tmp_path / "export")
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "in" / "b.png"), rng.integers(0, 255, (21, 30, 3), dtype=np.uint8))
    (tmp_path / "in" / "c.jpg").write_bytes(b"not a jpeg")
    done = run_infer("--model_dir", model_dir, "--image_path", tmp_path / "in", "--save_dir", tmp_path / "out",
                     "--backend", "onnxruntime", "--cpu_threads", "1", "--max_pixels", "600", "--save_label")
    assert done.returncode == 3, done.stderr
    assert "b.png: image of 30x21 = 630 pixels is above the limit of 600 pixels" in done.stderr
    assert "c.jpg: unreadable or truncated image" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "label").iterdir()) == ["a.png"]
    image = cv2.cvtColor(cv2.imread(str(tmp_path / "in" / "a.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "label" / "a.png")), image.argmax(axis=2))


@pytest.mark.parametrize("args, message", [
    (["--custom_color", "1", "2"], "error: --custom_color 1 2: expected r g b triples of values 0..255"),
    (["--custom_color", "1", "2", "300"], "error: --custom_color 1 2 300: expected r g b triples of values 0..255"),
    (["--cpu_threads", "0"], "error: argument --cpu_threads: must be a positive integer, got '0'"),
    (["--max_pixels", "-1"], "error: argument --max_pixels: must be a positive integer, got '-1'"),
    (["--save_dir", "FILE"], "error: --save_dir FILE: not a folder"),
    (["--benchmark", "yes"], "error: argument --benchmark: expected True or False (or true/false, 1/0), got 'yes'"),
    (["--use_trt", "Ture"], "error: argument --use_trt: expected True or False (or true/false, 1/0), got 'Ture'"),
    (["--enable_mkldnn", "True"], "error: --enable_mkldnn applies only to the paddle backend on the CPU"),
    (["--batch_size", "0"], "error: argument --batch_size: must be a positive integer, got '0'"),
])
def test_bad_arguments_are_exit_2_with_one_error_line(tmp_path, args, message):
    model_dir = tiny_onnx_export(tmp_path / "export")
    (tmp_path / "FILE").write_text("mine")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    done = run_infer("--model_dir", model_dir, "--image_path", tmp_path / "a.png", "--backend", "onnxruntime",
                     *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.replace("FILE", str(tmp_path / "FILE"))), done.stderr
    assert (tmp_path / "FILE").read_text() == "mine" and not (tmp_path / "output").exists()


# ---------------------------------------------------------------------------------------------
# GPU and TensorRT: arguments, the shape range, the conversion cache (all checked on the CPU)
# ---------------------------------------------------------------------------------------------
BASE = ["--model_dir", "m", "--image_path", "i"]
TRT = ["--device", "gpu", "--use_trt"]
RANGE = ["--trt_min_shape", "1", "3", "64", "128", "--trt_opt_shape", "1", "3", "256", "512",
         "--trt_max_shape", "1", "3", "512", "1024"]


def test_trt_shape_range_and_precision_arguments(infer):
    args = infer.parse_args(BASE + TRT + RANGE + ["--trt_precision", "fp16"])  # the old spelling still works
    assert args.trt_shapes == ShapeRange((1, 3, 64, 128), (1, 3, 256, 512), (1, 3, 512, 1024))
    assert args.precision == "fp16" and str(args.trt_shapes) == "1x3x64x128 to 1x3x512x1024 (best at 1x3x256x512)"
    assert infer.parse_args(BASE + TRT).trt_shapes is None  # from deploy.yaml, or refused there


@pytest.mark.parametrize("extra, message", [
    (["--trt_min_shape", "1", "3", "64"], "argument --trt_min_shape: expected 4 arguments"),
    (["--trt_min_shape", "1", "3", "0", "8"], "argument --trt_min_shape: must be a positive integer, got '0'"),
    (RANGE[:5], "--trt_opt_shape and --trt_max_shape missing: --trt_min_shape, --trt_opt_shape and --trt_max_shape "
                "go together"),
    (RANGE[:10], "--trt_max_shape missing"),
    (RANGE[:1] + ["2", "3", "64", "128"] + RANGE[5:], "--trt_min_shape 2 3 64 128: N must be 1 (tools/infer.py runs "
                                                      "one image at a time)"),
    (RANGE[:10] + ["--trt_max_shape", "1", "1", "512", "1024"], "--trt_max_shape 1 1 512 1024: C must be 3"),
    (RANGE[:5] + ["--trt_opt_shape", "1", "3", "600", "512"] + RANGE[10:],
     "TensorRT shape range: H must be min <= opt <= max, got 64, 600 and 512"),
    (RANGE[:10] + ["--trt_max_shape", "1", "3", "512", "100"],
     "TensorRT shape range: W must be min <= opt <= max, got 128, 512 and 100"),
])
def test_bad_trt_shape_ranges_are_user_errors(infer, extra, message):
    with pytest.raises(UserError) as error:  # DeployError, or argparse's errors as UserError
        infer.parse_args(BASE + TRT + extra)
    assert str(error.value).startswith(message), error.value


@pytest.mark.parametrize("argv, message", [
    (["--use_trt"], "--use_trt needs --device gpu"),
    (["--device", "gpu", "--precision", "fp16"], "--precision fp16 needs --use_trt"),
    (["--device", "gpu"] + RANGE, "--trt_min_shape, --trt_opt_shape, --trt_max_shape without --use_trt"),
    (["--trt_cache_dir", "cache"], "--trt_cache_dir without --use_trt"),
])
def test_trt_options_without_tensorrt_are_refused(infer, argv, message):
    """Nothing asked for is silently ignored: TensorRT options without --use_trt are errors."""
    with pytest.raises(DeployError, match=f"^{re.escape(message)}"):
        infer.parse_args(BASE + argv)


# ---------------------------------------------------------------------------------------------
# upstream PaddleSeg's deploy/python/infer.py interface: --config deploy.yaml, True/False values, batches
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling, value", [("True", True), ("true", True), ("1", True), ("False", False),
                                             ("false", False), ("0", False)])
def test_switches_take_upstreams_true_false_spellings(infer, spelling, value):
    bare = infer.parse_args(["--config", "m/deploy.yaml", "--image_path", "i", "--benchmark", "--save_label"])
    given = infer.parse_args(["--config", "m/deploy.yaml", "--image_path", "i", "--benchmark", spelling,
                              "--save_label", spelling, "--with_argmax", spelling, "--print_detail", spelling])
    assert bare.benchmark is True and bare.save_label is True and bare.model_dir == Path("m")
    assert given.benchmark is value and given.save_label is value and given.print_detail is value


def test_list_file_with_label_paths_and_config_flag(tmp_path):
    """A TIPC-style list (image, then label path) through --config deploy.yaml with upstream's flags."""
    model_dir = tiny_onnx_export(tmp_path / "export")
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (6, 10, 3), dtype=np.uint8))
    (tmp_path / "val.list").write_text("a.png gt/a.png\nb.png gt/b.png\n")
    done = run_infer("--config", model_dir / "deploy.yaml", "--image_path", tmp_path / "val.list", "--backend",
                     "onnxruntime", "--save_dir", tmp_path / "out", "--use_trt", "False", "--with_argmax",
                     "--benchmark", "True", "--batch_size", "2", "--warmup", "0", "--repeats", "1",
                     "--model_name", "tiny", "--save_log_path", tmp_path / "run.log")
    assert done.returncode == 0, done.stderr
    assert "tiny: onnxruntime on cpu" in done.stdout and "(batch 2)" in done.stdout
    assert "images/s" in (tmp_path / "run.log").read_text()
    for name in ("a.png", "b.png"):
        with Image.open(tmp_path / "out" / "pseudo_color_prediction" / name) as im:
            got = np.asarray(im)
        x = (cv2.cvtColor(cv2.imread(str(tmp_path / name)), cv2.COLOR_BGR2RGB) / 255.0 - 0.5) / 0.5
        assert (got == x.argmax(axis=2)).all()


def test_batch_size_needs_an_export_that_takes_any_batch(tmp_path):
    model_dir = tiny_onnx_export(tmp_path / "export")
    deploy = yaml.safe_load((model_dir / "deploy.yaml").read_text())
    deploy["Deploy"]["input_shape"] = [1, 3, 8, 8]  # as export.py --input_shape 1 3 8 8 writes
    (model_dir / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    done = run_infer("--model_dir", model_dir, "--image_path", tmp_path / "a.png", "--backend", "onnxruntime",
                     "--batch_size", "2", "--save_dir", tmp_path / "out")
    assert done.returncode == 2 and done.stderr.startswith(
        "error: --batch_size 2: this export takes batches of 1 only (input_shape [1, 3, 8, 8] in deploy.yaml)")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_batches_give_the_outputs_of_batch_one(tmp_path, exported):
    """Same-size images run together (and the odd size alone) give the labels of one-at-a-time runs."""
    _, folder = exported
    rng = np.random.default_rng(2)
    (tmp_path / "in").mkdir()
    for i, (h, w) in enumerate([(32, 48), (40, 24), (32, 48), (32, 48), (40, 24)]):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    labels = {}
    for batch in (1, 2):
        out = tmp_path / f"out{batch}"
        done = run_infer("--config", folder / "deploy.yaml", "--image_path", tmp_path / "in", "--save_dir", out,
                         "--batch_size", batch, "--save_label", "True", "--cpu_threads", "1")
        assert done.returncode == 0, done.stderr
        labels[batch] = {p.name: np.asarray(Image.open(p)) for p in sorted((out / "label").glob("*.png"))}
    assert len(labels[1]) == 5 and labels[1].keys() == labels[2].keys()
    for name, label in labels[1].items():
        assert (labels[2][name] == label).all(), name  # per-image model: a batch changes no label
