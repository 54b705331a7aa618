"""Datasets: discovery of the Cityscapes layout and file lists, every structural and content error,
samples and their per-(seed, epoch, index) randomness."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from paddleseg.cvlibs.config import Config
from paddleseg.datasets import Cityscapes, Dataset
from paddleseg.errors import DatasetError
from paddleseg.transforms import Normalize, RandomHorizontalFlip, RandomPaddingCrop, ResizeStepScaling


def make_city(root, mode="train", n=3, size=(32, 16), label_fn=None, city="aachen"):
    img_dir, lab_dir = root / "leftImg8bit" / mode / city, root / "gtFine" / mode / city
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n):
        stem = f"{city}_{i:06d}_000019"
        cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), np.full((h, w, 3), 10 * i, np.uint8))
        label = label_fn(i) if label_fn else (np.arange(w)[None, :].repeat(h, 0) % 19).astype(np.uint8)
        Image.fromarray(label).save(lab_dir / f"{stem}_gtFine_labelTrainIds.png")
    return root


def test_cityscapes_finds_pairs_and_loads_samples(tmp_path):
    make_city(tmp_path, "train", 3)
    make_city(tmp_path, "train", 2, city="bochum")
    ds = Cityscapes(str(tmp_path), [Normalize()], "train")
    assert len(ds) == 5 and ds.num_classes == 19 and ds.ignore_index == 255 and ds.mode == "train"
    assert all(i.endswith("_leftImg8bit.png") and lab.endswith("_gtFine_labelTrainIds.png") for i, lab in ds.file_list)
    sample = ds[1]
    assert sample["img"].shape == (3, 16, 32) and sample["img"].dtype == np.float32
    assert sample["label"].shape == (16, 32) and sample["label"].dtype == np.int64
    assert sample["label"][0, :20].tolist() == list(range(19)) + [0]
    assert np.allclose(sample["img"], 10 / 255 / 0.5 - 1, atol=1e-6)
    assert sample["img_path"] == ds.file_list[1][0] and sample["label_path"] == ds.file_list[1][1]


def test_cityscapes_test_mode_needs_no_labels(tmp_path):
    make_city(tmp_path, "test", 2)
    for p in (tmp_path / "gtFine").rglob("*.png"):
        p.unlink()
    ds = Cityscapes(str(tmp_path), [Normalize()], "test")
    sample = ds[0]
    assert "label" not in sample and sample["label_path"] is None and sample["img"].shape == (3, 16, 32)


@pytest.mark.parametrize("breakage, message", [
    ("no_root", "dataset_root .*missing.*folder not found"),
    ("no_split", r"val split: folder not found: .*leftImg8bit/val"),
    ("no_images", r"no images found matching"),
    ("no_label", r"1 of 3 images have no label, e.g. .*aachen_000001_000019_gtFine_labelTrainIds.png"),
])
def test_cityscapes_structural_errors_name_the_path(tmp_path, breakage, message):
    root = tmp_path / "missing" if breakage == "no_root" else make_city(tmp_path, "train", 3)
    mode = "train"
    if breakage == "no_split":
        mode = "val"
    elif breakage == "no_images":
        for p in (tmp_path / "leftImg8bit").rglob("*.png"):
            p.unlink()
    elif breakage == "no_label":
        next((tmp_path / "gtFine").rglob("*000001_000019_gtFine_labelTrainIds.png")).unlink()
    with pytest.raises(DatasetError, match=message):
        Cityscapes(str(root), [], mode)


def test_missing_label_with_polygons_suggests_the_convert_tool(tmp_path):
    make_city(tmp_path, "train", 1)
    label = next((tmp_path / "gtFine").rglob("*_gtFine_labelTrainIds.png"))
    label.unlink()
    label.with_name(label.name.replace("labelTrainIds.png", "polygons.json")).write_text("{}")
    with pytest.raises(DatasetError, match="convert_cityscapes.py"):
        Cityscapes(str(tmp_path), [], "train")


def test_content_check_reports_truncated_image_size_mismatch_and_bad_values(tmp_path):
    def label_fn(i):
        label = np.zeros((16, 32), np.uint8)
        if i == 2:
            label[:3, :4] = 19  # 12 px
            label[5, :2] = 200  # 2 px
            label[6, :5] = 255  # fine: ignored
        return label

    make_city(tmp_path, "train", 4, label_fn=label_fn)
    ds = Cityscapes(str(tmp_path), [], "train")
    assert len(ds.check_contents(workers=1, progress=False, raise_error=False)) == 1  # the bad values
    img0 = ds.file_list[0][0]
    data = open(img0, "rb").read()
    open(img0, "wb").write(data[: len(data) // 2])
    Image.fromarray(np.zeros((10, 32), np.uint8)).save(ds.file_list[1][1])
    problems = ds.check_contents(workers=1, progress=False, raise_error=False)
    assert len(problems) == 3
    assert problems[0].startswith(img0) and "truncated" in problems[0]
    assert "label size 32x10 differs from the image's 32x16" in problems[1]
    assert "19 (12 px), 200 (2 px)" in problems[2] and "14 pixels in all" in problems[2]
    assert problems[2].startswith(ds.file_list[2][1])
    with pytest.raises(DatasetError, match="3 of 4 samples are invalid"):
        ds.check_contents(workers=2, progress=False)
    with pytest.raises(DatasetError, match="truncated"):
        ds[0]


def test_sample_randomness_depends_on_seed_epoch_and_index_only(tmp_path):
    make_city(tmp_path, "train", 2, size=(64, 32))
    ts = [ResizeStepScaling(0.5, 2.0, 0.25), RandomPaddingCrop([32, 16]), RandomHorizontalFlip()]
    a, b = Cityscapes(str(tmp_path), ts, "train"), Cityscapes(str(tmp_path), ts, "train")
    assert a.seed == 0 and a.epoch == 0
    draws = lambda ds: [ds[1]["label"] for _ in range(2)]
    first = draws(a)
    assert np.array_equal(first[0], first[1]) and np.array_equal(first[0], draws(b)[0])
    seen = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        seen.add(a[1]["label"].tobytes())
    assert len(seen) > 2, "augmentations must differ between epochs"


def test_file_list_dataset(tmp_path):
    make_city(tmp_path, "train", 2)
    pairs = [(str(Path(i).relative_to(tmp_path)), str(Path(lab).relative_to(tmp_path)))
             for i, lab in Cityscapes(str(tmp_path), [], "train").file_list]
    (tmp_path / "train.txt").write_text("".join(f"{i} {lab}\n" for i, lab in pairs))
    (tmp_path / "test.txt").write_text("".join(f"{i}\n" for i, _ in pairs))
    ds = Dataset(str(tmp_path), [Normalize()], 19, train_path=str(tmp_path / "train.txt"))
    assert len(ds) == 2 and ds[0]["label"].shape == (16, 32) and ds.num_classes == 19
    test = Dataset(str(tmp_path), [Normalize()], 19, mode="test", test_path=str(tmp_path / "test.txt"))
    assert "label" not in test[0]
    with pytest.raises(DatasetError, match=r"test.txt:1: expected 'image label'"):
        Dataset(str(tmp_path), [], 19, train_path=str(tmp_path / "test.txt"))
    (tmp_path / "bad.txt").write_text("nope.png nope_label.png\n")
    with pytest.raises(DatasetError, match="2 listed files not found, e.g. .*nope.png"):
        Dataset(str(tmp_path), [], 19, train_path=str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="needs val_path"):
        Dataset(str(tmp_path), [], 19, mode="val")


def test_class_names_come_from_the_data_set(tmp_path):
    """Tables and reports name classes as the data set does: Cityscapes its 19, a file-list data set the
    names it is given, else none (indices), even with 19 classes."""
    from paddleseg.utils.cityscapes_labels import CITYSCAPES_CLASSES

    make_city(tmp_path, "train", 2)
    assert Cityscapes(str(tmp_path), [], "train").class_names == CITYSCAPES_CLASSES
    pairs = [(str(Path(i).relative_to(tmp_path)), str(Path(lab).relative_to(tmp_path)))
             for i, lab in Cityscapes(str(tmp_path), [], "train").file_list]
    (tmp_path / "train.txt").write_text("".join(f"{i} {lab}\n" for i, lab in pairs))
    listed = dict(dataset_root=str(tmp_path), transforms=[], train_path=str(tmp_path / "train.txt"))
    assert Dataset(num_classes=19, **listed).class_names is None
    assert Dataset(num_classes=2, class_names=["road", "rest"], **listed).class_names == ("road", "rest")
    for bad in (["road"], ["road", ""], "road rest", ["road", 3]):
        with pytest.raises(ValueError, match=r"Dataset.class_names must be a list of 2 names"):
            Dataset(num_classes=2, class_names=bad, **listed)


def test_reference_config_builds_datasets(tmp_path):
    make_city(tmp_path / "cityscapes", "train", 1)
    make_city(tmp_path / "cityscapes", "val", 1)
    cfg_path = tmp_path / "ref.yml"
    cfg_path.write_text(REFERENCE.replace("dataset_root: cityscapes", f"dataset_root: {tmp_path / 'cityscapes'}"))
    cfg = Config(cfg_path)
    train, val = cfg.train_dataset, cfg.val_dataset
    assert [type(t).__name__ for t in train.transforms.transforms] == [
        "ResizeStepScaling", "RandomPaddingCrop", "RandomHorizontalFlip", "RandomDistort", "Normalize"]
    assert train.transforms.transforms[1].crop_size == (1024, 512)
    assert train[0]["img"].shape == (3, 512, 1024) and val[0]["img"].shape == (3, 16, 32)


REFERENCE = """
train_dataset:
  type: Cityscapes
  dataset_root: cityscapes
  transforms:
    - type: ResizeStepScaling
      min_scale_factor: 0.5
      max_scale_factor: 2.0
      scale_step_size: 0.25
    - type: RandomPaddingCrop
      crop_size: [1024, 512]      # [width, height], PaddleSeg convention
    - type: RandomHorizontalFlip
    - type: RandomDistort
      brightness_range: 0.4
      contrast_range: 0.4
      saturation_range: 0.4
    - type: Normalize
  mode: train
val_dataset:
  type: Cityscapes
  dataset_root: cityscapes
  transforms:
    - type: Normalize
  mode: val
"""


@pytest.mark.parametrize("values, ignore_index, bad", [
    ([0, 18], 255, None),
    ([0, 18, 255], 255, None),
    ([0, 100, 255], 255, "100 (1 px)"),
    ([0, 19], 255, "19 (1 px)"),
    ([0, 18, 254], 254, None),
    ([0, 255], 254, "255 (1 px)"),
])
def test_label_values_are_checked_when_a_sample_is_read(values, ignore_index, bad):
    from paddleseg.datasets.dataset import check_label_values

    label = np.zeros((8, 16), np.uint8)
    label[0, :len(values)] = values
    if bad is None:
        check_label_values(label, 19, ignore_index, "l.png")
    else:
        with pytest.raises(DatasetError, match=rf"^l.png: label values outside 0..18 and {ignore_index}: "
                                               rf"{re.escape(bad)}"):
            check_label_values(label, 19, ignore_index, "l.png")


def test_a_sample_with_a_label_out_of_range_names_its_file(tmp_path):
    def label_fn(i):
        label = np.zeros((16, 32), np.uint8)
        label[3, 4] = 100 if i == 1 else 255
        return label

    ds = Cityscapes(make_city(tmp_path, "train", 2, label_fn=label_fn), transforms=[Normalize()], mode="train")
    assert ds[0]["label"].max() == 255
    with pytest.raises(DatasetError, match=r"aachen_000001_000019_gtFine_labelTrainIds.png: label values outside "
                                           r"0..18 and 255: 100 \(1 px\)"):
        ds[1]
