"""A NaN/Inf loss from a poisoned batch, or weights that overflow: training stops at once naming the
iteration, the loss terms and the last good checkpoint; nothing NaN is saved or promoted to best.
(A too-large learning rate: tests/test_train.py::test_a_nan_loss_stops_at_once_and_saves_no_nan_weights.)"""
import json
import re

import numpy as np
import paddle
import pytest

from paddleseg.checkpoint import training as checkpoints
from paddleseg.core.training import loop as train_module  # where the loop looks up `step`
from paddleseg.core.training.divergence import TrainingDiverged
from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config

from conftest import write_train_config
from fault_helpers import assert_user_error, run_with_fault, train_args

POISON = """
import numpy as np
from paddleseg.datasets.dataset import SegmentationDataset
real_getitem = SegmentationDataset.__getitem__

def getitem(self, idx):
    sample = real_getitem(self, idx)
    if self.mode == 'train' and self.epoch == 1:   # every batch of the second epoch (iterations 5..)
        sample['img'] = np.full_like(sample['img'], np.inf)
    return sample

SegmentationDataset.__getitem__ = getitem
"""


def finite(folder):
    return all(np.isfinite(np.asarray(v)).all() for v in paddle.load(str(folder / "model.pdparams")).values())


@pytest.mark.slow
def test_a_poisoned_batch_stops_training_and_no_nan_checkpoint_or_best_exists(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, iters=8)
    out = tmp_path / "out"
    done = run_with_fault(POISON, "train.py", *train_args(config, out, "--save_interval", "2", "--do_eval",
                                                          "--skip_data_check"), cwd=tmp_path)
    error = assert_user_error(done, "iteration 5: the loss is not finite (loss_main=nan, loss_aux1=nan)",
                              f"Last good checkpoint: {out / 'iter_4'}", "check the data of this batch")
    assert "_leftImg8bit.png" in error  # the batch's image paths
    assert sorted(p.name for p in checkpoints.checkpoint_folders(out)) == ["iter_2", "iter_4"]
    assert all(finite(out / f"iter_{i}") for i in (2, 4))
    assert json.loads((out / "best_model" / "score.json").read_text())["iter"] in (2, 4)
    assert finite(out / "best_model")


@pytest.mark.slow
def test_weights_that_overflow_under_a_finite_loss_are_not_saved(tmp_path, tiny_cityscapes, monkeypatch):
    real_step = train_module.step
    calls = []

    def overflowing_step(model, *args):
        values = real_step(model, *args)
        calls.append(1)
        if len(calls) == 3:  # the update of iteration 3 leaves an infinite weight; its loss was finite
            weight = model.parameters()[0]
            weight.set_value(paddle.full(weight.shape, float("inf"), weight.dtype))
        return values

    monkeypatch.setattr(train_module, "step", overflowing_step)
    out = tmp_path / "out"
    with pytest.raises(TrainingDiverged) as err:
        train(Config(write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)),
              TrainOptions(save_dir=out, save_interval=1, log_iters=1, check_data=False))
    assert re.search(r"iteration 3: the weights are not finite after the update \(loss_main=[\d.]+, "
                     rf"loss_aux1=[\d.]+\); no checkpoint of them was saved. Last good checkpoint: "
                     rf"{re.escape(str(out / 'iter_2'))}", str(err.value)), str(err.value)
    assert sorted(p.name for p in checkpoints.checkpoint_folders(out)) == ["iter_1", "iter_2"]
