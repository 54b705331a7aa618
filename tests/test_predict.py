"""predict.py / paddleseg.core.predict: agreement with upstream's prediction on the fixture, any
image size, mirrored output tree, grey and RGBA inputs, unreadable files skipped with exit 1."""

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from conftest import REPO, fixture_path

CONFIG = REPO / "configs" / "espnetv2" / "espnetv2_cityscapes_1024x512_120k.yml"


@pytest.fixture
def predict_main(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    import predict
    return predict.main


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    from paddleseg.models import ESPNetV2

    paddle.seed(5)
    path = tmp_path_factory.mktemp("w") / "model.pdparams"
    paddle.save(ESPNetV2(19, scale=0.5, drop_prob=0.0).state_dict(), str(path))
    return path


def read(path):
    with Image.open(path) as im:
        return np.asarray(im)


def test_fixture_prediction_equals_upstream_pixel_for_pixel(tmp_path, predict_main):
    weights = fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams")
    image = fixture_path("predict", "scene_512x256.png")
    expected = read(fixture_path("predict", "scene_512x256_pred_paddleseg_scale2.png"))
    assert predict_main(["--config", str(CONFIG), "--model_path", str(weights), "--image_path", str(image),
                         "--save_dir", str(tmp_path), "--save_label"]) == 0
    np.testing.assert_array_equal(read(tmp_path / "label" / "scene_512x256.png"), expected)
    np.testing.assert_array_equal(read(tmp_path / "pseudo_color_prediction" / "scene_512x256.png"), expected)


def write_images(root):
    rng = np.random.default_rng(0)
    (root / "a" / "b").mkdir(parents=True)
    cv2.imwrite(str(root / "odd.jpg"), rng.integers(0, 255, (37, 53, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "a" / "gray.png"), rng.integers(0, 255, (29, 41), dtype=np.uint8))
    cv2.imwrite(str(root / "a" / "b" / "rgba.png"), rng.integers(0, 255, (50, 31, 4), dtype=np.uint8))
    (root / "a" / "broken.png").write_bytes(b"not a png")
    return {"odd.png": (37, 53), "a/gray.png": (29, 41), "a/b/rgba.png": (50, 31)}


def test_folder_any_size_mirrored_tree_and_bad_file_gives_exit_1(tmp_path, predict_main, small_weights, caplog):
    sizes = write_images(tmp_path / "in")
    out = tmp_path / "out"
    code = predict_main(["--config", str(CONFIG), "--opts", "model.scale=0.5", "--model_path", str(small_weights),
                         "--image_path", str(tmp_path / "in"), "--save_dir", str(out), "--save_label", "--label_ids"])
    assert code == 1
    assert "broken.png" in caplog.text
    for name, size in sizes.items():
        label = read(out / "label" / name)
        assert label.shape == size and label.max() < 19
        color = Image.open(out / "pseudo_color_prediction" / name)
        assert color.mode == "P" and color.size == size[::-1]
        added = cv2.imread(str(out / "added_prediction" / name))
        assert added.shape == size + (3,)
        ids = read(out / "label_ids" / name)
        from paddleseg.utils.cityscapes_labels import train_ids_to_label_ids
        np.testing.assert_array_equal(ids, train_ids_to_label_ids(label))
    assert not (out / "label" / "a" / "broken.png").exists()


def test_overlay_output_is_the_blend_of_photo_and_palette(tmp_path, predict_main, small_weights):

    image = np.random.default_rng(1).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    custom = [10, 20, 30] * 19
    assert predict_main(["--config", str(CONFIG), "--opts", "model.scale=0.5", "--model_path", str(small_weights),
                         "--image_path", str(tmp_path / "x.png"), "--save_dir", str(tmp_path / "o"),
                         "--custom_color", *map(str, custom)]) == 0
    added = cv2.imread(str(tmp_path / "o" / "added_prediction" / "x.png"))
    expected = np.round(0.6 * image + 0.4 * np.array([30, 20, 10])).astype(int)  # BGR on disk
    assert np.abs(added.astype(int) - expected).max() <= 1
    palette = np.asarray(Image.open(tmp_path / "o" / "pseudo_color_prediction" / "x.png").getpalette()[:6])
    assert palette.tolist() == [10, 20, 30, 10, 20, 30]


def test_aug_and_slide_prediction_keep_size(tmp_path, predict_main, small_weights):
    image = np.random.default_rng(2).integers(0, 255, (45, 70, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    assert predict_main(["--config", str(CONFIG), "--opts", "model.scale=0.5", "--model_path", str(small_weights),
                         "--image_path", str(tmp_path / "x.png"), "--save_dir", str(tmp_path / "o"), "--save_label",
                         "--aug_pred", "--scales", "0.75", "1.25", "--flip_horizontal", "--is_slide",
                         "--crop_size", "32", "32", "--stride", "24", "24"]) == 0
    assert read(tmp_path / "o" / "label" / "x.png").shape == (45, 70)
