"""Bad data on disk: the checks fire before training starts, naming the file and the values (exit 2).
(The messages themselves: tests/test_datasets.py; here, that train.py runs them before any iteration.)"""
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, train_args


def first(root, kind):
    folder, pattern = {"image": ("leftImg8bit", "*_leftImg8bit.png"),
                       "label": ("gtFine", "*_gtFine_labelTrainIds.png")}[kind]
    return sorted((root / folder / "train").glob(f"*/{pattern}"))[0]


def truncate(root):
    path = first(root, "image")
    path.write_bytes(path.read_bytes()[:300])
    return [str(path), "unreadable or truncated image"]


def mismatch(root):
    path = first(root, "label")
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(path)
    return [str(path), "label size 64x32 differs from the image's 128x64"]


def out_of_range(root):
    path = first(root, "label")
    label = np.asarray(Image.open(path)).copy()
    label[:2, :5] = 40
    Image.fromarray(label).save(path)
    return [str(path), "label values outside 0..18 and 255: 40 (10 px)"]


def no_label(root):
    path = first(root, "label")
    path.unlink()
    return [str(path), "have no label"]


def empty_split(root):
    for p in (root / "leftImg8bit" / "train").glob("*/*.png"):
        p.unlink()
    return ["no images found", str(root / "leftImg8bit" / "train")]


@pytest.mark.slow
@pytest.mark.parametrize("breakage", [truncate, mismatch, out_of_range, no_label, empty_split],
                         ids=lambda f: f.__name__)
def test_bad_data_is_named_before_training_starts(tmp_path, tiny_cityscapes, breakage):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    fragments = breakage(root)
    config = write_train_config(tmp_path / "cfg.yml", root)
    done = run_script("train.py", *train_args(config, tmp_path / "out"), cwd=tmp_path)
    assert_user_error(done, *fragments)
    assert "[TRAIN]" not in done.stderr and not list((tmp_path / "out").glob("iter_*"))
