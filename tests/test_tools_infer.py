"""tools/infer.py: the standalone deploy script gives predict.py's outputs from an export folder, with
both backends, and its benchmark prints latency statistics. It names outputs as predict.py does, skips
unreadable and oversized images with exit 3, and checks its arguments (exit 2, one line)."""
import importlib.util
import json
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

from conftest import REPO
from paddleseg.core.export import export_model
from paddleseg.models import ESPNetV2

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
    """tools/infer.py reads deploy.yaml with paddleseg.utils.yaml_io; importing it (without running main)
    in a fresh interpreter must still leave Paddle and onnxruntime unloaded (they load per backend)."""
    code = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.insert(0, {str(SCRIPT.parent)!r})
        spec = importlib.util.spec_from_file_location("deploy_infer", {str(SCRIPT)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.main) and callable(module.load_deploy)
        roots = {{name.split(".")[0] for name in sys.modules}}
        print(sorted(roots & {{"paddle", "onnxruntime"}}), "paddleseg.utils.yaml_io" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"], done.stdout


def touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def test_output_names_are_predicts(tmp_path, infer):
    """The same inputs get the same names from tools/infer.py's copy of the rules as from predict.py."""
    from paddleseg.core import predict

    root = touch(tmp_path / "in", "dup.png", "dup.jpg", "one.jpg", "sub/dup.png", "out/label/a.png",
                 "lists/c1/a.png", "c2/a.png")
    save_dir = root / "out"
    ours, root_ours = infer.collect_images(root, save_dir)
    theirs, root_theirs = predict.collect_images(root, save_dir)
    assert ours == theirs and root_ours == root_theirs
    assert infer.output_names(ours, root) == predict.output_names(theirs, root)
    listing = root / "lists" / "images.txt"
    listing.write_text(f"c1/a.png\n../c2/a.png\n{root / 'one.jpg'}\nc1/a.png\n")
    ours, theirs = infer.collect_images(listing), predict.collect_images(listing)
    assert ours == theirs
    names = infer.output_names(*ours)
    assert names == predict.output_names(*theirs)
    assert [n.as_posix() for n in names] == ["c1/a.png", "__/c2/a.png", "__/one.png"]
    touch(root, "dup.png.jpg")  # dup.png -> dup.png.png, and so does dup.png.jpg
    with pytest.raises(infer.DeployError, match="would be written twice"):
        infer.output_names(*infer.collect_images(root, save_dir))


def test_oversized_images_are_refused_from_the_header(tmp_path, infer, monkeypatch):
    from test_io import write_png_bomb

    bomb = write_png_bomb(tmp_path / "bomb.png")
    monkeypatch.setattr(infer.cv2, "imread", lambda *a: pytest.fail("the oversized image was decoded"))
    with pytest.raises(infer.ImageError, match=r"bomb.png: image of 400000000 pixels is above the limit of "
                                               r"178956970 pixels"):
        infer.read_rgb(bomb)
    assert infer.MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS


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
    assert args.trt_shapes == infer.ShapeRange((1, 3, 64, 128), (1, 3, 256, 512), (1, 3, 512, 1024))
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
    with pytest.raises(infer.DeployError) as error:
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
    with pytest.raises(infer.DeployError, match=f"^{re.escape(message)}"):
        infer.parse_args(BASE + argv)


def deploy_with(input_shape=(-1, 3, -1, -1), resize=None):
    transforms = [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}]
    if resize:
        transforms.insert(0, {"type": "Resize", "target_size": list(resize), "keep_ratio": False})
    return {"input_shape": list(input_shape), "transforms": transforms}


def test_trt_shape_range_comes_from_the_export_when_its_input_size_is_fixed(infer):
    fixed = infer.ShapeRange((1, 3, 64, 128), (1, 3, 64, 128), (1, 3, 64, 128))
    assert infer.resolve_shape_range(deploy_with((1, 3, 64, 128)), None) == fixed
    assert infer.resolve_shape_range(deploy_with(resize=(128, 64)), None) == fixed  # Resize is [width, height]
    given = infer.ShapeRange((1, 3, 32, 32), (1, 3, 64, 128), (1, 3, 128, 256))
    assert infer.resolve_shape_range(deploy_with(), given) is given
    assert infer.resolve_shape_range(deploy_with(resize=(128, 64)), given) is given


@pytest.mark.parametrize("deploy, given, message", [
    (deploy_with(), None, "--use_trt: this export takes any input size (input_shape [-1, 3, -1, -1] in deploy.yaml), "
                          "so TensorRT needs the range of sizes to build for: give --trt_min_shape, --trt_opt_shape, "
                          "--trt_max_shape"),
    (deploy_with((-1, 3, 64, -1)), None, "this export takes any input size"),
    (deploy_with((1, 3, 64, -1)), ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 64, 128)),
     "this export's input_shape is [1, 3, 64, -1] (deploy.yaml), so H must be 64 in all three"),
    (deploy_with(resize=(512, 256)), ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128)),
     "deploy.yaml resizes every image to 512x256 (W x H), outside the range"),
])
def test_trt_shape_range_that_does_not_fit_the_export_is_refused(infer, deploy, given, message):
    with pytest.raises(infer.DeployError) as error:
        infer.resolve_shape_range(deploy, given and infer.ShapeRange(*given))
    assert message in str(error.value)


def test_gpu_checks_name_what_is_missing(infer, monkeypatch):
    """A CPU build, a CUDA build without a visible card, one without TensorRT or unable to load it: each
    is one clear error."""
    from paddle import inference

    with pytest.raises(infer.DeployError, match="this PaddlePaddle build has no CUDA support"):
        infer.check_paddle_gpu(use_trt=False)  # the CPU build installed here
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 0)
    with pytest.raises(infer.DeployError, match="no CUDA card is visible to PaddlePaddle"):
        infer.check_paddle_gpu(use_trt=False)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 1)
    infer.check_paddle_gpu(use_trt=False)
    with pytest.raises(infer.DeployError, match="compiled without TensorRT"):
        infer.check_paddle_gpu(use_trt=True)  # get_trt_compile_version() is (0, 0, 0) here
    monkeypatch.setattr(inference, "get_trt_compile_version", lambda: (10, 5, 0))
    with pytest.raises(infer.DeployError, match=re.escape(
            "--use_trt: PaddlePaddle was built with TensorRT 10.5.0 but cannot load it (no TensorRT library found); "
            "install it (pip install tensorrt==10.5.0)")):
        infer.check_paddle_gpu(use_trt=True)  # get_trt_runtime_version() is (0, 0, 0) here

    def unloadable():
        raise RuntimeError("Cannot load libnvinfer.so.10")

    monkeypatch.setattr(inference, "get_trt_runtime_version", unloadable)
    with pytest.raises(infer.DeployError, match=r"cannot load it \(RuntimeError: Cannot load libnvinfer.so.10\)"):
        infer.check_paddle_gpu(use_trt=True)
    monkeypatch.setattr(inference, "get_trt_runtime_version", lambda: (10, 5, 0))
    infer.check_paddle_gpu(use_trt=True)


class FakeConversion:
    """Stands in for paddle.tensorrt.convert: writes what it writes (the program names its engine
    file by absolute path) and counts the calls; ``fail_after_json`` raises part-way."""

    def __init__(self, fail_after_json=None):
        self.calls = 0
        self.fail_after_json = fail_after_json

    def __call__(self, prefix):
        self.calls += 1
        engine = prefix / "engine_1_1.trt"
        prefix.with_suffix(".json").write_text(json.dumps({"engine_serialized_data": str(engine)}))
        if self.fail_after_json:
            raise self.fail_after_json
        prefix.with_suffix(".pdiparams").write_bytes(b"params")
        prefix.mkdir()
        engine.write_bytes(b"engine")


KEY = {"backend": "paddle", "precision": "fp16", "model": "digest", "shapes": [[1, 3, 8, 8]] * 3}


def test_trt_cache_converts_once_and_reuses_the_result(infer, tmp_path):
    convert = FakeConversion()
    prefix = infer.cached_trt_program(tmp_path / "cache", KEY, convert)
    assert infer.cached_trt_program(tmp_path / "cache", KEY, convert) == prefix and convert.calls == 1
    entry = prefix.parent
    assert entry.parent == tmp_path / "cache" and entry.name.startswith("paddle-fp16-")
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["entry"] == str(entry) and manifest["key"] == KEY
    assert sorted(manifest["files"]) == ["model.json", "model.pdiparams", "model/engine_1_1.trt"]
    assert [p.name for p in entry.iterdir() if p.name.startswith(".")] == []  # no temporary manifest left
    other = infer.cached_trt_program(tmp_path / "cache", {**KEY, "shapes": [[1, 3, 8, 16]] * 3}, convert)
    assert other.parent != entry and convert.calls == 2  # another shape range is another entry


def test_interrupted_trt_conversion_leaves_nothing_and_is_done_again(infer, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        infer.cached_trt_program(tmp_path / "cache", KEY, FakeConversion(fail_after_json=KeyboardInterrupt()))
    assert list((tmp_path / "cache").iterdir()) == []
    convert = FakeConversion()
    prefix = infer.cached_trt_program(tmp_path / "cache", KEY, convert)
    assert convert.calls == 1 and (prefix.parent / "manifest.json").is_file()


@pytest.mark.parametrize("damage, reason", [
    (lambda entry: (entry / "manifest.json").unlink(), "is incomplete (an earlier conversion was interrupted)"),
    (lambda entry: (entry / "model" / "engine_1_1.trt").write_bytes(b"truncat"),
     "is damaged (model/engine_1_1.trt changed since it was written)"),
    (lambda entry: (entry / "model.pdiparams").unlink(), "is missing model.pdiparams"),
    (lambda entry: (entry / "manifest.json").write_text("{"), "is unreadable"),
    (lambda entry: [(entry / "manifest.json").unlink(), (entry / "model.pdiparams.info").write_bytes(b"")],
     "is incomplete"),  # model.* is paddle.tensorrt's to write: not a foreign file
])
def test_unusable_trt_cache_entry_is_converted_again(infer, tmp_path, caplog, damage, reason):
    """A run killed mid-conversion (no manifest) or a changed file: the entry is deleted and rebuilt."""
    convert = FakeConversion()
    entry = infer.cached_trt_program(tmp_path / "cache", KEY, convert).parent
    damage(entry)
    with caplog.at_level("WARNING", logger="infer"):
        assert infer.cached_trt_program(tmp_path / "cache", KEY, convert).parent == entry
    assert convert.calls == 2 and f"{entry} {reason}" in caplog.text and "converting again" in caplog.text
    assert (entry / "model" / "engine_1_1.trt").read_bytes() == b"engine"


def test_moved_trt_cache_is_converted_again(infer, tmp_path, caplog):
    """The converted program names its engine files by absolute path: a moved cache cannot be used."""
    convert = FakeConversion()
    infer.cached_trt_program(tmp_path / "cache", KEY, convert)
    (tmp_path / "cache").rename(tmp_path / "moved")
    with caplog.at_level("WARNING", logger="infer"):
        prefix = infer.cached_trt_program(tmp_path / "moved", KEY, convert)
    assert convert.calls == 2 and "is moved (built in " in caplog.text
    assert json.loads(prefix.with_suffix(".json").read_text())["engine_serialized_data"].startswith(str(tmp_path / "moved"))


def test_trt_cache_entry_with_foreign_files_is_left_alone(infer, tmp_path):
    entry = infer.cached_trt_program(tmp_path / "cache", KEY, FakeConversion()).parent
    (entry / "manifest.json").unlink()
    (entry / "notes.txt").write_text("mine")
    with pytest.raises(infer.DeployError, match=r"holds files tools/infer.py does not write \(notes.txt\)"):
        infer.cached_trt_program(tmp_path / "cache", KEY, FakeConversion())
    assert (entry / "notes.txt").read_text() == "mine" and (entry / "model.json").is_file()


def test_trt_cache_dir_that_is_a_file_is_a_user_error(infer, tmp_path):
    (tmp_path / "cache").write_text("mine")
    with pytest.raises(infer.DeployError, match="--trt_cache_dir .*cache: cannot create it"):
        infer.cached_trt_program(tmp_path / "cache", KEY, FakeConversion())
    assert (tmp_path / "cache").read_text() == "mine"


def test_concurrent_runs_convert_once(infer, tmp_path):
    """A second run waits for the lock while the first converts, then uses its result."""
    import threading

    started, release = threading.Event(), threading.Event()
    convert = FakeConversion()

    def slow(prefix):
        started.set()
        assert release.wait(30)
        convert(prefix)

    results = []
    first = threading.Thread(target=lambda: results.append(infer.cached_trt_program(tmp_path / "cache", KEY, slow)))
    second = threading.Thread(target=lambda: results.append(infer.cached_trt_program(tmp_path / "cache", KEY, convert)))
    first.start()
    assert started.wait(30)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the lock, not converting alongside
    release.set()
    first.join(30)
    second.join(30)
    assert len(results) == 2 and results[0] == results[1] and convert.calls == 1


@pytest.fixture
def fake_paddle_tensorrt(monkeypatch):
    """paddle.tensorrt and the tensorrt package as a GPU build with TensorRT 10.5 would have them; the
    fake convert records what it is given and writes what the real one writes."""
    import types

    from paddle import inference

    seen = {}

    class Input:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class TensorRTConfig:
        def __init__(self, inputs):
            self.inputs = inputs

    def convert(model_path, config):
        seen.update(model_path=model_path, input=config.inputs[0].kwargs, precision=config.precision_mode,
                    save_model_dir=config.save_model_dir, workspace=config.workspace_size,
                    static=not paddle.in_dynamic_mode())
        if seen.get("fail"):
            raise RuntimeError("(Unimplemented) Converter for pd_op.gather not implemented.")
        FakeConversion()(Path(config.save_model_dir))

    export = types.SimpleNamespace(Input=Input, TensorRTConfig=TensorRTConfig, convert=convert,
                                   PrecisionMode=types.SimpleNamespace(FP32="FP32", FP16="FP16"))
    builder = types.SimpleNamespace(platform_has_fast_fp16=True)
    logger = types.SimpleNamespace(ERROR=0)
    logger_class = lambda severity: logger  # noqa: E731  (tensorrt.Logger(tensorrt.Logger.ERROR))
    logger_class.ERROR = 0
    tensorrt = types.SimpleNamespace(__version__="10.5.0", Logger=logger_class, Builder=lambda log: builder)
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt)
    monkeypatch.setitem(sys.modules, "paddle.tensorrt", types.ModuleType("paddle.tensorrt"))
    monkeypatch.setitem(sys.modules, "paddle.tensorrt.export", export)
    monkeypatch.setattr(inference, "get_trt_runtime_version", lambda: (10, 5, 0))
    monkeypatch.setattr(inference, "get_trt_compile_version", lambda: (10, 5, 0))
    monkeypatch.setattr(paddle.device.cuda, "get_device_name", lambda i: "NVIDIA A10", raising=False)
    monkeypatch.setattr(paddle.device.cuda, "get_device_capability", lambda i: (8, 6), raising=False)
    return seen, builder, tensorrt


def trt_run(infer, tmp_path, precision="fp16"):
    """The paddle backend's TensorRT step: the cache key, then the conversion through the cache."""
    model, params = tmp_path / "export" / "model.json", tmp_path / "export" / "model.pdiparams"
    if not model.exists():
        model.parent.mkdir()
        model.write_text("{}")
        params.write_bytes(b"weights")
    trt = infer.TensorRT(infer.ShapeRange((1, 3, 64, 128), (1, 3, 256, 512), (1, 3, 512, 1024)), precision,
                         tmp_path / "cache")
    key = infer.paddle_trt_key(model, params, trt)
    return key, infer.cached_trt_program(trt.cache_dir, key, lambda out: infer.convert_with_paddle_tensorrt(
        model, "x", trt, out))


def test_paddle_tensorrt_conversion_gets_the_shape_range_and_precision(infer, tmp_path, fake_paddle_tensorrt):
    seen, _, _ = fake_paddle_tensorrt
    key, prefix = trt_run(infer, tmp_path)
    assert seen["input"] == {"min_input_shape": (1, 3, 64, 128), "optim_input_shape": (1, 3, 256, 512),
                             "max_input_shape": (1, 3, 512, 1024), "input_data_type": "float32",
                             "input_range": (-1.0, 1.0), "name": "x"}
    assert seen["precision"] == "FP16" and seen["workspace"] == 1 << 30
    assert seen["model_path"] == str(tmp_path / "export" / "model.json")
    assert seen["save_model_dir"] == str(prefix) and prefix.is_absolute()  # engines named by absolute path
    assert seen["static"] and paddle.in_dynamic_mode()  # converted in static mode, dynamic mode restored
    assert key["gpu"] == "NVIDIA A10 sm86" and key["tensorrt"] == "10.5.0" and key["precision"] == "fp16"
    seen.clear()
    assert trt_run(infer, tmp_path)[1] == prefix and seen == {}  # the second run converts nothing
    (tmp_path / "export" / "model.pdiparams").write_bytes(b"retrained")
    assert trt_run(infer, tmp_path)[1] != prefix and seen["static"]  # new weights: a new conversion


def test_paddle_tensorrt_conversion_problems_are_user_errors(infer, tmp_path, fake_paddle_tensorrt):
    seen, builder, tensorrt = fake_paddle_tensorrt
    tensorrt.__version__ = "8.6.1"
    with pytest.raises(infer.DeployError, match=r"the tensorrt Python package is 8.6.1 but Paddle Inference runs "
                                                r"TensorRT 10.5.0; .*pip install tensorrt==10.5.0"):
        trt_run(infer, tmp_path)
    tensorrt.__version__ = "10.5.0"
    builder.platform_has_fast_fp16 = False
    with pytest.raises(infer.DeployError, match="this GPU has no fast fp16"):
        trt_run(infer, tmp_path)
    trt_run(infer, tmp_path, precision="fp32")
    builder.platform_has_fast_fp16 = True
    seen["fail"] = True
    with pytest.raises(infer.DeployError, match=r"TensorRT conversion of .*model.json failed: RuntimeError: "
                                                r"\(Unimplemented\) Converter for pd_op.gather not implemented"):
        trt_run(infer, tmp_path, precision="fp16")
    assert paddle.in_dynamic_mode()
    assert [p.name.split("-")[1] for p in (tmp_path / "cache").iterdir()] == ["fp32"]  # failures left nothing


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


def test_same_size_batches_group_by_input_shape(infer):
    def item(i, h):
        return infer.Item(Path(str(i)), Path(str(i)), np.zeros((h, 4, 3), np.uint8), np.zeros((1, 3, h, 4)))

    items = [item(0, 8), item(1, 16), item(2, 8), item(3, 8), item(4, 16), item(5, 32)]
    batches = [[int(str(it.path)) for it in b] for b in infer.same_size_batches(iter(items), 2)]
    assert batches == [[0, 2], [1, 4], [3], [5]]
    assert [len(b) for b in infer.same_size_batches(iter(items), 1)] == [1] * 6


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


def test_latency_table_gives_each_stage_and_images_per_second(infer):
    text = infer.latency_table([("model (per batch)", [0.2, 0.4, 0.3]), ("read + preprocess", [0.01, 0.03]),
                                ("postprocess + save", [])], batch_size=4)
    rows = {line.split("  ")[0]: line.split()[-5:] for line in text.splitlines()[2:-1]}
    assert rows == {"model (per batch)": ["3", "300.0", "380.0", "300.0", "200.0"],
                    "read + preprocess": ["2", "20.0", "28.0", "20.0", "10.0"]}  # a stage without runs is left out
    assert text.splitlines()[-1].startswith("model: 13.33 images/s at the median (batch 4)")
