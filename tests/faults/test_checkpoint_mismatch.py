"""A released checkpoint for another scale or class count: strict loading names keys and shapes and
fails with exit 2 in every script; --finetune_from loads what fits and says what it skipped."""
import re
import subprocess
import sys

import pytest

from conftest import REPO, fixture_path, write_train_config

pytestmark = pytest.mark.slow


def script(name, *args):
    return subprocess.run([sys.executable, str(REPO / name), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def other_classes(tmp_path, tiny_cityscapes):
    """A scale-2.0 config for 20 classes (labels 0..18 stay valid): the released checkpoint has 19."""
    return write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=1, model={
        "type": "ESPNetV2", "scale": 2.0, "num_classes": 20, "drop_prob": 0.0})


@pytest.mark.parametrize("name, extra", [
    ("val.py", []),
    ("export.py", ["--save_dir", "exported"]),
    ("predict.py", ["--image_path", "IMAGE", "--save_dir", "predicted"]),
])
def test_strict_loading_fails_in_every_script_naming_keys_and_shapes(tmp_path, other_classes, tiny_cityscapes, name,
                                                                     extra):
    weights = fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams")
    image = next((tiny_cityscapes / "leftImg8bit" / "val").rglob("*.png"))
    extra = [str(image) if e == "IMAGE" else str(tmp_path / e) if e in ("exported", "predicted") else e for e in extra]
    done = script(name, "--config", other_classes, "--model_path", weights, *extra)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert re.search(r"project_l1\.1\.weight file \[19, 51, 1, 1\] vs model \[20, 52, 1, 1\]", done.stderr) or \
        re.search(r"act_l3\._batch_norm\.weight file \[19\] vs model \[20\]", done.stderr), done.stderr[-2000:]
    assert not (tmp_path / "exported").exists() and not (tmp_path / "predicted").exists()


def test_finetune_from_loads_what_fits_and_says_what_it_skipped(tmp_path, other_classes):
    weights = fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams")
    done = script("train.py", "--config", other_classes, "--finetune_from", weights, "--save_dir", tmp_path / "out",
                  "--skip_data_check")
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"fine-tuning from .*model.pdparams: loaded (\d+) of (\d+) weights; skipped (\d+) shape "
                      r"mismatch\(es\): (.*)", done.stderr)
    assert match, done.stderr[-2000:]
    loaded, total, skipped = map(int, match.groups()[:3])
    assert loaded + skipped == total == 365 and skipped == 11  # the class-dependent layers of the head
    assert "project_l3.1.weight" in match.group(4)
    assert (tmp_path / "out" / "iter_1" / "model.pdparams").is_file()
