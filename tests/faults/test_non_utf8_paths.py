"""File names whose bytes are not UTF-8 (``x\\xff.png``; Python holds them as lone surrogates): OpenCV's
own file functions crash the process on them (predict.py and tools/infer.py died with a segmentation
fault after writing half their outputs; check_dataset's workers died, BrokenProcessPool), and the
report's HTML could not be encoded after a whole evaluation. Now every such file is read and written
under its own name, and the report shows it escaped."""
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import write_train_config
from fault_helpers import run_script
from test_tools_infer import tiny_onnx_export
from test_unreadable_images import weights  # noqa: F401,F811  (a fixture: random ESPNetV2 scale-0.5 weights)

ODD = b"x\xff"  # not UTF-8


def odd(folder: Path, suffix: str) -> Path:
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + ODD + suffix.encode()))


def photos(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for path in (folder / "a.png", odd(folder, ".png"), odd(folder, "_b.jpg")):
        ok, data = cv2.imencode(path.suffix, rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
        path.write_bytes(data.tobytes())
    return folder


def written(folder: Path):
    return sorted(os.listdir(os.fsencode(folder)))


EXPECTED = sorted([b"a.png", ODD + b".png", ODD + b"_b.png"])


def test_infer_reads_and_writes_such_names_and_logs_them(tmp_path):
    folder = photos(tmp_path / "in")
    (tmp_path / "list.txt").write_bytes(b"in/" + ODD + b".png\nin/a.png\n")
    done = run_script("tools/infer.py", "--model_dir", tiny_onnx_export(tmp_path / "export"), "--image_path", folder,
                      "--save_dir", tmp_path / "out", "--backend", "onnxruntime", "--save_label",
                      "--save_log_path", tmp_path / "run.log", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    for sub in ("pseudo_color_prediction", "added_prediction", "label"):
        assert written(tmp_path / "out" / sub) == EXPECTED
    label = np.asarray(Image.open(odd(tmp_path / "out" / "label", ".png")))
    image = cv2.cvtColor(cv2.imdecode(np.fromfile(odd(folder, ".png"), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(label, image.argmax(axis=2))
    assert "Logging error" not in done.stderr and "Predicted 3 image(s)" in (tmp_path / "run.log").read_text()
    done = run_script("tools/infer.py", "--model_dir", tmp_path / "export", "--image_path", tmp_path / "list.txt",
                      "--save_dir", tmp_path / "from_list", "--backend", "onnxruntime", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert written(tmp_path / "from_list" / "added_prediction" / "in") == sorted([b"a.png", ODD + b".png"])


@pytest.mark.slow
def test_predict_reads_and_writes_such_names(tmp_path, tiny_cityscapes, weights):  # noqa: F811
    folder = photos(tmp_path / "in")
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("predict.py", "--config", config, "--model_path", weights, "--image_path", folder,
                      "--save_dir", tmp_path / "out", "--cpu_threads", "1", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert written(tmp_path / "out" / "pseudo_color_prediction") == EXPECTED
    assert written(tmp_path / "out" / "added_prediction") == EXPECTED


def odd_city(tmp_path: Path, tiny_cityscapes: Path) -> Path:
    """A copy of the data set whose val city folder is named ``x\\xff`` (images and labels)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    for kind in ("leftImg8bit", "gtFine"):
        (city,) = (root / kind / "val").iterdir()
        city.rename(odd(root / kind / "val", ""))
    return root


@pytest.mark.slow
def test_val_report_shows_such_a_name_escaped(tmp_path, tiny_cityscapes, weights):  # noqa: F811
    root = odd_city(tmp_path, tiny_cityscapes)
    config = write_train_config(tmp_path / "cfg.yml", root)
    done = run_script("val.py", "--config", config, "--model_path", weights, "--report", tmp_path / "report",
                      "--cpu_threads", "1", cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "x\\xff/" in page and "Traceback" not in done.stderr
    assert len(list((tmp_path / "report" / "gallery").iterdir())) == 4


@pytest.mark.slow
def test_check_dataset_reads_such_names(tmp_path, tiny_cityscapes):
    root = odd_city(tmp_path, tiny_cityscapes)
    done = run_script("tools/check_dataset.py", "--cityscapes", root, "--modes", "val", "--workers", "2",
                      cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "BrokenProcessPool" not in done.stderr and "all samples are valid" in done.stdout
    assert "|   val   |    4    |    0     |" in done.stdout  # 4 samples, 0 problems
