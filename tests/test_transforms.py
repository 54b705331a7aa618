"""Transforms: geometry keeps image and label aligned, labels stay nearest, parity with upstream's
evaluation preprocessing, reproducible randomness, the fused scale+crop equals the two steps and draws
the same numbers, a second target moves with the label."""
import cv2
import numpy as np
import pytest
import yaml

from paddleseg.cvlibs import builder, manager
from paddleseg.transforms import (
    Compose,
    GeometricTransform,
    Normalize,
    RandomBlur,
    RandomDistort,
    RandomHorizontalFlip,
    RandomPaddingCrop,
    RandomRotation,
    RandomScaleAspect,
    Resize,
    ResizeByLong,
    ResizeByShort,
    ResizeStepScaling,
    read_image,
    read_label,
)
from paddleseg.transforms.plan import Crop, Mirror, Scale, ScaleCrop, fuse

from conftest import REPO, fixture_path

REFERENCE_TRAIN = [
    {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
    {"type": "RandomPaddingCrop", "crop_size": [1024, 512]},
    {"type": "RandomHorizontalFlip"},
    {"type": "RandomDistort", "brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4},
    {"type": "Normalize"},
]


def coded_pair(h=64, w=96):
    """An image whose pixels encode the label: label = block id, image channel 0 = 10 * label."""
    label = ((np.arange(h)[:, None] // 8) * 3 + (np.arange(w)[None, :] // 32)).astype(np.uint8) % 19
    img = np.stack([label * 10, label * 10, np.full_like(label, 50)], axis=-1).astype(np.uint8)
    return img, label


def assert_aligned(img, label, ignore=255, tolerance=0.01):
    """Inside each label region (pixels whose 3x3 neighbourhood has one label) the image still encodes
    the label exactly; interpolation may only mix colours at region borders. A shift of one pixel or
    more between image and label breaks this."""
    kernel = np.ones((3, 3), np.uint8)
    interior = (cv2.erode(label, kernel) == cv2.dilate(label, kernel)) & (label != ignore)
    decoded = np.rint(img[..., 0].astype(np.float32) / 10)
    assert interior.sum() > 0.3 * label.size
    wrong = (decoded != label) & interior
    assert wrong.mean() <= tolerance, f"image and label disagree on {wrong.mean():.1%} of interior pixels"


def test_normalize_matches_upstream_fixture():
    # tolerance 1e-6: float32 arithmetic in both; the LUT holds the same float32 values
    img = read_image(fixture_path("predict", "scene_512x256.png"))
    expected = np.load(fixture_path("predict", "scene_512x256_input.npy"))
    out, label = Compose([Normalize()])(img, None, np.random.default_rng(0))
    assert label is None
    assert out.dtype == np.float32 and out.shape == expected.shape[1:]
    assert np.abs(out - expected[0]).max() <= 1e-6
    out_float, _ = Compose([Normalize()])(img.astype(np.float32), None, np.random.default_rng(0))
    assert np.abs(out_float - expected[0]).max() <= 1e-6


def test_reference_train_pipeline_builds_from_config_and_outputs_chw():
    ts = [builder.build_component(c, manager.TRANSFORMS) for c in REFERENCE_TRAIN]
    img, label = coded_pair(1024, 2048)
    out, lab = Compose(ts)(img, label, np.random.default_rng(3))
    assert out.shape == (3, 512, 1024) and out.dtype == np.float32
    assert lab.shape == (512, 1024) and lab.dtype == np.int64
    assert -1.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("seed", range(6))
def test_fused_scale_crop_equals_separate_steps(seed):
    img, label = coded_pair(100, 150)
    ts = [ResizeStepScaling(0.5, 2.0, 0.25), RandomPaddingCrop([120, 80], im_padding_value=0), RandomHorizontalFlip()]
    a_img, a_lab = Compose(ts)(img, label, np.random.default_rng(seed))
    b_img, b_lab = Compose(ts, fuse=False)(img, label, np.random.default_rng(seed))
    assert a_img.shape == b_img.shape == (3, 80, 120)
    assert np.abs(a_img - b_img).max() <= 2  # interpolation rounding (warpAffine vs resize), grey levels
    assert (a_lab != b_lab).mean() < 0.02  # nearest neighbour ties at block edges only


SHIPPED_CONFIGS = ["_base_/cityscapes.yml", "espnet_cityscapes_1024_512_120k_x2.yml",
                   "quickstart/espnetv2_synthetic.yml"]


def textured_pair(h, w, seed=0):
    """Blurred noise (every pixel interpolated differently) and the block label of :func:`coded_pair`."""
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0), coded_pair(h, w)[1]


@pytest.mark.parametrize("config", SHIPPED_CONFIGS)
@pytest.mark.parametrize("h, w", [(64, 128), (61, 97), (129, 257), (300, 311), (517, 1023)])
def test_shipped_pipelines_fused_equal_unfused_and_draw_the_same_numbers(config, h, w):
    # crop 256x128 or 1024x512 on these sizes scaled by 0.5..2: windows inside, across the edge and
    # larger than the scaled image (padding), odd sizes. Tolerance as for the two-step test above:
    # 2 grey levels of interpolation rounding, labels differ only at nearest-neighbour ties.
    configs = yaml.safe_load((REPO / "configs" / config).read_text())["train_dataset"]["transforms"]
    ts = [builder.build_component(c, manager.TRANSFORMS) for c in configs]
    n_geometric = next(i for i, t in enumerate(ts) if not isinstance(t, GeometricTransform))
    assert [type(t).__name__ for t in ts[:2]] == ["ResizeStepScaling", "RandomPaddingCrop"]  # the fused pair
    img, label = textured_pair(h, w)
    for seed in range(4):
        rng_fused, rng_steps = np.random.default_rng((0, 0, seed)), np.random.default_rng((0, 0, seed))
        a = Compose(ts[:n_geometric]).apply({"img": img, "label": label}, rng_fused)
        b = Compose(ts[:n_geometric], fuse=False).apply({"img": img, "label": label}, rng_steps)
        assert a["img"].shape == b["img"].shape and a["img"].dtype == b["img"].dtype
        assert np.abs(a["img"].astype(np.float32) - b["img"]).max() <= 2
        assert (a["label"] != b["label"]).mean() < 0.02
        assert np.array_equal(a["label"] == 255, b["label"] == 255)  # the same padded area
        assert rng_fused.bit_generator.state == rng_steps.bit_generator.state
        # the whole pipeline: the photometric transforms then draw the same numbers too
        full_a = Compose(ts)(img, label, np.random.default_rng((0, 0, seed)))
        full_b = Compose(ts, fuse=False)(img, label, np.random.default_rng((0, 0, seed)))
        assert np.array_equal(full_a[1], a["label"]) and np.array_equal(full_b[1], b["label"])
        # RandomDistort's gains and its 8-bit HSV round trip can widen 1-2 grey levels to about 7; 0.1 is
        # about 13 levels after Normalize (a shifted window or other draws differ by far more)
        assert np.abs(full_a[0] - full_b[0]).max() <= 0.1


def test_fuse_merges_only_a_bilinear_scale_directly_followed_by_a_crop():
    scale, crop = Scale(30, 20), Crop(1, 2, 16, 8, 127.5, 255)
    assert fuse([scale, crop, Mirror()]) == [ScaleCrop(scale, crop), Mirror()]
    assert fuse([Mirror(), scale, crop, scale, crop]) == [Mirror(), ScaleCrop(scale, crop), ScaleCrop(scale, crop)]
    for unfused in ([crop, scale], [scale, Mirror(), crop], [Scale(30, 20, cv2.INTER_NEAREST), crop]):
        assert fuse(unfused) == unfused


def test_an_edge_map_target_moves_exactly_like_the_label():
    ts = [RandomRotation(20), ResizeStepScaling(0.5, 2.0, 0.25), RandomPaddingCrop([96, 64]), RandomHorizontalFlip(),
          RandomScaleAspect(), RandomDistort(), Normalize()]
    img, label = textured_pair(61, 97)
    edge = (cv2.Canny(label, 0, 0) > 0).astype(np.uint8)
    for seed in range(6):
        for fuse_steps in (True, False):
            compose = Compose(ts, fuse=fuse_steps)
            out = compose.apply({"img": img, "label": label, "twin": label.copy(), "edge": edge},
                                np.random.default_rng(seed))
            assert np.array_equal(out["twin"], out["label"])  # every target follows the label's rules
            assert set(np.unique(out["edge"])) <= {0, 1, 255}
            assert np.array_equal(out["edge"] == 255, out["label"] == 255)  # padded with the ignore index
            chw, lab = compose(img, label, np.random.default_rng(seed))  # the image-and-label shorthand
            assert np.array_equal(chw, out["img"].transpose(2, 0, 1)) and np.array_equal(lab, out["label"])


def test_compose_refuses_non_transforms_and_targets_of_another_size():
    with pytest.raises(TypeError, match=r"Compose: <function .*<lambda> at .* is not a transform: a transform "
                                        r"subclasses GeometricTransform"):
        Compose([lambda img, label, rng: (img, label)])
    img, label = coded_pair(32, 48)
    with pytest.raises(ValueError, match=r"Compose: sample\['edge'\] is 47x32, the image 48x32"):
        Compose([Normalize()]).apply({"img": img, "label": label, "edge": label[:, 1:]}, np.random.default_rng(0))


def test_padding_crop_pads_label_with_ignore_and_image_with_value():
    img, label = coded_pair(40, 60)
    out, lab = RandomPaddingCrop([100, 50], im_padding_value=127.5)(img, label, np.random.default_rng(0))
    assert out.shape == (50, 100, 3) and lab.shape == (50, 100)
    assert (lab[:, 60:] == 255).all() and (lab[40:] == 255).all()
    assert np.all(out[:, 60:] == 127.5) and np.array_equal(lab[:40, :60], label)
    # fused path pads the same way when the scaled image is smaller than the crop
    out2, lab2 = Compose([ResizeStepScaling(0.5, 0.5), RandomPaddingCrop([100, 50])])(img, label,
                                                                                   np.random.default_rng(0))
    assert (lab2[:, 30:] == 255).all() and (lab2[20:] == 255).all()
    assert np.all(out2[:, 20:, :] == 127.5) and np.all(out2[:, :, 30:] == 127.5)


@pytest.mark.parametrize("transform", [
    Resize([50, 30]), Resize([50, 30], keep_ratio=True), Resize([70, 90], interp="NEAREST"), ResizeByShort(50),
    ResizeByLong(50), ResizeStepScaling(0.5, 2.0, 0.25), ResizeStepScaling(0.5, 2.0, 0.0),
    RandomPaddingCrop([64, 48]), RandomHorizontalFlip(1.0), RandomScaleAspect(0.5, 0.33),
])
def test_geometry_keeps_image_and_label_aligned(transform):
    img, label = coded_pair()
    for seed in range(3):
        out, lab = transform(img, label, np.random.default_rng(seed))
        assert out.shape[:2] == lab.shape and out.dtype == np.uint8 and lab.dtype == np.uint8
        assert set(np.unique(lab)) <= set(np.unique(label)) | {255}, "labels must stay nearest (no new ids)"
        assert_aligned(out, lab)


def test_resize_sizes_follow_paddleseg_conventions():
    img, label = coded_pair(64, 96)
    rng = np.random.default_rng(0)
    assert Resize([50, 30])(img, label, rng)[0].shape == (30, 50, 3)  # [width, height]
    assert Resize([48, 48], keep_ratio=True)(img, label, rng)[0].shape == (32, 48, 3)
    assert ResizeByShort(32)(img, label, rng)[0].shape == (32, 48, 3)
    assert ResizeByShort(32, max_size=40)(img, label, rng)[0].shape == (27, 40, 3)
    assert ResizeByLong(48)(img, label, rng)[0].shape == (32, 48, 3)
    assert {Resize([70, 90], interp="RANDOM")(img, label, np.random.default_rng(s))[0].shape for s in range(5)} == {(90, 70, 3)}
    sizes = {ResizeStepScaling(0.5, 2.0, 0.25)(img, label, np.random.default_rng(s))[0].shape[1] for s in range(60)}
    assert sizes == {48, 72, 96, 120, 144, 168, 192}


def test_flip_mirrors_both():
    img, label = coded_pair()
    out, lab = RandomHorizontalFlip(prob=1.0)(img, label, np.random.default_rng(0))
    assert np.array_equal(out, img[:, ::-1]) and np.array_equal(lab, label[:, ::-1])
    out, lab = RandomHorizontalFlip(prob=0.0)(img, label, np.random.default_rng(0))
    assert out is img and lab is label


def test_rotation_pads_corners_with_ignore_and_keeps_alignment():
    img, label = coded_pair()
    out, lab = RandomRotation(max_rotation=30, im_padding_value=0)(img, label, np.random.default_rng(1))
    assert out.shape[:2] == lab.shape and lab.shape[0] > 64 and lab.shape[1] > 96
    assert lab[0, 0] == 255 and lab[-1, -1] == 255
    assert set(np.unique(lab)) <= set(np.unique(label)) | {255}
    assert_aligned(out, lab)


def test_distort_changes_only_the_image_and_each_op_does_its_job():
    rng = np.random.default_rng(0)
    img = rng.integers(30, 220, (32, 48, 3), dtype=np.uint8)
    label = np.zeros((32, 48), np.uint8)
    out, lab = RandomDistort(hue_prob=1, brightness_prob=1, contrast_prob=1, saturation_prob=1)(img, label, rng)
    assert lab is label and out.dtype == np.uint8 and out.shape == img.shape and not np.array_equal(out, img)
    assert np.array_equal(RandomDistort.brightness(img, 1.0), img)
    assert np.abs(RandomDistort.brightness(img, 0.5).astype(int) - np.rint(img * 0.5)).max() <= 0
    flat = RandomDistort.contrast(img, 0.0)
    assert len(np.unique(flat)) == 1  # contrast 0: the grey mean everywhere
    grey = RandomDistort.saturation(img, 0.0)
    assert np.abs(grey[..., 0].astype(int) - grey[..., 1]).max() <= 1  # saturation 0: grey
    assert np.abs(RandomDistort.hue(img, 0).astype(int) - img).max() <= 8  # 8-bit HSV round trip only
    none = RandomDistort(brightness_prob=0, contrast_prob=0, saturation_prob=0, hue_prob=0)
    assert np.array_equal(none(img, None, rng)[0], img)


def test_blur_with_probability_one_smooths():
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, 16:] = 255
    for kind in ("gaussian", "median", "blur"):
        out, _ = RandomBlur(prob=1.0, blur_type=kind)(img, None, np.random.default_rng(0))
        assert out.shape == img.shape
        if kind != "median":
            assert 0 < out[16, 15, 0] < 255
    assert RandomBlur(prob=0.0)(img, None, np.random.default_rng(0))[0] is img


def test_same_rng_seed_gives_same_augmentation_and_different_seeds_differ():
    ts = [builder.build_component(c, manager.TRANSFORMS) for c in REFERENCE_TRAIN]
    ts[1] = RandomPaddingCrop([64, 32])
    img, label = coded_pair(128, 192)
    a = Compose(ts)(img, label, np.random.default_rng((0, 0, 5)))
    b = Compose(ts)(img, label, np.random.default_rng((0, 0, 5)))
    c = Compose(ts)(img, label, np.random.default_rng((0, 1, 5)))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_read_label_keeps_palette_indices(tmp_path):
    from PIL import Image

    label = np.array([[0, 1, 2], [255, 18, 7]], np.uint8)
    im = Image.fromarray(label, mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, 3 * i % 256)])
    im.save(tmp_path / "p.png")
    assert np.array_equal(read_label(tmp_path / "p.png"), label)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((2, 3, 3), np.uint8))
    from paddleseg.errors import DatasetError

    with pytest.raises(DatasetError, match="rgb.png.*single-channel"):
        read_label(tmp_path / "rgb.png")


def test_read_image_is_rgb(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "b.png"), bgr)
    rgb = read_image(tmp_path / "b.png")
    assert rgb[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("cls, arguments, message", [
    (RandomPaddingCrop, {"crop_size": [0, 0]}, "RandomPaddingCrop.crop_size must be [width, height] with two "
                                               "integers from 1 to 65535, got [0, 0]"),
    (RandomPaddingCrop, {"crop_size": [20000, 20000]}, "RandomPaddingCrop.crop_size must be at most 178956970 "
                                                       "pixels"),
    (RandomPaddingCrop, {"crop_size": [64.5, 32]}, "RandomPaddingCrop.crop_size must be [width, height]"),
    (RandomPaddingCrop, {"label_padding_value": 300}, "RandomPaddingCrop.label_padding_value must be an integer "
                                                      ">= 0 and <= 255, got 300"),
    (Resize, {"target_size": [512]}, "Resize.target_size must be [width, height]"),
    (Resize, {"interp": "BILINEAR"}, "Resize.interp must be one of NEAREST, LINEAR, CUBIC, AREA, LANCZOS4, RANDOM"),
    (ResizeByShort, {"short_size": 0}, "ResizeByShort.short_size must be an integer >= 1 and <= 65535, got 0"),
    (ResizeByLong, {"long_size": -512}, "ResizeByLong.long_size must be an integer >= 1 and <= 65535, got -512"),
    (ResizeStepScaling, {"min_scale_factor": 0}, "ResizeStepScaling.min_scale_factor must be a number > 0, got 0"),
    (ResizeStepScaling, {"min_scale_factor": 2.0, "max_scale_factor": 1.0},
     "ResizeStepScaling.max_scale_factor must be a number >= 2.0 and <= 16, got 1.0"),
    (ResizeStepScaling, {"max_scale_factor": 100}, "ResizeStepScaling.max_scale_factor must be a number >= 0.75 and <= 16, got 100"),
    (ResizeStepScaling, {"scale_step_size": -0.25}, "ResizeStepScaling.scale_step_size must be a number >= 0"),
    (RandomHorizontalFlip, {"prob": 1.5}, "RandomHorizontalFlip.prob must be a number >= 0 and <= 1, got 1.5"),
    (RandomHorizontalFlip, {"prob": float("nan")}, "RandomHorizontalFlip.prob must be a number >= 0 and <= 1, got nan"),
    (RandomScaleAspect, {"aspect_ratio": 3}, "RandomScaleAspect.aspect_ratio must be a number >= 0 and <= 1, got 3"),
    (RandomRotation, {"max_rotation": -15}, "RandomRotation.max_rotation must be a number >= 0 and <= 180, got -15"),
    (Normalize, {"std": [0.5, 0, 0.5]}, "Normalize.std[1] must be a number > 0, got 0.0"),
    (Normalize, {"mean": [0.5, 0.5]}, "Normalize.mean must be a list of 3 numbers, got [0.5, 0.5]"),
    (RandomDistort, {"brightness_range": 1.5},
     "RandomDistort.brightness_range must be a number >= 0 and <= 1, got 1.5"),
    (RandomDistort, {"hue_prob": -0.1}, "RandomDistort.hue_prob must be a number >= 0 and <= 1, got -0.1"),
    (RandomBlur, {"prob": 2}, "RandomBlur.prob must be a number >= 0 and <= 1, got 2"),
    (RandomBlur, {"blur_type": "box"}, "RandomBlur.blur_type must be one of gaussian, median, blur, random"),
])
def test_bad_arguments_are_value_errors_naming_the_argument_and_value(cls, arguments, message):
    with pytest.raises(ValueError) as raised:
        cls(**arguments)
    assert message in str(raised.value)


def test_built_from_a_config_a_bad_transform_argument_names_the_file_and_key():
    from paddleseg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--opts: train_dataset.transforms\[0\].crop_size: RandomPaddingCrop."
                                          r"crop_size must be \[width, height\]"):
        builder.build_component({"type": "RandomPaddingCrop", "crop_size": [0, 0]}, manager.TRANSFORMS,
                                "train_dataset.transforms[0]", lambda path: f"--opts: {path}")
