"""paddleseg.deploy.outputs: the pictures are the bytes OpenCV's and Pillow's file writers give, written
whole or not at all under any file name; palettes and label-id tables; output names (the rules in
detail: tests/test_predict.py and tests/test_deploy_inputs.py)."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from paddleseg.deploy import outputs
from paddleseg.deploy.errors import DeployError
from paddleseg.utils import atomic


@pytest.fixture
def label():
    return np.random.default_rng(0).integers(0, 19, (24, 40)).astype(np.uint8)


def test_pictures_are_the_bytes_of_the_usual_file_writers(tmp_path, label):
    """Encoded in memory, then written: the same files as PIL's save and cv2.imwrite on a path."""
    palette = outputs.palette_table([[128, 64, 128], [244, 35, 232]], custom_color=[1, 2, 3])
    image = np.random.default_rng(1).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    outputs.save_pseudo_color(label, tmp_path / "p.png", palette)
    reference = Image.fromarray(label, mode="P")
    reference.putpalette(palette.flatten().tolist())
    reference.save(tmp_path / "p_ref.png")
    assert (tmp_path / "p.png").read_bytes() == (tmp_path / "p_ref.png").read_bytes()
    outputs.save_rgb(image, tmp_path / "rgb.png")
    cv2.imwrite(str(tmp_path / "rgb_ref.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert (tmp_path / "rgb.png").read_bytes() == (tmp_path / "rgb_ref.png").read_bytes()
    outputs.save_gray(label, tmp_path / "g.png")
    Image.fromarray(label, mode="L").save(tmp_path / "g_ref.png")
    assert (tmp_path / "g.png").read_bytes() == (tmp_path / "g_ref.png").read_bytes()
    assert palette[:2].tolist() == [[1, 2, 3], [244, 35, 232]] and not palette[2:].any()


def test_writer_writes_every_requested_folder(tmp_path, label):
    image = np.zeros((24, 40, 3), np.uint8)
    table = outputs.label_id_table([7, 8, 11])
    writer = outputs.OutputWriter(tmp_path, outputs.palette_table([[255, 0, 0]] * 19), save_label=True,
                                  save_label_ids=True, label_ids=table)
    writer.write(Path("sub/a.png"), image, label)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == [
        "added_prediction/sub/a.png", "label/sub/a.png", "label_ids/sub/a.png", "pseudo_color_prediction/sub/a.png"]
    ids = np.asarray(Image.open(tmp_path / "label_ids" / "sub" / "a.png"))
    np.testing.assert_array_equal(ids, table[label])
    assert table[:4].tolist() == [7, 8, 11, 0]
    added = cv2.imread(str(tmp_path / "added_prediction" / "sub" / "a.png"))
    assert np.abs(added.astype(int) - [0, 0, 102]).max() <= 1  # 0.4 of red on a black photo (BGR on disk)


def test_a_file_name_that_is_not_utf8_is_written(tmp_path, label):
    name = Path(os.fsdecode(b"x\xff.png"))
    outputs.save_rgb(np.zeros((4, 4, 3), np.uint8), tmp_path / name)
    assert os.listdir(os.fsencode(tmp_path)) == [b"x\xff.png"]


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_partial(tmp_path, label, monkeypatch):
    target = tmp_path / "a.png"
    outputs.save_gray(label, target)
    before = target.read_bytes()
    real_fdopen = os.fdopen

    class DiskFull:
        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[:10])
            raise OSError(28, "No space left on device")

        def fileno(self):
            return self.file.fileno()

    monkeypatch.setattr(atomic.os, "fdopen", DiskFull)
    with pytest.raises(OSError, match="No space left"):
        outputs.save_gray(label + 1, target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_save_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("mine")
    for save_dir, where in ((tmp_path / "taken", ""), (tmp_path / "taken" / "sub", "is a file")):
        with pytest.raises(DeployError, match=f"--save_dir {save_dir}: not a folder") as error:
            outputs.check_save_dir(save_dir)
        assert where in str(error.value)
    outputs.check_save_dir(tmp_path / "new" / "deeper")  # can be made: fine


def test_colorize_looks_up_every_id_as_numpy_indexing_does():
    rng = np.random.default_rng(2)
    table = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    for shape in [(1, 1), (5, 3), (37, 61), (512, 1024)]:
        label = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(outputs.colorize(label, table), table[label])
    view = rng.integers(0, 256, (40, 50), dtype=np.uint8)[3:30:2, 5:44]  # not contiguous
    np.testing.assert_array_equal(outputs.colorize(view, table), table[view])
    short = table[:19]  # a table of fewer than 256 colours is indexed by numpy, out-of-range ids are an error
    np.testing.assert_array_equal(outputs.colorize(view % 19, short), short[view % 19])
    with pytest.raises(IndexError):
        outputs.colorize(np.full((2, 2), 200, np.uint8), short)
    assert outputs.colorize(np.zeros((0, 4), np.uint8), table).shape == (0, 4, 3)
