"""Bad inference arguments through predict.py and val.py: exit 2, one ``error:`` line naming the flag and
the value, before a model is built (the model path does not even exist, so loading it first would
give another error) and before anything is written. (Every case in detail, in-process:
tests/test_predict.py::test_bad_arguments_are_user_errors_naming_flag_and_value_before_any_work.)"""
import pytest

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, snapshot

PREDICT_CASES = {
    "stride_zero": (["--is_slide", "--crop_size", "8", "8", "--stride", "0", "0"],
                    "argument --stride: must be a positive integer, got '0'"),
    "crop_size_zero": (["--crop_size", "0", "0"], "argument --crop_size: must be a positive integer, got '0'"),
    "scale_zero": (["--aug_pred", "--scales", "0"], "argument --scales: must be a scale from 0.015625 to 16, got '0'"),
    "scale_nan": (["--scales", "nan"], "argument --scales: must be a scale from 0.015625 to 16, got 'nan'"),
    "scale_huge": (["--aug_pred", "--scales", "1000"],
                   "argument --scales: must be a scale from 0.015625 to 16, got '1000'"),
    "custom_color_not_triples": (["--custom_color", "1", "2"],
                                 "--custom_color 1 2: expected r g b triples of values 0..255"),
}


@pytest.fixture
def setup(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    images = sorted((tiny_cityscapes / "leftImg8bit" / "val").glob("*/*.png"))[0].parent
    return config, images


# One interpreter per case: two run in the quick suite, all in the slow one (in-process, every case is quick).
QUICK = {"stride_zero", "custom_color_not_triples"}


@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c in QUICK else pytest.mark.slow)
                                  for c in PREDICT_CASES])
def test_predict_bad_argument_is_exit_2_naming_flag_and_value(tmp_path, setup, case):
    config, images = setup
    extra, message = PREDICT_CASES[case]
    before = snapshot(tmp_path)
    done = run_script("predict.py", "--config", config, "--model_path", tmp_path / "missing.pdparams",
                      "--image_path", images, "--save_dir", tmp_path / "out", *extra, cwd=tmp_path, timeout=60)
    error = assert_user_error(done, message)
    assert message in error
    assert [line for line in done.stderr.splitlines() if line.startswith("error")] == [error], done.stderr
    assert "usage:" not in done.stderr  # not argparse's own error format
    assert snapshot(tmp_path) == before


def test_predict_save_dir_that_is_a_file_is_exit_2_and_the_file_is_kept(tmp_path, setup):
    config, images = setup
    taken = tmp_path / "result"
    taken.write_text("my notes")
    before = snapshot(tmp_path)
    done = run_script("predict.py", "--config", config, "--model_path", tmp_path / "missing.pdparams",
                      "--image_path", images, "--save_dir", taken, cwd=tmp_path, timeout=60)
    assert_user_error(done, f"error: --save_dir {taken}: not a folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("extra, message", [
    (["--aug_eval", "--scales", "-1"], "argument --scales: must be a scale from 0.015625 to 16, got '-1'"),
    pytest.param(["--is_slide", "--crop_size", "64", "32", "--stride", "0", "0"],
                 "argument --stride: must be a positive integer, got '0'", marks=pytest.mark.slow),
])
@pytest.mark.slow
def test_val_bad_argument_is_exit_2_before_the_model_is_loaded(tmp_path, setup, extra, message):
    config, _ = setup
    done = run_script("val.py", "--config", config, "--model_path", tmp_path / "missing.pdparams", *extra,
                      cwd=tmp_path, timeout=60)
    error = assert_user_error(done, message)
    assert "missing.pdparams" not in error
