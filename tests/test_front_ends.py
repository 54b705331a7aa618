"""predict.py (the trained model) and tools/infer.py (its export) are two front ends of one runtime,
paddleseg.deploy: on the same inputs (a folder tree, a .list file with label columns, ``..`` entries and
a repeated entry, an unreadable file) they write the same output tree, skip the same input with the
same message, warn about the same repetition and exit alike. Their labels agree on >= 99.9% of pixels
(dygraph and Paddle Inference sum in other orders; a near-tie can flip)."""
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from paddleseg.core.export import export_model
from paddleseg.models import ESPNetV2

from conftest import REPO, write_train_config


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_cityscapes):
    folder = tmp_path_factory.mktemp("front_ends")
    paddle.seed(4)
    net = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    net.eval()
    paddle.save(net.state_dict(), str(folder / "model.pdparams"))
    export_model(net, folder / "export", transforms=[{"type": "Normalize"}], num_classes=19)
    return write_train_config(folder / "cfg.yml", tiny_cityscapes), folder / "model.pdparams", folder / "export"


def inputs(root):
    rng = np.random.default_rng(0)
    files = {"photos/a.png": (30, 44), "photos/a.jpg": (26, 40), "photos/sub/b.png": (33, 21),
             "photos/grey.bmp": (17, 25), "elsewhere/c.png": (20, 20)}
    for name, size in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), rng.integers(0, 255, size + ((3,) if "grey" not in name else ()), np.uint8))
    (root / "photos" / "broken.png").write_bytes(b"\x89PNG cut")
    (root / "photos" / "val.list").write_text("a.png gt/a.png\nsub/b.png gt/b.png\n../elsewhere/c.png\n"
                                              "broken.png\na.png gt/a.png\n")
    return root / "photos"


def run(script, *args):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def skipped(stderr):
    return sorted({line.split("skipped: ", 1)[1] for line in stderr.splitlines() if "skipped: " in line})


@pytest.mark.slow
@pytest.mark.parametrize("source", ["photos", "photos/val.list"])
def test_predict_and_infer_write_the_same_tree_from_the_same_inputs(tmp_path, model, source):
    config, weights, export = model
    image_path = inputs(tmp_path).parent / source
    extra = ["--save_label", "--label_ids"]
    pred = run("predict.py", "--config", config, "--model_path", weights, "--image_path", image_path,
               "--save_dir", tmp_path / "predict", "--cpu_threads", "1", *extra)
    infer = run("tools/infer.py", "--model_dir", export, "--image_path", image_path, "--save_dir", tmp_path / "infer",
                "--cpu_threads", "1", *extra)
    assert pred.returncode == infer.returncode == 3, (pred.stderr[-2000:], infer.stderr[-2000:])
    assert tree(tmp_path / "predict") == tree(tmp_path / "infer")
    readable = 3 if source.endswith(".list") else 4  # the list names 3 of the folder's 4 readable images
    assert len(tree(tmp_path / "predict")) == 4 * readable  # four folders each
    assert skipped(pred.stderr) == skipped(infer.stderr) and len(skipped(pred.stderr)) == 1
    repeated = "val.list: 1 file(s) listed more than once, predicted once"
    assert (repeated in pred.stderr) == (repeated in infer.stderr) == source.endswith(".list")
    for name in tree(tmp_path / "predict" / "label"):
        ours, theirs = (np.asarray(Image.open(tmp_path / side / "label" / name)) for side in ("predict", "infer"))
        assert ours.shape == theirs.shape and (ours == theirs).mean() >= 0.999, name
