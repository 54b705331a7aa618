"""predict.py / paddleseg.core.predict: agreement with upstream's prediction on the fixture, any
image size, mirrored output tree, grey and RGBA inputs, unreadable and oversized files skipped with
exit 3, output names that never collide or leave --save_dir, argument checks before any work."""

from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from paddleseg.deploy.inputs import collect_images, plan_outputs
from paddleseg.deploy.outputs import output_names
from paddleseg.errors import ConfigError, UserError
from paddleseg.utils.cli import EXIT_SKIPPED

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


def test_folder_any_size_mirrored_tree_and_bad_file_gives_exit_3(tmp_path, predict_main, small_weights, caplog):
    sizes = write_images(tmp_path / "in")
    out = tmp_path / "out"
    code = predict_main(["--config", str(CONFIG), "--opts", "model.scale=0.5", "--model_path", str(small_weights),
                         "--image_path", str(tmp_path / "in"), "--save_dir", str(out), "--save_label", "--label_ids"])
    assert code == EXIT_SKIPPED == 3
    assert "broken.png: unreadable or truncated image" in caplog.text
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


def test_max_pixels_skips_larger_images_and_exits_3(tmp_path, predict_main, small_weights, caplog):
    rng = np.random.default_rng(3)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "small.png"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "in" / "large.png"), rng.integers(0, 255, (21, 30, 3), dtype=np.uint8))
    code = predict_main(["--config", str(CONFIG), "--opts", "model.scale=0.5", "--model_path", str(small_weights),
                         "--image_path", str(tmp_path / "in"), "--save_dir", str(tmp_path / "o"), "--max_pixels", "600"])
    assert code == EXIT_SKIPPED
    assert "large.png: image of 30x21 = 630 pixels is above the limit of 600 pixels" in caplog.text
    assert sorted(p.name for p in (tmp_path / "o" / "pseudo_color_prediction").iterdir()) == ["small.png"]


def touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def test_output_names_keep_the_stem_when_unique_and_the_extension_when_shared(tmp_path):
    root = touch(tmp_path, "dup.png", "dup.jpg", "one.jpg", "sub/dup.png", "sub/x.tif")
    images, _ = collect_images(root)
    names = dict(zip((p.relative_to(root).as_posix() for p in images), map(Path.as_posix, output_names(images, root))))
    assert names == {"dup.jpg": "dup.jpg.png", "dup.png": "dup.png.png", "one.jpg": "one.png",
                     "sub/dup.png": "sub/dup.png", "sub/x.tif": "sub/x.png"}


def test_a_name_that_still_collides_is_an_error_naming_both_files(tmp_path):
    root = touch(tmp_path, "a.png", "a.jpg", "a.png.jpg")  # a.png -> a.png.png, and a.png.jpg -> a.png.png
    images, _ = collect_images(root)
    with pytest.raises(UserError, match=r"1 output name\(s\) would be written twice: .*a.png and .*a.png.jpg "
                                        r"-> a.png.png"):
        output_names(images, root)


def test_list_entries_outside_the_lists_folder_stay_inside_save_dir(tmp_path):
    touch(tmp_path, "lists/c1/a.png", "c2/a.png", "elsewhere/deep/a.png")
    listing = tmp_path / "lists" / "images.txt"
    absolute = tmp_path / "elsewhere" / "deep" / "a.png"
    listing.write_text(f"c1/a.png\n../c2/a.png x\n{absolute}\nc1/./a.png\n\n")
    plan = plan_outputs(listing, tmp_path / "out")
    assert [p.name for p, _ in plan] == ["a.png"] * 3  # c1/./a.png is c1/a.png again: predicted once
    names = [n.as_posix() for _, n in plan]  # absolute entries too: relative to the list's folder
    assert names == ["c1/a.png", "__/c2/a.png", "__/elsewhere/deep/a.png"]
    save_dir = (tmp_path / "out").resolve()
    for _, name in plan:
        assert save_dir in (save_dir / "label" / name).resolve().parents


def test_the_output_folders_of_a_save_dir_inside_the_input_folder_are_not_scanned(tmp_path):
    root = touch(tmp_path, "a.png", "sub/b.jpg", "out/pseudo_color_prediction/a.png", "out/label/sub/b.png",
                 "out/mine.png", "pseudo_color_prediction/c.png")
    found = sorted(p.relative_to(root).as_posix() for p in collect_images(root, root / "out")[0])
    assert found == ["a.png", "out/mine.png", "pseudo_color_prediction/c.png", "sub/b.jpg"]
    found = sorted(p.relative_to(root).as_posix() for p in collect_images(root, root)[0])  # --save_dir = input
    assert found == ["a.png", "out/label/sub/b.png", "out/mine.png", "out/pseudo_color_prediction/a.png",
                     "sub/b.jpg"]


@pytest.mark.parametrize("args, message", [
    (["--stride", "0", "0"], "argument --stride: must be a positive integer, got '0'"),
    (["--crop_size", "0", "0"], "argument --crop_size: must be a positive integer, got '0'"),
    (["--crop_size", "-5", "8"], "argument --crop_size: must be a positive integer, got '-5'"),
    (["--scales", "0"], "argument --scales: must be a scale from 0.015625 to 16, got '0'"),
    (["--scales", "1.0", "-0.5"], "argument --scales: must be a scale from 0.015625 to 16, got '-0.5'"),
    (["--scales", "nan"], "argument --scales: must be a scale from 0.015625 to 16, got 'nan'"),
    (["--scales", "inf"], "argument --scales: must be a scale from 0.015625 to 16, got 'inf'"),
    (["--cpu_threads", "0"], "argument --cpu_threads: must be a positive integer, got '0'"),
    (["--max_pixels", "0"], "argument --max_pixels: must be a positive integer, got '0'"),
    (["--custom_color", "1", "2"], "--custom_color 1 2: expected r g b triples of values 0..255"),
    (["--custom_color", "1", "2", "256"], "--custom_color 1 2 256: expected r g b triples of values 0..255"),
    (["--custom_color", "1", "2", "-1"], "--custom_color 1 2 -1: expected r g b triples of values 0..255"),
    (["--is_slide", "--crop_size", "8", "8"], "--is_slide needs --crop_size W H and --stride W H"),
])
def test_bad_arguments_are_user_errors_naming_flag_and_value_before_any_work(tmp_path, monkeypatch, args, message):
    monkeypatch.syspath_prepend(str(REPO))
    import predict

    monkeypatch.setattr(predict, "Config", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(UserError) as error:
        predict.main(["--config", str(CONFIG), "--model_path", "m.pdparams", "--image_path", str(tmp_path),
                      "--save_dir", str(tmp_path / "out"), *args])
    assert message in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_save_dir_that_is_a_file_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    import predict

    monkeypatch.setattr(predict, "Config", lambda *a, **k: pytest.fail("a model was built"))
    touch(tmp_path, "in/a.png", "taken")
    for save_dir, message in ((tmp_path / "taken", "not a folder"), (tmp_path / "taken" / "sub", "is a file")):
        with pytest.raises(UserError, match=f"--save_dir {save_dir}: not a folder") as error:
            predict.main(["--config", str(CONFIG), "--model_path", "m", "--image_path", str(tmp_path / "in"),
                          "--save_dir", str(save_dir)])
        assert message in str(error.value)


def test_the_data_sets_palette_colours_the_pictures_unless_custom_color_is_given(tmp_path, predict_main):
    """A config of tools/check_dataset.py --write_config carries the colours of the user's masks."""
    from paddleseg.models import ESPNetV2

    paddle.seed(3)
    weights = tmp_path / "three.pdparams"
    paddle.save(ESPNetV2(3, scale=0.5, drop_prob=0.0).state_dict(), str(weights))
    (tmp_path / "val.txt").write_text("x.png x.png\n")
    colours = [[250, 1, 2], [3, 240, 4], [5, 6, 230]]
    config = tmp_path / "mine.yml"
    config.write_text(yaml.safe_dump({
        "model": {"type": "ESPNetV2", "num_classes": 3, "scale": 0.5},
        "val_dataset": {"type": "Dataset", "dataset_root": str(tmp_path), "val_path": str(tmp_path / "val.txt"),
                        "num_classes": 3, "mode": "val", "transforms": [{"type": "Normalize"}],
                        "class_names": ["a", "b", "c"], "palette": colours}}))
    cv2.imwrite(str(tmp_path / "x.png"), np.random.default_rng(2).integers(0, 255, (24, 40, 3), dtype=np.uint8))
    common = ["--config", str(config), "--model_path", str(weights), "--image_path", str(tmp_path / "x.png")]
    assert predict_main([*common, "--save_dir", str(tmp_path / "o")]) == 0
    pseudo = Image.open(tmp_path / "o" / "pseudo_color_prediction" / "x.png")
    assert pseudo.getpalette()[:9] == [v for c in colours for v in c]
    assert predict_main([*common, "--save_dir", str(tmp_path / "c"), "--custom_color", "9", "9", "9"]) == 0
    assert Image.open(tmp_path / "c" / "pseudo_color_prediction" / "x.png").getpalette()[:6] == [9, 9, 9, 3, 240, 4]
    config.write_text(config.read_text().replace("- 230", "- 300"))
    with pytest.raises(ConfigError, match=r"mine.yml: val_dataset.palette: Dataset.palette must be a list of 3 "):
        predict_main([*common, "--save_dir", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()
