"""A deployment machine needs no PaddlePaddle for the ONNX Runtime backend: in a fresh virtualenv with
only the package (``--no-deps``) and its ``deploy`` requirements (numpy, opencv-python-headless, pyyaml,
pillow, onnxruntime, tqdm, at requirements.txt's versions), tools/infer.py runs a model exported here and
gives the labels it gives in the main environment; ``import paddle`` fails there.

Slow (a virtualenv and some 100 MB of wheels); skipped, saying so, when pip cannot reach the registry."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from paddleseg.core.export import export_model
from paddleseg.models import ESPNetV2

from conftest import REPO

DEPLOY_REQUIREMENTS = ("numpy", "opencv-python-headless", "pyyaml", "pillow", "onnxruntime", "tqdm")


def pinned(names):
    versions = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            versions[name.lower()] = version
    return [f"{name}=={versions[name]}" for name in names]


def pip(python, *args, timeout=900):
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, timeout=timeout)


def infer(python, export, images, out):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(python), str(REPO / "tools" / "infer.py"), "--model_dir", str(export), "--image_path",
                           str(images), "--save_dir", str(out), "--backend", "onnxruntime", "--save_label",
                           "--cpu_threads", "1"], capture_output=True, text=True, timeout=300, env=env, cwd=out.parent)


@pytest.mark.slow
def test_onnxruntime_backend_runs_in_a_virtualenv_without_paddle(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    probe = pip(python, "download", "--no-deps", "-d", str(tmp_path / "probe"), *pinned(["tqdm"]), timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"pip cannot reach the package registry: {probe.stderr.strip().splitlines()[-1:]}")
    installed = pip(python, "install", "--no-deps", "-e", str(REPO))
    assert installed.returncode == 0, installed.stderr[-3000:]
    installed = pip(python, "install", *pinned(DEPLOY_REQUIREMENTS))
    assert installed.returncode == 0, installed.stderr[-3000:]
    no_paddle = subprocess.run([str(python), "-c", "import paddle"], capture_output=True, text=True, timeout=60)
    assert no_paddle.returncode == 1 and "No module named 'paddle'" in no_paddle.stderr

    paddle.seed(9)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    model.eval()
    export_model(model, tmp_path / "export", transforms=[{"type": "Normalize"}], num_classes=19, onnx=True)
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(3)
    for name, size in (("a.png", (36, 52)), ("b.jpg", (41, 30))):
        cv2.imwrite(str(tmp_path / "in" / name), rng.integers(0, 255, size + (3,), dtype=np.uint8))
    labels = {}
    for side, interpreter in (("main", sys.executable), ("venv", python)):
        done = infer(interpreter, tmp_path / "export", tmp_path / "in", tmp_path / side)
        assert done.returncode == 0, (side, done.stderr[-3000:])
        labels[side] = {p.name: np.asarray(Image.open(p)) for p in sorted((tmp_path / side / "label").iterdir())}
    assert sorted(labels["venv"]) == ["a.png", "b.png"]
    for name, label in labels["main"].items():
        np.testing.assert_array_equal(labels["venv"][name], label)
