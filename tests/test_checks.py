"""paddleseg.datasets.checks: the content check, its cache of samples that passed (a changed file is
checked again, even with its size and mtime kept) and the pixel limit."""
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paddleseg.datasets import checks
from paddleseg.datasets.cityscapes import Cityscapes
from paddleseg.errors import DatasetError
from paddleseg.transforms import Normalize


@pytest.fixture
def data(tmp_path, tiny_cityscapes):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    return Cityscapes(str(root), [Normalize()], mode="train")


def count_reads(monkeypatch):
    reads = []
    real = checks.check_pair

    def counting(pair, **kwargs):
        reads.append(pair[0])
        return real(pair, **kwargs)

    monkeypatch.setattr(checks, "check_pair", counting)
    return reads


def test_the_cache_skips_unchanged_samples_that_passed(tmp_path, data, monkeypatch):
    cache = tmp_path / "cache.json"
    reads = count_reads(monkeypatch)
    assert data.check_contents(progress=False, workers=1, cache=cache) == []
    assert len(reads) == len(data) == len(json.loads(cache.read_text()))
    reads.clear()
    assert data.check_contents(progress=False, workers=1, cache=cache) == []
    assert reads == []


def test_a_changed_file_is_checked_again_and_a_bad_one_is_never_cached(tmp_path, data, monkeypatch):
    cache = tmp_path / "cache.json"
    data.check_contents(progress=False, workers=1, cache=cache)
    label_path = data.file_list[3][1]
    label = np.array(Image.open(label_path))
    label[0, 0] = 40  # out of range
    Image.fromarray(label).save(label_path)
    os.utime(label_path, ns=(1, 1))  # a different modification time whatever the clock resolution
    reads = count_reads(monkeypatch)
    with pytest.raises(DatasetError, match=r"40 \(1 px\)"):
        data.check_contents(progress=False, workers=1, cache=cache)
    assert reads == [data.file_list[3][0]]
    with pytest.raises(DatasetError):  # still not cached as passed
        data.check_contents(progress=False, workers=1, cache=cache)


def test_an_unreadable_cache_is_ignored(tmp_path, data):
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    assert data.check_contents(progress=False, workers=1, cache=cache) == []
    assert len(json.loads(cache.read_text())) == len(data)


def stored_png(label):
    """PNG bytes without compression: the size depends only on the label's shape."""
    buffer = io.BytesIO()
    Image.fromarray(label).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def same_size_bad_label(data, index):
    """Rewrite sample ``index``'s label uncompressed, and return the bytes of the same label with one pixel
    set to 40 (out of range): the same file size."""
    label_path = data.file_list[index][1]
    label = np.array(Image.open(label_path))
    Path(label_path).write_bytes(stored_png(label))
    label[0, 0] = 40
    return stored_png(label)


def test_a_same_size_label_written_over_with_its_mtime_set_back_is_checked_again(tmp_path, data, monkeypatch):
    cache = tmp_path / "cache.json"
    bad = same_size_bad_label(data, 3)
    data.check_contents(progress=False, workers=1, cache=cache)
    label_path = data.file_list[3][1]
    before = os.stat(label_path)
    time.sleep(0.05)  # the ctime moves by more than the file system's time-stamp granularity
    with open(label_path, "r+b") as f:  # in place: same inode
        f.write(bad)
        f.truncate()
    os.utime(label_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r
    after = os.stat(label_path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    reads = count_reads(monkeypatch)
    with pytest.raises(DatasetError, match=r"40 \(1 px\)"):
        data.check_contents(progress=False, workers=1, cache=cache)
    assert reads == [data.file_list[3][0]]


def test_a_label_replaced_by_rename_with_the_same_size_and_mtime_is_checked_again(tmp_path, data, monkeypatch):
    cache = tmp_path / "cache.json"
    bad = same_size_bad_label(data, 3)
    data.check_contents(progress=False, workers=1, cache=cache)
    label_path = data.file_list[3][1]
    before = os.stat(label_path)
    replacement = tmp_path / "new.png"
    replacement.write_bytes(bad)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, label_path)  # what an editor or `cp -p` + `mv` leaves: a new inode
    assert os.stat(label_path).st_size == before.st_size and os.stat(label_path).st_ino != before.st_ino
    with pytest.raises(DatasetError, match=r"40 \(1 px\)"):
        data.check_contents(progress=False, workers=1, cache=cache)


def test_an_oversized_image_is_a_named_problem_and_never_decoded(tmp_path, data, monkeypatch):
    from test_io import write_png_bomb

    image_path = data.file_list[2][0]
    write_png_bomb(Path(image_path))
    monkeypatch.setattr(checks.cv2, "imread", lambda *a: pytest.fail("the oversized image was decoded"))
    problems = checks.check_contents(data.file_list[2:3], data.num_classes, workers=1, progress=False,
                                     raise_error=False)
    assert problems == [f"{image_path}: image of 400000000 pixels is above the limit of 178956970 pixels; "
                        f"not decoded (a decompression bomb?)"]
