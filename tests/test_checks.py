import json
import os
import shutil

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
