import cv2
import numpy as np
import pytest
from PIL import Image

from paddleseg.errors import DatasetError
from paddleseg.transforms.io import read_image, read_label


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_rgb_png_fast_path_gives_opencvs_pixels(tmp_path, rng):
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    got = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(got, rgb)
    np.testing.assert_array_equal(got, cv2.cvtColor(cv2.imread(str(tmp_path / "a.png")), cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_rgba_images_are_read_as_rgb_like_opencv(tmp_path, rng, channels):
    pixels = rng.integers(0, 256, (20, 30, channels) if channels > 1 else (20, 30), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    got = read_image(tmp_path / "a.png")
    assert got.shape == (20, 30, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, cv2.cvtColor(cv2.imread(str(tmp_path / "a.png")), cv2.COLOR_BGR2RGB))


def test_grey_and_palette_labels_give_class_ids(tmp_path, rng):
    ids = rng.integers(0, 19, (25, 40), dtype=np.uint8)
    ids[0, :5] = 255
    Image.fromarray(ids, mode="L").save(tmp_path / "grey.png")
    palette = Image.fromarray(ids, mode="P")
    palette.putpalette(list(rng.integers(0, 256, 768)))
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_label(tmp_path / "grey.png"), ids)
    np.testing.assert_array_equal(read_label(tmp_path / "palette.png"), ids)


def test_truncated_files_are_named_errors(tmp_path, rng):
    cv2.imwrite(str(tmp_path / "a.png"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 19, (64, 64), dtype=np.uint8), mode="L").save(tmp_path / "l.png")
    for name in ("a.png", "l.png"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"a.png: unreadable or truncated image"):
        read_image(tmp_path / "a.png")
    with pytest.raises(DatasetError, match=r"l.png: unreadable or truncated label image"):
        read_label(tmp_path / "l.png")
    with pytest.raises(DatasetError, match="file not found"):
        read_image(tmp_path / "missing.png")
