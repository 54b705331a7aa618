"""A label value outside the classes with --skip_data_check: the sample that holds it fails when it is
read, naming the label file and the value (exit 2, one ``error:`` line), instead of Paddle's IndexError
deep in the loss. (With the data check, the check names it before training: test_data_faults.py.)"""
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, train_args


def label_with_value(root, value: int):
    path = sorted((root / "gtFine" / "train").glob("*/*_gtFine_labelTrainIds.png"))[2]
    label = np.asarray(Image.open(path)).copy()
    label[10:15, 20:25] = value
    Image.fromarray(label).save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("workers", [pytest.param("0", id="in_process"),
                                     pytest.param("1", id="one_worker", marks=pytest.mark.slow)])
def test_a_label_value_of_100_is_named_with_its_file(tmp_path, tiny_cityscapes, workers):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    bad = label_with_value(root, 100)
    config = write_train_config(tmp_path / "cfg.yml", root)
    done = run_script("train.py", *train_args(config, tmp_path / "out", "--skip_data_check", "--iters", "4",
                                              "--num_workers", workers), cwd=tmp_path)
    error = assert_user_error(done, "label values outside 0..18 and 255: 100 (25 px)")
    assert error.startswith(f"error: {bad}: ")
    assert "IndexError" not in done.stderr


@pytest.mark.slow
def test_check_dataset_and_training_refuse_a_jpeg_label_named_png(tmp_path, tiny_cityscapes):
    """Issue: label content saved as JPEG under a .png name passed every check while 20% of its pixels
    changed. Both the data check and training name the file now."""
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    path = sorted((root / "gtFine" / "train").glob("*/*_gtFine_labelTrainIds.png"))[1]
    Image.open(path).save(path, format="JPEG", quality=75)
    config = write_train_config(tmp_path / "cfg.yml", root)
    checked = run_script("tools/check_dataset.py", "--config", config, cwd=tmp_path)
    assert checked.returncode == 2 and f"{path}: the label image is stored as JPEG" in checked.stdout + checked.stderr
    done = run_script("train.py", *train_args(config, tmp_path / "out", "--iters", "2"), cwd=tmp_path)
    assert_user_error(done, f"{path}: the label image is stored as JPEG, though the file is named .png")
