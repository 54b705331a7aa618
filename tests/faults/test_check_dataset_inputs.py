"""Bad inputs to the data-set doctor keep the contract: one ``error:`` line naming the file or flag, exit 2,
nothing written; a hostile label is a named finding, never decoded; and training refuses a set of 0/255 or
colour masks with one line that names the encoding and the conversion command."""
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from doctor_sets import snapshot, write_set
from fault_helpers import assert_user_error, memory_limit, run_script, run_with_fault

TOOL = "tools/check_dataset.py"
CAP = memory_limit("paddleseg.datasets.doctor.checkup")  # the tool's imports, then 1 GB more at most


def doctor(tmp_path, *args, timeout=55):
    return run_with_fault(CAP, TOOL, *args, "--no_progress", "--workers", "2", cwd=tmp_path, timeout=timeout)


def outputs(tmp_path):
    return ["--convert", str(tmp_path / "out"), "--write_config", str(tmp_path / "cfg.yml"),
            "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "report")]


def nothing_written(tmp_path):
    return not any((tmp_path / name).exists() for name in ("out", "cfg.yml", "r.json", "report")) and not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_an_images_folder_without_images(tmp_path):
    write_set(tmp_path / "in", "ids", count=2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    done = doctor(tmp_path, "--images", tmp_path / "empty", "--labels", tmp_path / "in" / "masks", *outputs(tmp_path))
    assert_user_error(done, f"--images {tmp_path / 'empty'}: no images found")
    assert nothing_written(tmp_path)


@pytest.mark.slow
def test_a_missing_labels_folder(tmp_path):
    write_set(tmp_path / "in", "ids", count=2)
    done = doctor(tmp_path, "--images", tmp_path / "in" / "images", "--labels", tmp_path / "nowhere",
                  *outputs(tmp_path))
    assert_user_error(done, f"--labels {tmp_path / 'nowhere'}: folder not found")
    assert nothing_written(tmp_path)


def slow_but(quick, cases):
    """One case runs in the quick suite, the others in the slow one (each is a fresh interpreter)."""
    return [pytest.param(c, marks=() if c == quick else pytest.mark.slow) for c in cases]


@pytest.mark.slow
@pytest.mark.parametrize("kind", slow_but("garbage", ["folder", "garbage", "missing", "fifo"]))
def test_an_unreadable_palette_file(tmp_path, kind):
    write_set(tmp_path / "in", "colour", count=2)
    palette = tmp_path / "palette.txt"
    if kind == "folder":
        palette.mkdir()
    elif kind == "garbage":
        palette.write_bytes(b"128 64 128 road\nthis is no colour\n")
    elif kind == "fifo":
        os.mkfifo(palette)
    expected = {"folder": "is a folder", "garbage": f"{palette}:2: expected 'R G B name'", "missing": "No such file",
                "fifo": "FIFO"}[kind]
    done = doctor(tmp_path, "--images", tmp_path / "in" / "images", "--labels", tmp_path / "in" / "masks",
                  "--palette", palette, *outputs(tmp_path))
    assert_user_error(done, str(palette), expected)
    assert nothing_written(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("where", slow_but("non_empty", ["labels", "inside_images", "non_empty"]))
def test_convert_into_an_input_or_non_empty_folder(tmp_path, where):
    write_set(tmp_path / "in", "binary", count=2)
    target = {"labels": tmp_path / "in" / "masks", "inside_images": tmp_path / "in" / "images" / "ids",
              "non_empty": tmp_path / "busy"}[where]
    if where == "non_empty":
        target.mkdir()
        (target / "keep.txt").write_text("mine")
    before, busy = snapshot(tmp_path / "in"), snapshot(tmp_path / "busy") if where == "non_empty" else {}
    done = doctor(tmp_path, "--images", tmp_path / "in" / "images", "--labels", tmp_path / "in" / "masks",
                  "--convert", target, "--json", tmp_path / "r.json")
    expected = "is not empty" if where == "non_empty" else "is inside the input folder"
    assert_user_error(done, f"--convert {target}", expected)
    assert snapshot(tmp_path / "in") == before and not (tmp_path / "r.json").exists()
    if where == "non_empty":
        assert snapshot(tmp_path / "busy") == busy


@pytest.mark.slow
def test_a_decompression_bomb_label_is_a_finding_and_never_decoded(tmp_path):
    write_set(tmp_path / "in", "ids", count=2)
    bomb = tmp_path / "in" / "masks" / "s01.png"
    Image.new("L", (20000, 20000), 0).save(bomb, optimize=True)  # a few hundred kB claiming 400 Mpx
    done = doctor(tmp_path, "--images", tmp_path / "in" / "images", "--labels", tmp_path / "in" / "masks",
                  "--json", tmp_path / "r.json")
    assert_user_error(done, "unreadable (1 file(s)", str(bomb))
    import json

    finding = {f["kind"]: f for f in json.loads((tmp_path / "r.json").read_text())["findings"]}["unreadable"]
    assert finding["files"] == [str(bomb)] and "above the limit" in finding["detail"]


# ------------------------------------------------------------------------------------------------
# training refuses the same sets up front
# ------------------------------------------------------------------------------------------------
def dataset_config(tmp_path, root, num_classes):
    lines = [f"images/{p.stem}.jpg masks/{p.name}" for p in sorted((root / "masks").iterdir())]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    cfg = {"batch_size": 2, "iters": 4,
           "train_dataset": {"type": "Dataset", "dataset_root": str(root), "train_path": str(root / "train.txt"),
                             "num_classes": num_classes, "mode": "train",
                             "transforms": [{"type": "RandomPaddingCrop", "crop_size": [64, 32]},
                                            {"type": "Normalize"}]},
           "model": {"type": "ESPNetV2", "scale": 0.5, "num_classes": num_classes, "drop_prob": 0.0},
           "optimizer": {"type": "Adam"},
           "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.001, "end_lr": 0.0, "power": 0.9},
           "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1, 1]}}
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("encoding, num_classes, named", [("binary", 2, "binary masks saved as 0/255"),
                                                          ("colour", 19, "RGB colour masks")])
def test_training_refuses_binary_and_colour_mask_sets_naming_the_fix(tmp_path, encoding, num_classes, named):
    root = tmp_path / "data"
    write_set(root, encoding, count=4)
    config = dataset_config(tmp_path, root, num_classes)
    done = run_script("train.py", "--config", config, "--save_dir", tmp_path / "run", cwd=tmp_path, timeout=300)
    line = assert_user_error(done, named, "python tools/check_dataset.py", f"--images {root / 'images'}",
                             f"--labels {root / 'masks'}", "--convert")
    assert "label values outside" not in line and "[TRAIN]" not in done.stderr


def set_pairs(root, encoding, count):
    """(image, mask) paths of a written set of ``encoding``."""
    write_set(root, encoding, count=count)
    return [(str(p), str(root / "masks" / f"{p.stem}.png")) for p in sorted((root / "images").iterdir())]


def test_the_dataset_check_names_the_encoding_not_pixel_255(tmp_path):
    from paddleseg.datasets import checks
    from paddleseg.errors import DatasetError

    pairs = set_pairs(tmp_path / "bin", "binary", 5)
    with pytest.raises(DatasetError, match=r"binary masks saved as 0/255 .*5 of 5 sampled files.*with ignore_index "
                                           r"255 every foreground pixel is ignored.*check_dataset.py --images"):
        checks.check_contents(pairs, 2, 255, workers=1, progress=False)
    assert checks.check_contents(pairs, 2, 255, workers=1, progress=False, raise_error=False)[0].count("0/255") == 1
    with pytest.raises(DatasetError, match="255 is not a class id below num_classes 2"):
        checks.check_contents(pairs, 2, 0, workers=1, progress=False)
    pairs = set_pairs(tmp_path / "scaled", "scaled_ids", 4)
    with pytest.raises(DatasetError, match=r"the labels are class ids times 10, saved to be seen .*4 sampled files.*"
                                           r"outside num_classes 19; convert them with: .*check_dataset.py --images"):
        checks.check_contents(pairs, 19, 255, workers=1, progress=False)
    assert checks.check_contents(pairs, 181, 255, workers=1, progress=False) == []  # in range: ids as they are
    truth = write_set(tmp_path / "ok", "ids", count=3)
    pairs = [(str(tmp_path / "ok" / "images" / f"{s}.jpg"), str(tmp_path / "ok" / "masks" / f"{s}.png")) for s in truth]
    assert checks.check_contents(pairs, 19, 255, workers=1, progress=False) == []
    Image.fromarray(np.where(truth["s00"] == 13, 255, 0).astype(np.uint8)).save(tmp_path / "ok" / "masks" / "s00.png")
    assert checks.check_contents(pairs, 19, 255, workers=1, progress=False) == []  # one background+ignore mask is fine
