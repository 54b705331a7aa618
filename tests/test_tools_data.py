"""The data tools: conversion against cityscapesscripts' tables, the synthetic set, class weights,
file lists and the data set checker."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from paddleseg.cvlibs.config_rewrite import write_weights_to_config
from paddleseg.datasets import Cityscapes
from paddleseg.datasets.cityscapes_convert import convert_cityscapes, train_ids_from_polygons
from paddleseg.datasets.class_weights import weights_from_histogram
from paddleseg.datasets.file_list import find_pairs, split_pairs, write_file_list
from paddleseg.datasets.synthetic import write_synthetic_cityscapes
from paddleseg.errors import ConfigError
from paddleseg.transforms.io import read_label
from paddleseg.utils.cityscapes_labels import train_id_table

from conftest import REPO


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "synthetic_cityscapes"
    return write_synthetic_cityscapes(root, train=12, val=4, width=256, height=128, seed=7, workers=2,
                                      progress=False)


def test_convert_polygons_and_label_ids_agree_with_cityscapesscripts(synthetic):
    polygons = sorted((synthetic / "gtFine").rglob("*_gtFine_polygons.json"))
    assert len(polygons) == 16
    for path in polygons[:4]:
        ann = Annotation()
        ann.fromJsonFile(str(path))
        official_ids = np.asarray(createLabelImage(ann, "ids"))
        written = read_label(str(path).replace("_polygons.json", "_labelTrainIds.png"))
        assert np.array_equal(written, train_id_table()[official_ids])
        assert np.array_equal(written, train_ids_from_polygons(path))
        label_ids = read_label(str(path).replace("_polygons.json", "_labelIds.png"))
        assert np.array_equal(label_ids, official_ids), "the generator's label ids must match the polygons"


def test_convert_is_idempotent_and_works_from_label_ids(tmp_path):
    city = tmp_path / "gtFine" / "train" / "aachen"
    city.mkdir(parents=True)
    ids = np.array([[7, 8, 26], [0, 1, 33]], np.uint8)
    Image.fromarray(ids).save(city / "aachen_000000_000019_gtFine_labelIds.png")
    assert convert_cityscapes(tmp_path, workers=1, progress=False) == (1, 0)
    out = read_label(city / "aachen_000000_000019_gtFine_labelTrainIds.png")
    assert out.tolist() == [[0, 1, 13], [255, 255, 18]]
    assert convert_cityscapes(tmp_path, workers=1, progress=False) == (0, 1)
    assert convert_cityscapes(tmp_path, force=True, workers=1, progress=False) == (1, 0)


def test_synthetic_set_is_valid_has_all_classes_and_is_deterministic(synthetic, tmp_path):
    train = Cityscapes(str(synthetic), [], "train")
    val = Cityscapes(str(synthetic), [], "val")
    assert len(train) == 12 and len(val) == 4
    assert train.check_contents(workers=1, progress=False, raise_error=False) == []
    counts = sum(np.bincount(read_label(lab).ravel(), minlength=256) for _, lab in train.file_list + val.file_list)
    assert (counts[:19] > 0).all(), f"classes missing: {np.flatnonzero(counts[:19] == 0)}"
    assert counts[255] > 0 and counts[19:255].sum() == 0
    again = write_synthetic_cityscapes(tmp_path / "again", train=3, val=0, width=256, height=128, seed=7,
                                       workers=1, progress=False)
    first = sorted((synthetic / "leftImg8bit" / "train").rglob("*.png"))[0]
    assert first.read_bytes() == (again / first.relative_to(synthetic)).read_bytes()


@pytest.mark.slow
def test_check_dataset_tool_passes_on_synthetic_and_fails_on_bad_values(synthetic, tmp_path):
    ok = subprocess.run([sys.executable, str(REPO / "tools" / "check_dataset.py"), "--cityscapes", str(synthetic),
                         "--workers", "1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "all samples are valid" in ok.stdout and "|  train  |    12   |    0     |" in ok.stdout
    bad = Cityscapes(str(synthetic), [], "val").file_list[0][1]
    label = read_label(bad).copy()
    label[0, :7] = 33
    Image.fromarray(label).save(bad)
    try:
        fail = subprocess.run([sys.executable, str(REPO / "tools" / "check_dataset.py"), "--cityscapes",
                               str(synthetic), "--workers", "1"], capture_output=True, text=True)
    finally:
        convert_cityscapes(synthetic, force=True, workers=1, progress=False)
    assert fail.returncode == 2 and "33 (7 px)" in fail.stdout and bad in fail.stdout


def test_class_weights_on_a_known_histogram():
    hist = np.array([60, 30, 10, 0])
    expected = 1 / np.log(1.10 + np.array([0.6, 0.3, 0.1, 0.0]))
    assert np.allclose(weights_from_histogram(hist), expected)
    assert np.isclose(weights_from_histogram([1, 0])[1], 1 / np.log(1.10))  # 10.49: absent class's weight


def test_compute_classweight_writes_only_the_weights(synthetic, tmp_path):
    cfg = tmp_path / "cfg.yml"
    text = (REPO / "configs" / "quickstart" / "espnetv2_synthetic.yml").read_text()
    cfg.write_text(text.replace("data/synthetic_cityscapes", str(synthetic)))
    before = yaml.safe_load(cfg.read_text())
    run = subprocess.run([sys.executable, str(REPO / "compute_classweight.py"), "--config", str(cfg),
                          "--write-config", "--workers", "1"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    after = yaml.safe_load(cfg.read_text())
    weights = after["loss"]["types"][0].pop("weight")
    assert len(weights) == 19 and all(1.0 < w < 10.5 for w in weights)
    assert after == before
    assert "# Quick start" in cfg.read_text()  # comments kept
    write_weights_to_config(cfg, [1.0] * 19)  # an existing weight is replaced, not duplicated
    assert yaml.safe_load(cfg.read_text())["loss"]["types"][0]["weight"] == [1.0] * 19
    assert cfg.read_text().count("weight:") == 1


def test_write_weights_handles_block_lists_and_refuses_configs_without_the_loss(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("loss:\n  types:\n    - type: CrossEntropyLoss\n      weight:\n        - 5\n        - 6\n"
                   "      ignore_index: 255\n  coef: [1]\niters: 3\n")
    assert write_weights_to_config(cfg, [0.5, 0.25]) == 1
    assert yaml.safe_load(cfg.read_text()) == {"loss": {"types": [{"type": "CrossEntropyLoss", "weight": [0.5, 0.25],
                                                                   "ignore_index": 255}], "coef": [1]}, "iters": 3}
    other = tmp_path / "o.yml"
    other.write_text("iters: 3\n")
    with pytest.raises(ConfigError, match="no 'type: CrossEntropyLoss'"):
        write_weights_to_config(other, [1.0])
    assert other.read_text() == "iters: 3\n"


@pytest.mark.slow
def test_create_dataset_list(tmp_path):
    for name in ("a", "b", "sub/c"):
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / f"{name}.jpg").write_bytes(b"x")
        (tmp_path / "labels" / f"{name}_mask.png").write_bytes(b"x")
    pairs = find_pairs(tmp_path, "images", "labels", ".jpg", "_mask.png")
    assert pairs == [("images/a.jpg", "labels/a_mask.png"), ("images/b.jpg", "labels/b_mask.png"),
                     ("images/sub/c.jpg", "labels/sub/c_mask.png")]
    train, val = split_pairs(pairs, (2 / 3, 1 / 3), seed=0)
    assert len(train) == 2 and len(val) == 1 and sorted(train + val) == pairs
    write_file_list(tmp_path / "train.txt", train)
    assert (tmp_path / "train.txt").read_text().count("\n") == 2
    run = subprocess.run([sys.executable, str(REPO / "tools" / "create_dataset_list.py"), str(tmp_path),
                          "--label-suffix", "_mask.png", "--split", "0.5", "0.5", "0"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "val.txt").is_file()
    (tmp_path / "labels" / "b_mask.png").unlink()
    run = subprocess.run([sys.executable, str(REPO / "tools" / "create_dataset_list.py"), str(tmp_path),
                          "--label-suffix", "_mask.png"], capture_output=True, text=True)
    assert run.returncode == 2 and "labels/b_mask.png" in run.stderr


def test_quickstart_config_builds_on_the_synthetic_set(synthetic, tmp_path):
    from paddleseg.cvlibs.config import Config

    cfg = tmp_path / "q.yml"
    cfg.write_text((REPO / "configs" / "quickstart" / "espnetv2_synthetic.yml").read_text()
                   .replace("data/synthetic_cityscapes", str(synthetic)))
    c = Config(cfg)
    sample = c.train_dataset[0]
    assert sample["img"].shape == (3, 128, 256) and sample["label"].shape == (128, 256)
    assert c.val_dataset[0]["img"].shape == (3, 128, 256)
    json.dumps(c.dic)  # plain data
