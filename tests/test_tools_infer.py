"""tools/infer.py: the standalone deploy script gives predict.py's outputs from an export folder, with
both backends, and its benchmark prints latency statistics."""
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from conftest import REPO
from paddleseg.core.export import export_model
from paddleseg.models import ESPNetV2

SCRIPT = REPO / "tools" / "infer.py"


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
