"""paddleseg.transforms.io: pixels as OpenCV reads them, named errors, and the pixel limit read from the
header before decoding (decompression bombs)."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from paddleseg.deploy import images
from paddleseg.errors import DatasetError
from paddleseg.transforms import io
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


def write_png_bomb(path, width=20_000, height=20_000):
    """A valid 1-bit grey PNG of ``width`` x ``height`` zero pixels: about 50 KB on disk for 20000x20000
    (400 million pixels, 1.2 GB once decoded to RGB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def never_decode(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the oversized image was decoded")

    monkeypatch.setattr(images.cv2, "imdecode", fail)  # paddleseg.deploy.images decodes for io
    monkeypatch.setattr(io.pyspng, "load", fail)


def test_the_bomb_is_small_on_disk_and_its_header_says_400_million_pixels(bomb):
    assert bomb.stat().st_size < 200_000
    assert io.header_pixels(bomb) == (400_000_000, "")  # above Pillow's own limit: only the count is known


def test_an_oversized_image_or_label_is_refused_from_its_header_without_decoding(bomb, monkeypatch):
    never_decode(monkeypatch)
    with pytest.raises(io.ImageTooLarge, match=r"bomb.png: image of 400000000 pixels is above the limit of "
                                               r"178956970 pixels"):
        read_image(bomb)
    with pytest.raises(io.ImageTooLarge, match=r"bomb.png: label image of 400000000 pixels"):
        read_label(bomb)


def test_max_pixels_sets_the_limit_both_ways(tmp_path, bomb, rng):
    cv2.imwrite(str(tmp_path / "a.png"), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    assert read_image(tmp_path / "a.png", max_pixels=2000).shape == (40, 50, 3)  # exactly at the limit
    with pytest.raises(io.ImageTooLarge, match=r"a.png: image of 50x40 = 2000 pixels is above the limit of 1999"):
        read_image(tmp_path / "a.png", max_pixels=1999)
    # above Pillow's own limit the count comes from Pillow's message: this fails if Pillow rewords it
    io.check_pixels(bomb, max_pixels=400_000_000)
    with pytest.raises(io.ImageTooLarge):
        io.check_pixels(bomb, max_pixels=399_999_999)


def test_the_default_limit_is_pillows_decompression_bomb_error_threshold():
    assert io.MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS == 178_956_970


@pytest.mark.parametrize("name", ["label.png", "label.jpg"])
def test_a_jpeg_label_is_refused_whatever_its_name(tmp_path, rng, name):
    """JPEG invents class ids at edges (here ids 11-14 appear in a 0..10 label): a label's format is read
    from its content, so a JPEG named .png is refused too."""
    label = np.kron(rng.integers(0, 11, (16, 24)), np.ones((5, 5), dtype=np.int64)).astype(np.uint8)
    path = tmp_path / name
    Image.fromarray(label).save(path, format="JPEG", quality=90)
    decoded = np.asarray(Image.open(path))
    assert (decoded != label).mean() > 0.01 and decoded.max() > 10  # what training would have learned from
    named = ", though the file is named .png" if name.endswith(".png") else ""
    with pytest.raises(DatasetError, match=f"{name}: the label image is stored as JPEG{named}: lossy compression"):
        read_label(path)


def test_lossless_label_formats_still_read(tmp_path, rng):
    label = rng.integers(0, 19, (20, 30)).astype(np.uint8)
    for name in ("a.bmp", "a.tif", "a.png"):
        Image.fromarray(label).save(tmp_path / name)
        np.testing.assert_array_equal(read_label(tmp_path / name), label)
