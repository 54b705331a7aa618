"""A list file naming a FIFO: predict.py and tools/infer.py hung in open() waiting for a writer. Now only
regular files are read: the FIFO is named and skipped, the other images are written, and the run
exits 3 at once. A list file that is itself a FIFO is exit 2."""
import os

import cv2
import numpy as np
import paddle
import pytest

from paddleseg.models import ESPNetV2

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script
from test_tools_infer import tiny_onnx_export


def listing(tmp_path):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((20, 30, 3), np.uint8))
    os.mkfifo(tmp_path / "in" / "pipe.png")
    (tmp_path / "val.list").write_text("in/pipe.png gt/pipe.png\nin/a.png gt/a.png\n")
    return tmp_path / "val.list"


def assert_fifo_skipped(done, out):
    assert done.returncode == 3, done.stderr[-3000:]
    assert "in/pipe.png: is a FIFO (named pipe), not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in (out / "pseudo_color_prediction" / "in").iterdir()) == ["a.png"]


def test_infer_skips_a_fifo_in_a_list_and_refuses_a_fifo_list(tmp_path):
    model_dir = tiny_onnx_export(tmp_path / "export")
    done = run_script("tools/infer.py", "--model_dir", model_dir, "--image_path", listing(tmp_path), "--save_dir",
                      tmp_path / "out", "--backend", "onnxruntime", cwd=tmp_path, timeout=30)
    assert_fifo_skipped(done, tmp_path / "out")
    os.mkfifo(tmp_path / "fifo.list")
    done = run_script("tools/infer.py", "--model_dir", model_dir, "--image_path", tmp_path / "fifo.list",
                      "--save_dir", tmp_path / "out2", "--backend", "onnxruntime", cwd=tmp_path, timeout=30)
    assert_user_error(done, "fifo.list: is a FIFO (named pipe), not an image, a folder or a list file")


@pytest.mark.slow
def test_predict_skips_a_fifo_in_a_list(tmp_path, tiny_cityscapes):
    paddle.seed(1)
    paddle.save(ESPNetV2(19, scale=0.5, drop_prob=0.0).state_dict(), str(tmp_path / "model.pdparams"))
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("predict.py", "--config", config, "--model_path", tmp_path / "model.pdparams", "--image_path",
                      listing(tmp_path), "--save_dir", tmp_path / "out", "--cpu_threads", "1", cwd=tmp_path, timeout=60)
    assert_fifo_skipped(done, tmp_path / "out")
