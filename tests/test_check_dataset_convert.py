"""The data-set doctor's conversion (paddleseg/datasets/doctor/convert.py, label_maps.py) and config
(config_writer.py): every encoding becomes the source's class ids, the inputs stay as they were, the
output is whole or absent, the lists are what the Dataset type reads, and the written config trains."""
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from paddleseg.datasets.doctor import convert as convert_module
from paddleseg.datasets.doctor.checkup import CheckupRequest, run_checkup
from paddleseg.datasets.doctor.config_writer import QUICKSTART, build_config, fitted_sizes
from paddleseg.datasets.doctor.label_maps import LabelMap
from paddleseg.errors import UserError
from paddleseg.utils.cli import EXIT_OK, EXIT_SKIPPED

from conftest import REPO
from doctor_sets import ENCODINGS, snapshot, write_set


def convert(root: Path, out: Path, **options) -> int:
    request = CheckupRequest(images=str(root / "images"), labels=str(root / "masks"), convert=str(out), workers=1,
                             progress=False, **options)
    return run_checkup(request, out=io.StringIO(), err=io.StringIO())


def read_ids(path: Path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "L"
    return np.asarray(im)


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e != "jpeg_colour"])
def test_every_encoding_converts_to_the_source_classes(tmp_path, encoding):
    truth = write_set(tmp_path / "in", encoding, count=4)
    before = snapshot(tmp_path / "in")
    assert convert(tmp_path / "in", tmp_path / "out", val_fraction=0.25) == EXIT_OK
    assert snapshot(tmp_path / "in") == before  # the inputs are only read
    for stem, ids in truth.items():
        assert np.array_equal(read_ids(tmp_path / "out" / "labels" / f"{stem}.png"), ids), stem
        assert (tmp_path / "out" / "images" / f"{stem}.jpg").read_bytes() == (
            tmp_path / "in" / "images" / f"{stem}.jpg").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folder left


def test_jpeg_colour_masks_snap_to_the_palette_and_keep_every_interior_pixel(tmp_path):
    truth = write_set(tmp_path / "in", "jpeg_colour", count=3, width=192, height=96)
    assert convert(tmp_path / "in", tmp_path / "out") == EXIT_OK
    for stem, ids in truth.items():
        got = read_ids(tmp_path / "out" / "labels" / f"{stem}.png")
        kernel = np.ones((7, 7), np.uint8)
        interior = cv2.dilate(ids, kernel) == cv2.erode(ids, kernel)  # 3 px or more from any class edge
        assert ((got != ids) & interior).sum() <= 0.01 * interior.sum(), stem
        assert (got == ids).mean() > 0.8
        assert set(np.unique(got).tolist()) <= set(range(19)) | {255}


def test_lists_classes_and_split_are_what_the_dataset_type_reads(tmp_path):
    from paddleseg.datasets.dataset import Dataset

    truth = write_set(tmp_path / "in", "colour", count=10)
    assert convert(tmp_path / "in", tmp_path / "out", val_fraction=0.3, seed=5) == EXIT_OK
    out = tmp_path / "out"
    train = (out / "train.txt").read_text().splitlines()
    val = (out / "val.txt").read_text().splitlines()
    assert len(train) == 7 and len(val) == 3 and sorted(train + val) == [
        f"images/{s}.jpg labels/{s}.png" for s in sorted(truth)]
    assert (out / "classes.txt").read_text().splitlines()[13] == "car"
    ds = Dataset(str(out), [], 19, "val", val_path=str(out / "val.txt"))
    sample = ds[0]
    stem = Path(ds.file_list[0][0]).stem
    assert np.array_equal(sample["label"], truth[stem])
    again = tmp_path / "again"
    assert convert(tmp_path / "in", again, val_fraction=0.3, seed=5) == EXIT_OK
    assert (again / "val.txt").read_text() == (out / "val.txt").read_text()  # the split is a function of the seed


def test_duplicates_stay_in_one_split(tmp_path):
    from paddleseg.datasets.doctor.convert import Sample, split_samples

    samples = [Sample(f"s{i}", f"s{i}.jpg", None, group=f"g{i // 2}") for i in range(10)]
    for seed in range(5):
        splits = split_samples(samples, 0.3, seed)
        assert all(splits[i] == splits[i + 1] for i in range(0, 10, 2))
        assert "val" in splits and "train" in splits


def test_a_failure_part_way_leaves_nothing(tmp_path, monkeypatch):
    write_set(tmp_path / "in", "binary", count=4)
    real = convert_module._write_sample
    calls = []

    def failing(job):
        calls.append(job[1].name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(job)

    monkeypatch.setattr(convert_module, "_write_sample", failing)
    with pytest.raises(UserError, match="could not be written .*No space left on device.*nothing was written"):
        convert(tmp_path / "in", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_unconvertible_pairs_are_left_out_and_named_with_exit_3(tmp_path):
    truth = write_set(tmp_path / "in", "ids", count=4)
    bad = tmp_path / "in" / "masks" / "s02.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad)
    (tmp_path / "in" / "masks" / "s03.png").unlink()
    err = io.StringIO()
    code = run_checkup(CheckupRequest(images=str(tmp_path / "in" / "images"), labels=str(tmp_path / "in" / "masks"),
                                      convert=str(tmp_path / "out"), workers=1, progress=False),
                       out=io.StringIO(), err=err)
    assert code == EXIT_SKIPPED
    assert f"{bad} (size mismatch)" in err.getvalue() and "s03.jpg (no label)" in err.getvalue()
    written = sorted(p.stem for p in (tmp_path / "out" / "labels").iterdir())
    assert written == ["s00", "s01"]
    assert np.array_equal(read_ids(tmp_path / "out" / "labels" / "s01.png"), truth["s01"])


def test_snapping_maps_every_value_to_the_nearest_valid_one():
    m = LabelMap.values([0, 1, 2, 255], [0, 1, 2, 255], snap=True)
    assert m.table[[0, 1, 2, 3, 100, 128, 129, 200, 254, 255]].tolist() == [0, 1, 2, 2, 2, 2, 255, 255, 255, 255]
    assert m.exact[[0, 3, 255]].tolist() == [True, False, True]
    strict = LabelMap.values([0, 1], [0, 1])
    assert strict.table[[0, 1, 2]].tolist() == [0, 1, -1]


# ------------------------------------------------------------------------------------------------
# the config
# ------------------------------------------------------------------------------------------------
def test_the_quickstart_schedule_is_the_quickstart_configs():
    quick = yaml.safe_load((REPO / "configs" / "quickstart" / "espnetv2_synthetic.yml").read_text())
    assert QUICKSTART["iters"] == quick["iters"]
    assert QUICKSTART["optimizer"] == quick["optimizer"] and QUICKSTART["lr_scheduler"] == quick["lr_scheduler"]
    assert QUICKSTART["loss_coef"] == quick["loss"]["coef"]
    assert {k: v for k, v in QUICKSTART["model"].items()} == {k: v for k, v in quick["model"].items()
                                                              if k != "num_classes"}
    ours = [t for t in QUICKSTART["train_transforms"] if t["type"] != "RandomPaddingCrop"]
    theirs = [t for t in quick["train_dataset"]["transforms"] if t["type"] != "RandomPaddingCrop"]
    assert ours == theirs


def test_crop_and_batch_fit_the_images():
    assert fitted_sizes([(48, 96)] * 5, 100) == (None, [96, 48], 16)
    assert fitted_sizes([(300, 500), (310, 500), (2000, 10)], 100) == (None, [496, 304], 2)
    assert fitted_sizes([(3000, 4000)] * 3, 100) == (1024, [512, 512], 2)
    assert fitted_sizes([(48, 96)] * 3, 3) == (None, [96, 48], 3)


def test_the_written_config_builds_the_converted_set_with_names_and_weights(tmp_path):
    from paddleseg.cvlibs.config import Config

    write_set(tmp_path / "in", "colour", count=6)
    config = tmp_path / "cfg" / "mine.yml"
    code = run_checkup(CheckupRequest(images=str(tmp_path / "in" / "images"), labels=str(tmp_path / "in" / "masks"),
                                      convert=str(tmp_path / "out"), write_config=str(config), workers=1,
                                      progress=False), out=io.StringIO())
    assert code == EXIT_OK
    cfg = Config(config)
    train = cfg.train_dataset
    assert type(train).__name__ == "Dataset" and train.num_classes == 19 and len(train) == 5
    assert train.class_names[13] == "car" and cfg.val_dataset.class_names == train.class_names
    # the masks' own colours come along: predict.py, reports and exports draw with them
    assert train.palette[13] == (0, 0, 142) and len(train.palette) == 19 and cfg.palette == train.palette
    raw = yaml.safe_load(config.read_text())
    counts = sum(np.bincount(read_ids(p).ravel(), minlength=256)[:19] for p in (tmp_path / "out" / "labels").iterdir())
    p = counts / counts.sum()
    assert np.allclose(raw["loss"]["types"][0]["weight"], 1 / np.log(1.10 + p), atol=1e-4)
    assert raw["model"]["num_classes"] == 19 and raw["batch_size"] == 5  # no more than the training samples
    assert "&id" not in config.read_text()  # plain YAML, no anchors
    sample = train[0]
    assert sample["img"].shape == (3, 48, 96) and sample["label"].max() <= 255
    with pytest.raises(UserError, match="exists"):  # a config is never replaced
        run_checkup(CheckupRequest(images=str(tmp_path / "in" / "images"), labels=str(tmp_path / "in" / "masks"),
                                   convert=str(tmp_path / "out2"), write_config=str(config), workers=1, progress=False),
                    out=io.StringIO())
    assert not (tmp_path / "out2").exists()


def test_build_config_leaves_out_class_names_when_asked(tmp_path):
    from paddleseg.datasets.doctor.convert import Conversion

    c = Conversion(tmp_path, 3, 255, ["a", "b", "c"], 4, 0, "\t", np.array([5, 0, 1]), np.array([9, 0, 9]),
                   [(64, 64)] * 4)
    cfg = build_config(c, class_names=False)
    assert "val_dataset" not in cfg and "class_names" not in cfg["train_dataset"]
    assert cfg["train_dataset"]["separator"] == "\t"
    assert cfg["loss"]["types"][0]["weight"][1] == pytest.approx(1 / np.log(1.10), abs=1e-4)


@pytest.mark.slow
def test_the_written_config_trains_well_above_the_most_frequent_class(tmp_path):
    """200 iterations (scale 0.5, batch 4) on a converted colour-mask set; measured 70 s on 2 shared cores."""
    import subprocess
    import sys

    write_set(tmp_path / "in", "colour", count=30, width=128, height=64)
    config = tmp_path / "mine.yml"
    assert run_checkup(CheckupRequest(images=str(tmp_path / "in" / "images"), labels=str(tmp_path / "in" / "masks"),
                                      convert=str(tmp_path / "out"), write_config=str(config), progress=False),
                       out=io.StringIO()) == EXIT_OK
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(config), "--iters", "200",
                           "--batch_size", "4", "--opts", "model.scale=0.5", "--do_eval", "--save_interval", "200",
                           "--save_dir", str(tmp_path / "run"), "--log_iters", "50"], capture_output=True, text=True,
                          timeout=600)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    miou = json.loads((tmp_path / "run" / "train_history.json").read_text())["eval"][-1]["miou"]
    # the most-frequent-class baseline on the validation labels: that class's share, averaged over the classes present
    counts = sum(np.bincount(read_ids(tmp_path / "out" / line.split()[1]).ravel(), minlength=256)[:19]
                 for line in (tmp_path / "out" / "val.txt").read_text().splitlines())
    baseline = counts.max() / counts.sum() / np.count_nonzero(counts)
    print(f"200 iterations in {elapsed:.0f} s: mIoU {miou:.4f}, most-frequent-class baseline {baseline:.4f}")
    assert miou > 0.15 and miou > 5 * baseline
