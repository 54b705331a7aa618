"""An unreadable image: val.py fails clearly (exit 2, the path); predict.py reports it, skips it and
exits 3 at the end (in detail: tests/test_predict.py::test_folder_any_size_mirrored_tree_and_bad_file_gives_exit_3)."""
import shutil

import paddle
import pytest

from paddleseg.models import ESPNetV2

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script


@pytest.fixture
def weights(tmp_path):
    paddle.seed(1)
    path = tmp_path / "model.pdparams"
    paddle.save(ESPNetV2(19, scale=0.5, drop_prob=0.0).state_dict(), str(path))
    return path


def broken_copy(tmp_path, tiny_cityscapes):
    root = tmp_path / "data"
    shutil.copytree(tiny_cityscapes, root)
    bad = sorted((root / "leftImg8bit" / "val").glob("*/*.png"))[1]
    bad.write_bytes(bad.read_bytes()[:200])
    return root, bad


@pytest.mark.slow
def test_val_on_an_unreadable_image_fails_naming_it(tmp_path, tiny_cityscapes, weights):
    root, bad = broken_copy(tmp_path, tiny_cityscapes)
    config = write_train_config(tmp_path / "cfg.yml", root)
    done = run_script("val.py", "--config", config, "--model_path", weights, cwd=tmp_path, timeout=90)
    assert_user_error(done, f"error: {bad}: unreadable or truncated image")
    assert "mIoU=" not in done.stdout


@pytest.mark.slow
def test_predict_skips_an_unreadable_image_reports_it_and_exits_3(tmp_path, tiny_cityscapes, weights):
    root, bad = broken_copy(tmp_path, tiny_cityscapes)
    config = write_train_config(tmp_path / "cfg.yml", root)
    folder = bad.parent
    done = run_script("predict.py", "--config", config, "--model_path", weights, "--image_path", folder,
                      "--save_dir", tmp_path / "pred", cwd=tmp_path, timeout=90)
    assert done.returncode == 3, done.stderr[-3000:]  # finished with skipped inputs; 1 would mean a bug
    assert bad.name in done.stderr and "Traceback" not in done.stderr
    written = sorted(p.name for p in (tmp_path / "pred" / "pseudo_color_prediction").rglob("*.png"))
    expected = sorted(p.name for p in folder.glob("*.png") if p != bad)
    assert written == expected and bad.name not in written
