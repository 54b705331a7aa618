"""export.py replaces an export whole or not at all. Every failure (paddle2onnx aborting its process,
a corrupt file that fails verification, a full disk, a bad --save_dir) exits 2 with one error line and
leaves the previous export byte-for-byte as it was (a SHA-256 snapshot) and no temporary folder; a
SIGKILL between the two renames of the swap leaves the previous export recoverable. tools/infer.py
refuses an incomplete export folder."""
import shutil
import signal

import paddle
import pytest
import yaml

from paddleseg.core.export import export_model
from paddleseg.models import ESPNetV2
from paddleseg.utils.atomic import recover

from conftest import write_train_config
from fault_helpers import assert_user_error, hidden, run_script, run_with_fault, snapshot


@pytest.fixture(scope="module")
def previous_export(tmp_path_factory):
    """A good export (logits, with ONNX) that the failing exports below must leave untouched. It
    differs from what they would write (argmax head, other weights), so mixed files would show."""
    paddle.seed(11)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    model.eval()
    folder = tmp_path_factory.mktemp("previous") / "export"
    export_model(model, folder, transforms=[{"type": "Normalize"}], num_classes=19, output_op="none", onnx=True)
    return folder


@pytest.fixture
def setup(tmp_path, previous_export, tiny_cityscapes):
    """(config, save_dir holding a copy of the previous export, its snapshot)."""
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    save_dir = tmp_path / "out" / "export"
    shutil.copytree(previous_export, save_dir)
    return config, save_dir, snapshot(save_dir)


def assert_unchanged(save_dir, before):
    assert snapshot(save_dir) == before
    assert hidden(save_dir.parent) == [], "a temporary folder was left behind"


@pytest.mark.slow
def test_paddle2onnx_abort_on_an_opset_it_accepts_is_one_error_line(setup):
    config, save_dir, before = setup
    # opset 10 is in paddle2onnx's range, but this model needs 11: paddle2onnx aborts (SIGABRT)
    done = run_script("export.py", "--config", config, "--save_dir", save_dir, "--onnx", "--opset", "10",
                      cwd=save_dir.parent, timeout=300)
    assert_user_error(done, "opset 10", "SIGABRT", "needs opset 11", "previous export", "unchanged")
    assert_unchanged(save_dir, before)


CONVERTER_ABORTS = """
import sys
from paddleseg.core import export
export.ONNX_CONVERTER = [sys.executable, "-c",
                         "import os; print('[ERROR][Paddle2ONNX] injected converter failure', flush=True); os.abort()"]
"""


@pytest.mark.slow
def test_converter_child_abort_is_an_error_and_keeps_the_previous_export(setup):
    config, save_dir, before = setup
    done = run_with_fault(CONVERTER_ABORTS, "export.py", "--config", config, "--save_dir", save_dir, "--onnx",
                          cwd=save_dir.parent, timeout=300)
    assert_user_error(done, "opset 13", "killed by SIGABRT", "injected converter failure", "unchanged")
    assert_unchanged(save_dir, before)


CORRUPT_PARAMS = """
import paddle
real_save = paddle.jit.save

def save(layer, path, *args, **kwargs):   # the parameters reach the disk truncated
    real_save(layer, path, *args, **kwargs)
    with open(path + ".pdiparams", "r+b") as f:
        f.truncate(1000)

paddle.jit.save = save
"""


@pytest.mark.slow
def test_an_export_that_fails_verification_is_not_published(setup):
    config, save_dir, before = setup
    done = run_with_fault(CORRUPT_PARAMS, "export.py", "--config", config, "--save_dir", save_dir,
                          cwd=save_dir.parent, timeout=300)
    assert_user_error(done, "(model.json + model.pdiparams) does not run in Paddle Inference", "unchanged")
    assert_unchanged(save_dir, before)


DISK_FULL = """
import errno, os, paddle
real_save = paddle.jit.save

def save(layer, path, *args, **kwargs):   # model.json is written, then the disk is full
    real_save(layer, path, *args, **kwargs)
    os.remove(path + ".pdiparams")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path + ".pdiparams")

paddle.jit.save = save
"""


@pytest.mark.slow
def test_disk_full_during_export_keeps_the_previous_export(setup):
    config, save_dir, before = setup
    done = run_with_fault(DISK_FULL, "export.py", "--config", config, "--save_dir", save_dir,
                          cwd=save_dir.parent, timeout=300)
    assert_user_error(done, "cannot write the export", "No space left on device", "unchanged")
    assert_unchanged(save_dir, before)


KILL_BETWEEN_RENAMES = """
import os, signal
real_rename = os.rename

def rename(src, dst, *args, **kwargs):
    real_rename(src, dst, *args, **kwargs)
    if ".export.old-" in str(dst):            # the previous export is moved aside, the new one not yet in
        os.kill(os.getpid(), signal.SIGKILL)

os.rename = rename
"""


@pytest.mark.slow
def test_sigkill_between_the_renames_leaves_the_previous_export_recoverable(setup):
    config, save_dir, before = setup
    done = run_with_fault(KILL_BETWEEN_RENAMES, "export.py", "--config", config, "--save_dir", save_dir,
                          cwd=save_dir.parent, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not save_dir.exists()
    old = [name for name in hidden(save_dir.parent) if name.startswith(".export.old-")]
    assert len(old) == 1 and snapshot(save_dir.parent / old[0]) == before
    recover(save_dir)  # what the next export.py run does first
    assert_unchanged(save_dir, before)


@pytest.mark.slow
def test_save_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    target = tmp_path / "out"
    target.mkdir()
    (target / "export").write_text("not a folder")
    before = snapshot(target)
    done = run_script("export.py", "--config", config, "--save_dir", target / "export", cwd=tmp_path)
    assert_user_error(done, "export: is a file, not a folder")
    assert snapshot(target) == before


def test_opset_outside_paddle2onnx_range_is_refused_up_front(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("export.py", "--config", config, "--save_dir", tmp_path / "export", "--onnx", "--opset", "99",
                      cwd=tmp_path)
    assert_user_error(done, "--opset 99", "7 to 21")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yml"]


@pytest.mark.parametrize("missing", ["model.pdiparams", "deploy.yaml", "model.onnx"])
def test_infer_refuses_an_incomplete_export(tmp_path, missing):
    folder = tmp_path / "export"
    folder.mkdir()
    deploy = {"model": "model.json", "params": "model.pdiparams", "onnx": "model.onnx", "output_op": "argmax",
              "transforms": [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}]}
    (folder / "deploy.yaml").write_text(yaml.safe_dump({"Deploy": deploy}))
    for name in ("model.json", "model.pdiparams", "model.onnx"):
        (folder / name).write_bytes(b"stand-in")  # never loaded: the check comes first
    (folder / missing).unlink()
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    backend = "onnxruntime" if missing == "model.onnx" else "paddle"
    done = run_script("tools/infer.py", "--model_dir", folder, "--image_path", image, "--backend", backend,
                      "--save_dir", tmp_path / "pred", cwd=tmp_path)
    assert_user_error(done, missing)
    assert not (tmp_path / "pred").exists()
