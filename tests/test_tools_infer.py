"""tools/infer.py: the standalone deploy script gives predict.py's outputs from an export folder, with
both backends, and its benchmark prints latency statistics. It names outputs as predict.py does, skips
unreadable and oversized images with exit 3, and checks its arguments (exit 2, one line)."""
import importlib.util
import subprocess
import sys

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
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [1, None, None])])
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


def test_script_does_not_import_paddleseg():
    source = SCRIPT.read_text()
    assert "import paddleseg" not in source and "from paddleseg" not in source


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
