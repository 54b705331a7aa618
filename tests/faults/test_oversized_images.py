"""Decompression bombs: a ~50 KB PNG whose header claims 20000x20000 pixels (1.2 GB as RGB). Each entry
point runs in a child whose address space is limited to what it had after importing its libraries plus
1 GB, so decoding the bomb cannot succeed. predict.py and tools/infer.py name it, skip it, predict the
images after it and exit 3; val.py fails naming it (exit 2, as for an unreadable image);
tools/check_dataset.py lists it as a problem (exit 2). (The reading itself: tests/test_io.py.)"""
import shutil

import cv2
import numpy as np
import paddle
import pytest

from paddleseg.models import ESPNetV2

from conftest import write_train_config
from fault_helpers import assert_user_error, memory_limit, peak_rss, run_with_fault
from test_io import write_png_bomb
from test_tools_infer import tiny_onnx_export


def write_photos(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    bomb = write_png_bomb(folder / "b_bomb.png")
    cv2.imwrite(str(folder / "c.jpg"), rng.integers(0, 255, (40, 24, 3), dtype=np.uint8))
    assert bomb.stat().st_size < 200_000
    return bomb


BOMB_MESSAGE = "b_bomb.png: image of 400000000 pixels is above the limit of 178956970 pixels; not decoded"


@pytest.fixture
def weights(tmp_path):
    paddle.seed(1)
    path = tmp_path / "model.pdparams"
    paddle.save(ESPNetV2(19, scale=0.5, drop_prob=0.0).state_dict(), str(path))
    return path


@pytest.mark.slow
def test_predict_skips_the_bomb_within_bounded_memory_and_predicts_the_rest(tmp_path, tiny_cityscapes, weights):
    photos = tmp_path / "photos"
    write_photos(photos)
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_with_fault(memory_limit("paddleseg, paddle"), "predict.py", "--config", config, "--model_path", weights,
                          "--image_path", photos, "--save_dir", tmp_path / "out", "--cpu_threads", "1",
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 3, done.stderr[-3000:]
    assert BOMB_MESSAGE in done.stderr and "Traceback" not in done.stderr
    written = sorted(p.name for p in (tmp_path / "out" / "pseudo_color_prediction").iterdir())
    assert written == ["a.png", "c.png"]  # the image after the bomb too
    assert peak_rss(done.stderr) < 1 << 30  # one decode of the bomb alone is 1.2 GB


def test_infer_skips_the_bomb_within_bounded_memory_and_predicts_the_rest(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos)
    model_dir = tiny_onnx_export(tmp_path / "export")
    done = run_with_fault(memory_limit("cv2, onnxruntime"), "tools/infer.py", "--model_dir", model_dir,
                          "--image_path", photos, "--save_dir", tmp_path / "out", "--backend", "onnxruntime",
                          "--cpu_threads", "1", cwd=tmp_path, timeout=120)
    assert done.returncode == 3, done.stderr[-3000:]
    assert BOMB_MESSAGE in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "added_prediction").iterdir()) == ["a.png", "c.png"]


def bombed_dataset(tmp_path, tiny_cityscapes):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    image = sorted((root / "leftImg8bit" / "val").glob("*/*.png"))[1]
    write_png_bomb(image)
    return root, image


@pytest.mark.slow
def test_val_fails_naming_the_bomb_within_bounded_memory(tmp_path, tiny_cityscapes, weights):
    root, bomb = bombed_dataset(tmp_path, tiny_cityscapes)
    config = write_train_config(tmp_path / "cfg.yml", root)
    done = run_with_fault(memory_limit("paddleseg, paddle"), "val.py", "--config", config, "--model_path", weights,
                          "--cpu_threads", "1", cwd=tmp_path, timeout=120)
    assert_user_error(done, f"error: {bomb}: image of 400000000 pixels is above the limit of 178956970 pixels")
    assert "mIoU=" not in done.stdout


@pytest.mark.slow
def test_check_dataset_lists_the_bomb_within_bounded_memory(tmp_path, tiny_cityscapes):
    root, bomb = bombed_dataset(tmp_path, tiny_cityscapes)
    done = run_with_fault(memory_limit("paddleseg, paddle"), "tools/check_dataset.py", "--cityscapes", root,
                          "--modes", "val", "--workers", "1", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"val: {bomb}: image of 400000000 pixels is above the limit" in done.stdout
    assert "1 problem(s) found" in done.stderr and "Traceback" not in done.stderr
