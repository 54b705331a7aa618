"""The annotation tools' layouts (paddleseg/datasets/doctor/labelme.py, voc.py): labelme shapes are drawn
exactly as PIL draws them, in file order, with a label map that is written and reused; a Pascal VOC tree
keeps its official split; both end in the same id PNGs and lists as check_dataset.py --convert."""
import base64
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from paddleseg.datasets.doctor.checkup import CheckupRequest, LabelmeRequest, run_checkup, run_labelme
from paddleseg.datasets.doctor.labelme import label_ids, rasterize, read_labelme
from paddleseg.utils.cli import EXIT_OK, EXIT_SKIPPED

from conftest import REPO
from doctor_sets import png_bytes, scenes, voc_palette_flat

W, H = 80, 60
SHAPES = [  # file order: later shapes cover earlier ones
    {"label": "road", "shape_type": "polygon", "points": [[0, 40.5], [79, 35.2], [79, 59], [0, 59]]},
    {"label": "car", "shape_type": "polygon", "points": [[10.3, 30], [40.7, 28.1], [44, 50.6], [8, 52]]},
    {"label": "sign", "shape_type": "rectangle", "points": [[60, 5], [70.5, 20]]},
    {"label": "car", "shape_type": "circle", "points": [[30, 40], [36, 44]]},
    {"label": "__ignore__", "shape_type": "polygon", "points": [[0, 0], [6, 0], [6, 6]]},
]


def labelme_json(shapes, image_path="a.png", image_data=None, width=W, height=H):
    return json.dumps({"version": "5.4.1", "flags": {}, "shapes": [dict(s, group_id=None, flags={}) for s in shapes],
                       "imagePath": image_path, "imageData": image_data, "imageHeight": height, "imageWidth": width})


def drawn_with_pil(shapes, ids, ignore=255):
    """The same shapes drawn directly on one canvas with PIL, each filled and outlined with its id."""
    canvas = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(canvas)
    for s in shapes:
        value = ignore if s["label"] == "__ignore__" else ids[s["label"]]
        xy = [tuple(p) for p in s["points"]]
        if s["shape_type"] == "polygon":
            draw.polygon(xy, fill=value, outline=value)
        elif s["shape_type"] == "rectangle":
            draw.rectangle(xy, fill=value, outline=value)
        elif s["shape_type"] == "circle":
            (cx, cy), (px, py) = xy
            r = math.hypot(cx - px, cy - py)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
    return np.asarray(canvas)


def write_annotations(folder: Path, shapes_per_file, embed: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    for i, shapes in enumerate(shapes_per_file):
        img = (np.random.default_rng(i).random((H, W, 3)) * 255).astype(np.uint8)
        data = None
        if embed:
            data = base64.b64encode(png_bytes(img)).decode()
        else:
            Image.fromarray(img).save(folder / f"f{i}.png")
        (folder / f"f{i}.json").write_text(labelme_json(shapes, f"f{i}.png", data))


def test_shapes_are_rasterised_as_pil_draws_them_in_file_order(tmp_path):
    (tmp_path / "a.json").write_text(labelme_json(SHAPES))
    ids, added = label_ids(s["label"] for s in SHAPES)
    assert ids == {"_background_": 0, "car": 1, "road": 2, "sign": 3} and added == ["car", "road", "sign"]
    got = rasterize(read_labelme(tmp_path / "a.json"), ids)
    expected = drawn_with_pil(SHAPES, ids)
    assert np.array_equal(got, expected)
    assert set(np.unique(got).tolist()) == {0, 1, 2, 3, 255}
    reordered = rasterize(read_labelme_from(tmp_path, SHAPES[::-1]), ids)
    assert not np.array_equal(reordered, got)  # order matters: the car covers the road, not the other way


def read_labelme_from(folder, shapes):
    (folder / "b.json").write_text(labelme_json(shapes))
    return read_labelme(folder / "b.json")


def test_lines_points_and_masks_are_drawn_too(tmp_path):
    mask = np.zeros((6, 8), np.uint8)
    mask[1:5, 2:7] = 1
    shapes = [{"label": "wire", "shape_type": "linestrip", "points": [[0, 10], [40, 10], [40, 30]]},
              {"label": "dot", "shape_type": "point", "points": [[60, 40]]},
              {"label": "blob", "shape_type": "mask", "points": [[20, 45], [27, 50]],
               "mask": base64.b64encode(png_bytes(mask * 255)).decode()}]
    (tmp_path / "c.json").write_text(labelme_json(shapes))
    ids, _ = label_ids(s["label"] for s in shapes)
    got = rasterize(read_labelme(tmp_path / "c.json"), ids)
    assert np.flatnonzero(got[:, 0] == ids["wire"]).tolist() == list(range(6, 16))  # 10 px wide
    assert (got[6:16, 0:36] == ids["wire"]).all()
    assert got[40, 60] == ids["dot"] and got[40, 65] == ids["dot"] and got[40, 66] == 0  # radius 5
    assert (got[46:50, 22:27] == ids["blob"]).all() and got[45, 22] == 0 and got[46, 21] == 0


def test_the_label_map_is_written_and_reused_with_new_labels_appended(tmp_path):
    label_map = tmp_path / "label_map.json"
    write_annotations(tmp_path / "batch1", [SHAPES[:2], SHAPES[2:4]])
    assert run_labelme(LabelmeRequest(str(tmp_path / "batch1"), str(tmp_path / "out1"), str(label_map),
                                      workers=1, progress=False), out=io.StringIO()) == EXIT_OK
    first = json.loads(label_map.read_text())
    assert first == {"_background_": 0, "car": 1, "road": 2, "sign": 3}
    assert json.loads((tmp_path / "out1" / "label_map.json").read_text()) == first
    assert (tmp_path / "out1" / "classes.txt").read_text().split() == ["_background_", "car", "road", "sign"]
    got = np.asarray(Image.open(tmp_path / "out1" / "labels" / "f0.png"))
    assert np.array_equal(got, drawn_with_pil(SHAPES[:2], first))
    # a second batch with a new label: the old ids stay, the new one is appended
    extra = [{"label": "bike", "shape_type": "polygon", "points": [[1, 1], [20, 1], [20, 20]]}]
    write_annotations(tmp_path / "batch2", [SHAPES[:2] + extra])
    out = io.StringIO()
    assert run_labelme(LabelmeRequest(str(tmp_path / "batch2"), str(tmp_path / "out2"), str(label_map),
                                      workers=1, progress=False), out=out) == EXIT_OK
    second = json.loads(label_map.read_text())
    assert second == {**first, "bike": 4} and "bike = 4" in out.getvalue()
    got = np.asarray(Image.open(tmp_path / "out2" / "labels" / "f0.png"))
    assert np.array_equal(got, drawn_with_pil(SHAPES[:2] + extra, second))


def test_embedded_images_are_written_and_bad_files_skipped_with_exit_3(tmp_path):
    write_annotations(tmp_path / "json", [SHAPES[:2], SHAPES[:3]], embed=True)
    (tmp_path / "json" / "broken.json").write_text("{not json")
    embedded = json.loads((tmp_path / "json" / "f0.json").read_text())["imageData"]
    (tmp_path / "json" / "wrong_size.json").write_text(labelme_json(SHAPES[:1], "f0.png", embedded, width=W + 1))
    err = io.StringIO()
    code = run_labelme(LabelmeRequest(str(tmp_path / "json"), str(tmp_path / "out"), workers=1, progress=False,
                                      val_fraction=0.5), out=io.StringIO(), err=err)
    assert code == EXIT_SKIPPED
    assert "broken.json: not a JSON file" in err.getvalue()
    assert "wrong_size.json: imageHeight/imageWidth" in err.getvalue()
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["f0.png", "f1.png"]
    embedded = np.asarray(Image.open(tmp_path / "out" / "images" / "f1.png"))
    assert np.array_equal(embedded, (np.random.default_rng(1).random((H, W, 3)) * 255).astype(np.uint8))
    lines = [line for name in ("train.txt", "val.txt") for line in (tmp_path / "out" / name).read_text().splitlines()]
    assert sorted(lines) == ["images/f0.png labels/f0.png", "images/f1.png labels/f1.png"]


@pytest.mark.slow
def test_the_labelme_tool_writes_a_config(tmp_path):
    write_annotations(tmp_path / "json", [SHAPES, SHAPES[:2], SHAPES[1:]])
    done = subprocess.run([sys.executable, str(REPO / "tools" / "convert_labelme.py"), "--json_dir",
                           str(tmp_path / "json"), "--out", str(tmp_path / "out"), "--write_config",
                           str(tmp_path / "lm.yml"), "--no_progress"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import yaml

    cfg = yaml.safe_load((tmp_path / "lm.yml").read_text())
    assert cfg["train_dataset"]["num_classes"] == 4
    assert cfg["train_dataset"]["class_names"] == ["_background_", "car", "road", "sign"]
    assert cfg["train_dataset"]["dataset_root"] == str(tmp_path / "out")


# ------------------------------------------------------------------------------------------------
# Pascal VOC
# ------------------------------------------------------------------------------------------------
def write_voc(root: Path, count: int = 6):
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (img, ids) in enumerate(scenes(count)):
        name = f"2007_{i:06d}"
        Image.fromarray(img).save(root / "JPEGImages" / f"{name}.jpg", quality=90)
        voc = np.where(ids == 255, 255, ids % 21).astype(np.uint8)
        im = Image.fromarray(voc, mode="P")
        im.putpalette(voc_palette_flat())
        im.save(root / "SegmentationClass" / f"{name}.png")
        truth[name] = voc
    Image.fromarray(img).save(root / "JPEGImages" / "2008_000999.jpg")  # detection-only image: no mask, no finding
    names = sorted(truth)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names[:4]) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names[4:]) + "\n")
    return truth


def test_a_voc_tree_converts_with_its_official_split_and_names(tmp_path):
    truth = write_voc(tmp_path / "VOCdevkit" / "VOC2012")
    out = io.StringIO()
    code = run_checkup(CheckupRequest(voc=str(tmp_path / "VOCdevkit"), convert=str(tmp_path / "out"),
                                      json_file=str(tmp_path / "voc.json"), workers=1, progress=False), out=out)
    assert code == EXIT_OK
    data = json.loads((tmp_path / "voc.json").read_text())
    assert (data["encoding"], data["num_classes"], data["palette"]) == ("palette_png", 21, "Pascal VOC")
    assert [f["kind"] for f in data["findings"]] == ["empty_class"]  # the scenes use 19 of VOC's 21 ids
    train = (tmp_path / "out" / "train.txt").read_text().splitlines()
    assert train == [f"images/{n}.jpg labels/{n}.png" for n in sorted(truth)[:4]]
    assert (tmp_path / "out" / "val.txt").read_text().split()[0] == f"images/{sorted(truth)[4]}.jpg"
    assert (tmp_path / "out" / "classes.txt").read_text().split()[15] == "person"
    for name, ids in truth.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "labels" / f"{name}.png")), ids)


def test_a_voc_list_naming_a_missing_mask_is_a_finding(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root, count=3)
    with open(root / "ImageSets" / "Segmentation" / "val.txt", "a") as f:
        f.write("2008_000999\n")
    with pytest.raises(Exception, match=r"missing_label \(1 file\(s\), e.g. .*2008_000999.jpg\)"):
        run_checkup(CheckupRequest(voc=str(root), workers=1, progress=False), out=io.StringIO())
    shutil.rmtree(root / "ImageSets")  # without lists: every mask with its image, no finding for the rest
    assert run_checkup(CheckupRequest(voc=str(root), workers=1, progress=False, json_file=str(tmp_path / "v.json")),
                       out=io.StringIO()) == EXIT_OK
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["pairs"] == 3 and [f["kind"] for f in data["findings"]] == ["empty_class"]
