"""predict.py's outputs never collide, multiply or leave --save_dir: inputs that share a stem keep their
extension, list entries outside the list's folder stay inside --save_dir, a --save_dir inside the
input folder is not predicted again on the next run, and names that still collide are an error
before anything is written. (The naming rules in detail: tests/test_predict.py.)"""
import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from paddleseg.models import ESPNetV2

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, snapshot


@pytest.fixture
def setup(tmp_path, tiny_cityscapes):
    paddle.seed(1)
    weights = tmp_path / "model.pdparams"
    paddle.save(ESPNetV2(19, scale=0.5, drop_prob=0.0).state_dict(), str(weights))
    return write_train_config(tmp_path / "cfg.yml", tiny_cityscapes), weights


def write(path, height, width):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(height).integers(0, 255, (height, width, 3), dtype=np.uint8))


def outputs(folder):
    return {p.relative_to(folder).as_posix(): Image.open(p).size[::-1] for p in folder.rglob("*.png")}


def predict(setup, image_path, save_dir, cwd):
    config, weights = setup
    return run_script("predict.py", "--config", config, "--model_path", weights, "--image_path", image_path,
                      "--save_dir", save_dir, "--cpu_threads", "1", cwd=cwd, timeout=120)


@pytest.mark.slow
def test_same_stem_inputs_keep_their_extension_and_a_save_dir_inside_is_not_rescanned(tmp_path, setup):
    photos = tmp_path / "photos"
    write(photos / "dup.png", 20, 30)
    write(photos / "dup.jpg", 24, 36)
    write(photos / "sub" / "dup.png", 28, 42)
    expected = {"dup.png.png": (20, 30), "dup.jpg.png": (24, 36), "sub/dup.png": (28, 42)}
    for run in range(2):  # before: 3 images, then 3 + the first run's 6 outputs, ...
        done = predict(setup, photos, photos / "out", tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Predicting 3 image(s)" in done.stderr, (run, done.stderr[-3000:])
        for folder in ("pseudo_color_prediction", "added_prediction"):
            assert outputs(photos / "out" / folder) == expected, (run, folder)


@pytest.mark.slow
def test_list_entries_outside_the_lists_folder_are_written_inside_save_dir(tmp_path, setup):
    write(tmp_path / "lists" / "c1" / "a.png", 20, 30)
    write(tmp_path / "c2" / "a.png", 24, 36)
    write(tmp_path / "elsewhere" / "a.png", 28, 42)
    listing = tmp_path / "lists" / "images.txt"
    listing.write_text(f"c1/a.png\n../c2/a.png\n{tmp_path / 'elsewhere' / 'a.png'}\nc1/a.png\n")
    before = snapshot(tmp_path)
    done = predict(setup, listing, tmp_path / "out", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Predicting 3 image(s)" in done.stderr  # the repeated entry once
    assert outputs(tmp_path / "out" / "pseudo_color_prediction") == {
        "c1/a.png": (20, 30), "__/c2/a.png": (24, 36), "__/elsewhere/a.png": (28, 42)}
    after = {k: v for k, v in snapshot(tmp_path).items() if k != "out" and not k.startswith("out/")}
    assert after == before  # nothing written anywhere but --save_dir


@pytest.mark.slow
def test_names_that_still_collide_are_exit_2_before_anything_is_written(tmp_path, setup):
    photos = tmp_path / "photos"
    for name in ("a.png", "a.jpg", "a.png.jpg"):  # a.png and a.png.jpg both become a.png.png
        write(photos / name, 20, 30)
    before = snapshot(tmp_path)
    done = predict(setup, photos, tmp_path / "out", tmp_path)
    assert_user_error(done, "would be written twice", "a.png.jpg -> a.png.png")
    assert snapshot(tmp_path) == before
