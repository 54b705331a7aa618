"""paddleseg.deploy.images: pixels as OpenCV reads them, from any file name; only regular files; the
pixel limit read from the header, nothing decoded above it."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from paddleseg.deploy import images
from paddleseg.deploy.errors import ImageError, ImageTooLarge

from test_io import write_png_bomb


def test_pixels_equal_opencvs_file_reader_for_each_format(tmp_path):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (23, 31, 3), dtype=np.uint8)
    for name in ("a.png", "a.jpg", "a.bmp", "a.webp", "a.tif"):
        cv2.imwrite(str(tmp_path / name), bgr)
        expected = cv2.cvtColor(cv2.imread(str(tmp_path / name)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(images.read_rgb(tmp_path / name), expected)
    cv2.imwrite(str(tmp_path / "grey.png"), bgr[..., 0])
    assert images.read_rgb(tmp_path / "grey.png").shape == (23, 31, 3)


def test_exif_orientation_is_applied_as_opencvs_file_reader_does(tmp_path):
    picture = np.zeros((20, 40, 3), np.uint8)
    picture[:, :10] = 255
    im = Image.fromarray(picture)
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90 degrees
    im.save(tmp_path / "o.jpg", exif=exif)
    got = images.read_rgb(tmp_path / "o.jpg")
    assert got.shape == (40, 20, 3)
    np.testing.assert_array_equal(got, cv2.cvtColor(cv2.imread(str(tmp_path / "o.jpg")), cv2.COLOR_BGR2RGB))


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    """OpenCV's own imread crashes the process on such a name; reading the bytes first does not."""
    name = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/x\xff.png"))
    ok, data = cv2.imencode(".png", np.full((5, 7, 3), (10, 20, 30), np.uint8))
    with open(os.fsencode(name), "wb") as f:
        f.write(data.tobytes())
    assert images.read_rgb(name)[0, 0].tolist() == [30, 20, 10]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"pipe.png: is a FIFO \(named pipe\), not a regular file"):
        images.read_rgb(fifo)
    with pytest.raises(ImageError, match="is a folder"):
        images.read_rgb(tmp_path)


@pytest.mark.parametrize("content, message", [(None, "file not found"), (b"", "not an image format Pillow knows"),
                                              (b"not a png", "not an image format Pillow knows")])
def test_missing_and_unreadable_files_are_image_errors_naming_them(tmp_path, content, message):
    path = tmp_path / "a.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=f"a.png: .*{message}"):
        images.read_rgb(path)


def test_a_truncated_image_is_an_image_error(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "a.png").write_bytes((tmp_path / "a.png").read_bytes()[:300])
    with pytest.raises(ImageError, match="a.png: unreadable or truncated image"):
        images.read_rgb(tmp_path / "a.png")


def test_oversized_images_are_refused_from_the_header(tmp_path, monkeypatch):
    bomb = write_png_bomb(tmp_path / "bomb.png")
    monkeypatch.setattr(images.cv2, "imdecode", lambda *a: pytest.fail("the oversized image was decoded"))
    with pytest.raises(ImageTooLarge, match=r"bomb.png: image of 400000000 pixels is above the limit of "
                                            r"178956970 pixels"):
        images.read_rgb(bomb)
    assert images.MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS


def test_max_pixels_none_is_no_limit_and_the_size_is_named(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 5, 3), np.uint8))
    assert images.header_pixels(tmp_path / "a.png") == (20, "5x4")
    assert images.read_checked(tmp_path / "a.png", None) == (tmp_path / "a.png").read_bytes()
    with pytest.raises(ImageTooLarge, match=r"a.png: label image of 5x4 = 20 pixels is above the limit of 19"):
        images.check_pixels(tmp_path / "a.png", 19, "label image")
