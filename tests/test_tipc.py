"""PaddleSeg's TIPC chain "lite_train_lite_infer" for ESPNetV2, end to end on a synthetic Cityscapes set:
train, export, then the deploy script with upstream's flags. The chain and its flags come from
tests/data/test_tipc/configs/espnetv2/train_infer_python.txt and the two config files beside it, stored
unchanged from PaddlePaddle/PaddleSeg (commit d7975e7cb3b9102eae4eabcef5afb81b878473aa).

Shortened for CI on 2 cores, and said here: 4 iterations instead of 20, a 256x128 crop instead of
1024x512 (the synthetic images are 128x64), the model's benchmark run twice; on the CPU."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

CONFIG = REPO / "tests" / "data" / "test_tipc" / "configs" / "espnetv2" / "espnet_cityscapes_1024x512_120k.yml"


def run(script, *args):
    done = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=900)
    assert done.returncode == 0, f"{script} exit {done.returncode}:\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_lite_train_lite_infer_chain(tmp_path, tiny_cityscapes):
    roots = [f"train_dataset.dataset_root={tiny_cityscapes}", f"val_dataset.dataset_root={tiny_cityscapes}"]
    train_dir, export_dir, infer_dir = tmp_path / "train", tmp_path / "export", tmp_path / "infer"
    run("train.py", "--config", CONFIG, "--device", "cpu", "--do_eval", "--save_interval", 500, "--seed", 100,
        "--iters", 4, "--batch_size", 2, "--save_dir", train_dir,
        "--opts", *roots, "train_dataset.transforms.1.crop_size=[256,128]")
    assert (train_dir / "best_model" / "model.pdparams").is_file() and (train_dir / "iter_4").is_dir()

    run("export.py", "--config", CONFIG, "--model_path", train_dir / "best_model" / "model.pdparams",
        "--save_dir", export_dir)

    (tmp_path / "data").symlink_to(tiny_cityscapes)  # the list beside the data, not in the shared set
    val_images = sorted(p.relative_to(tmp_path) for p in (tmp_path / "data" / "leftImg8bit" / "val").rglob("*.png"))
    image_list = tmp_path / "cityscapes_val.list"  # as upstream's cityscapes_val_5.list: image, then label
    image_list.write_text("".join(f"{p} data/gtFine/{p.name}\n" for p in val_images))
    done = run("tools/infer.py", "--save_dir", infer_dir, "--device", "cpu", "--enable_mkldnn", "True",
               "--cpu_threads", 6, "--batch_size", 1, "--use_trt", "False", "--precision", "fp32",
               "--config", export_dir / "deploy.yaml", "--image_path", image_list, "--benchmark", "True",
               "--model_name", "espnetv2", "--save_log_path", tmp_path / "infer.log", "--warmup", 0, "--repeats", 2)
    assert "espnetv2: paddle on cpu, input [1, 3, 512, 512], 6 CPU thread(s)" in done.stdout  # export: Resize 512x512
    assert "images/s" in done.stdout and "images/s" in (tmp_path / "infer.log").read_text()
    assert len(val_images) == 4
    for image in val_images:
        with Image.open(infer_dir / "pseudo_color_prediction" / image) as im:
            label = np.asarray(im)
        assert label.shape == (64, 128) and label.max() < 19
