"""paddleseg.utils.visualize: Cityscapes palette, overrides, overlay arithmetic, palette PNGs."""
import numpy as np
import pytest
from PIL import Image

from paddleseg.utils.visualize import colorize, get_palette, overlay, save_pseudo_color


def test_palette_has_cityscapes_colours_and_black_ignore():
    palette = get_palette(19)
    assert tuple(palette[0]) == (128, 64, 128)  # road
    assert tuple(palette[13]) == (0, 0, 142)  # car
    assert tuple(palette[255]) == (0, 0, 0)


def test_palette_extra_classes_are_distinct():
    palette = get_palette(40)
    assert len({tuple(c) for c in palette[:40]} | {(0, 0, 0)}) == 41


def test_custom_color_overrides_first_classes():
    palette = get_palette(19, custom_color=[1, 2, 3, 4, 5, 6])
    assert tuple(palette[0]) == (1, 2, 3) and tuple(palette[1]) == (4, 5, 6)
    assert tuple(palette[2]) == tuple(get_palette(19)[2])
    with pytest.raises(ValueError):
        get_palette(19, custom_color=[1, 2])


def test_overlay_blends_photo_and_colour():
    image = np.full((2, 3, 3), 200, dtype=np.uint8)
    label = np.array([[0, 13, 255], [1, 1, 1]], dtype=np.uint8)
    palette = get_palette(19)
    out = overlay(image, label, palette)
    expected = np.round(0.6 * image + 0.4 * colorize(label, palette)).astype(np.uint8)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_pseudo_color_png_reads_back_ids_and_colours(tmp_path):
    label = np.array([[0, 5], [18, 255]], dtype=np.uint8)
    save_pseudo_color(label, tmp_path / "a" / "p.png", get_palette(19))
    with Image.open(tmp_path / "a" / "p.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), label)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB"))[0, 1], get_palette(19)[5])


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_partial(tmp_path, monkeypatch):
    from paddleseg.utils import visualize

    label = np.zeros((4, 6), dtype=np.uint8)
    target = tmp_path / "out" / "a.png"
    visualize.save_gray(label, target)
    before = target.read_bytes()

    def dies_halfway(self, fp, *args, **kwargs):  # encoded in memory, then written (tests/test_deploy_outputs.py)
        fp.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        visualize.save_gray(label + 1, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]
