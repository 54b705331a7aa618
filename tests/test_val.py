import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddleseg  # noqa: F401
from paddleseg.checkpoint import load_entire_model
from paddleseg.core.val import evaluate
from paddleseg.cvlibs import Config
from paddleseg.models import ESPNetV2

from conftest import REPO, write_train_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_cityscapes):
    """A scale-0.5 model with random weights saved as a checkpoint, and the config to evaluate it."""
    tmp = tmp_path_factory.mktemp("val")
    paddle.seed(1)
    model = ESPNetV2(num_classes=19, scale=0.5)
    paddle.save(model.state_dict(), str(tmp / "model.pdparams"))
    return write_train_config(tmp / "cfg.yml", tiny_cityscapes), tmp / "model.pdparams"


@pytest.mark.slow
def test_val_script_reports_what_evaluate_computes(tmp_path, checkpoint):
    config, weights = checkpoint
    cfg = Config(config)
    model = cfg.model
    load_entire_model(model, weights)
    expected = evaluate(model, cfg.val_dataset, progress=False)
    done = subprocess.run([sys.executable, str(REPO / "val.py"), "--config", str(config), "--model_path", str(weights),
                           "--json", str(tmp_path / "scores.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["miou"] == pytest.approx(expected.miou(), abs=1e-9)
    assert scores["acc"] == pytest.approx(expected.pixel_accuracy(), abs=1e-9)
    assert scores["images"] == 4
    assert "| road" in done.stdout and f"mIoU={expected.miou():.4f}" in done.stdout


def test_flip_and_sliding_window_evaluation_cover_every_pixel(checkpoint):
    config, weights = checkpoint
    cfg = Config(config)
    model = cfg.model
    load_entire_model(model, weights)
    plain = evaluate(model, cfg.val_dataset, progress=False)
    flipped = evaluate(model, cfg.val_dataset, aug_eval=True, flip_horizontal=True, progress=False)
    slid = evaluate(model, cfg.val_dataset, is_slide=True, crop_size=[64, 48], stride=[48, 32],
                    progress=False)
    for result in (plain, flipped, slid):
        assert result.matrix.sum() == plain.matrix.sum()  # the same labelled pixels are scored
    assert (flipped.matrix != plain.matrix).any() and (slid.matrix != plain.matrix).any()


@pytest.mark.slow
def test_val_script_rejects_a_checkpoint_of_another_scale(tmp_path, checkpoint):
    config, weights = checkpoint
    done = subprocess.run([sys.executable, str(REPO / "val.py"), "--config", str(config), "--model_path", str(weights),
                           "--opts", "model.scale=1.0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "does not fit the model" in done.stderr and "Traceback" not in done.stderr


class _FullSizeImages:
    """2048x1024 images and labels made in memory (no disk), as many as asked."""

    num_classes, ignore_index, mode, seed, epoch = 19, 255, "val", 0, 0

    def __init__(self, count):
        self.count = count
        self.file_list = [(f"mem/{i}.png", f"mem/{i}_label.png") for i in range(count)]
        rng = np.random.default_rng(0)
        self.img = rng.standard_normal((3, 1024, 2048), dtype=np.float32)
        self.label = rng.integers(0, 19, (1024, 2048)).astype(np.int64)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return {"img": self.img, "label": self.label, "img_path": self.file_list[i][0]}


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


_MEMORY_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import paddle
from test_val import _FullSizeImages, _rss_mb
from paddleseg.core.val import evaluate
paddle.seed(0)
model = paddle.nn.Conv2D(3, 19, 1)  # a stand-in model: the point is the evaluation loop
model.forward_orig = model.forward
model.forward = lambda x: [model.forward_orig(x)]
evaluate(model, _FullSizeImages(16), progress=False)
before = _rss_mb()
result = evaluate(model, _FullSizeImages(20), progress=False)
print(_rss_mb() - before, int(result.matrix.sum()))
"""


@pytest.mark.slow
def test_evaluation_memory_stays_flat_over_full_size_images():
    """Each image's counts go into one int64 matrix and the image is dropped. The allocator's pools
    grow over the first 15-25 images and then stay flat (measured: 401, 497, 537, 537, 537 MB after
    5, 15, 25, 35, 45 images), so 20 more images may add up to ~140 MB of that warm-up, while keeping
    anything per image would add far more: 320 MB for the labels alone (16 MB each), 3 GB for the
    logits (150 MB each). Measured in a fresh process: other tests change the allocator's settings
    (training keeps freed memory in the heap)."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(REPO / "tests")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    growth, pixels = done.stdout.split()[-2:]
    assert int(pixels) == 20 * 1024 * 2048
    assert float(growth) < 200, f"memory grew by {float(growth):.0f} MB over 20 more images"


@pytest.mark.slow
def test_two_ranks_score_an_odd_set_exactly_as_one_rank(tmp_path, checkpoint):
    """5 images on 2 ranks: shards of 3 and 2, none read twice, so the summed confusion matrix is the
    single-process one (a padded shard counted image 0 twice). Exact: both run on the CPU."""
    from paddleseg.datasets.synthetic import write_synthetic_cityscapes

    data = write_synthetic_cityscapes(tmp_path / "odd", train=1, val=5, width=128, height=64, seed=3, workers=1,
                                      progress=False)
    config = write_train_config(tmp_path / "cfg.yml", data)
    weights = checkpoint[1]
    args = [str(REPO / "val.py"), "--config", str(config), "--model_path", str(weights), "--device", "cpu"]
    one = subprocess.run([sys.executable, *args, "--json", str(tmp_path / "one.json")], capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                          str(tmp_path / "log"), *args, "--json", str(tmp_path / "two.json"), "--report",
                          str(tmp_path / "report"), "--report_images", "5"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    single, ranks = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert ranks["images"] == single["images"] == 5
    assert ranks["class_iou"] == single["class_iou"] and ranks["miou"] == single["miou"]
    assert ranks["acc"] == single["acc"] and ranks["kappa"] == single["kappa"]
    gallery = (tmp_path / "report" / "index.html").read_text()
    assert all(gallery.count(f"{p.stem}") >= 1 for p in (data / "leftImg8bit" / "val").rglob("*.png"))
