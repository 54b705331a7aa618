"""The data-set doctor's findings (paddleseg/datasets/doctor/diagnosis.py): every kind fires on a set built
with that fault, names its files and counts, and a clean set has none; the JSON report and exit codes of
tools/check_dataset.py."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from paddleseg.datasets.doctor.checkup import CheckupRequest, run_checkup
from paddleseg.datasets.doctor.diagnosis import Options, diagnose
from paddleseg.datasets.doctor.pairing import find_pairs
from paddleseg.datasets.doctor.palettes import read_palette_file
from paddleseg.datasets.doctor.scan import scan_pairs
from paddleseg.errors import DatasetError

from conftest import REPO
from doctor_sets import FOREGROUND, scenes, write_set


def examine(root, **options):
    pairing = find_pairs(root / "images", root / "masks")
    palette = options.pop("palette", None)
    opts = Options(labels_dir=str(root / "masks"), palette=read_palette_file(palette) if palette else None, **options)
    return diagnose(scan_pairs(pairing.pairs, workers=1, progress=False), pairing, opts)


def tool(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "check_dataset.py"), *map(str, args), "--no_progress"],
                          capture_output=True, text=True, timeout=120)


def kinds(d):
    return {f.kind: f for f in d.findings}


def true_pixels(truth, num_classes):
    return sum(np.bincount(ids[ids < num_classes].ravel(), minlength=num_classes) for ids in truth.values())


def test_a_clean_id_set_has_no_findings_and_the_true_class_pixels(tmp_path):
    truth = write_set(tmp_path, "ids", count=5)
    d = examine(tmp_path)
    assert d.findings == [] and d.encoding == "ids" and d.num_classes == 19
    assert d.class_pixels.tolist() == true_pixels(truth, 19).tolist()
    p = d.class_pixels / d.class_pixels.sum()
    assert np.allclose(d.class_weights["espnet"], 1 / np.log(1.10 + p), atol=1e-5)


def test_missing_label_and_missing_image_name_their_files(tmp_path):
    write_set(tmp_path, "ids", count=4)
    (tmp_path / "masks" / "s01.png").unlink()
    (tmp_path / "images" / "s02.jpg").unlink()
    d = examine(tmp_path)
    found = kinds(d)
    assert found["missing_label"].files == [str(tmp_path / "images" / "s01.jpg")]
    assert found["missing_image"].files == [str(tmp_path / "masks" / "s02.png")]
    assert found["missing_label"].severity == "error" and found["missing_image"].severity == "warning"
    assert len(d.scans) == 2


def test_pairing_accepts_the_usual_suffixes_and_sub_folders(tmp_path):
    write_set(tmp_path, "ids", count=3, mask_suffix="_mask")
    (tmp_path / "images" / "sub").mkdir()
    (tmp_path / "masks" / "sub").mkdir()
    shutil.copy(tmp_path / "images" / "s00.jpg", tmp_path / "images" / "sub" / "x_leftImg8bit.jpg")
    shutil.copy(tmp_path / "masks" / "s00_mask.png", tmp_path / "masks" / "sub" / "x_gtFine_labelTrainIds.png")
    shutil.copy(tmp_path / "images" / "s01.jpg", tmp_path / "images" / "sub" / "s01.jpg")  # no label in sub/
    pairing = find_pairs(tmp_path / "images", tmp_path / "masks")
    assert [(a.split("images/")[1], b.split("masks/")[1]) for a, b in pairing.pairs] == [
        ("s00.jpg", "s00_mask.png"), ("s01.jpg", "s01_mask.png"), ("s02.jpg", "s02_mask.png"),
        ("sub/x_leftImg8bit.jpg", "sub/x_gtFine_labelTrainIds.png")]
    assert pairing.missing_label == [str(tmp_path / "images" / "sub" / "s01.jpg")]


def test_images_and_masks_in_one_folder_pair_by_suffix(tmp_path):
    write_set(tmp_path, "ids", count=2, mask_suffix="_label")
    for p in (tmp_path / "masks").iterdir():
        p.rename(tmp_path / "images" / p.name)
    pairing = find_pairs(tmp_path / "images", tmp_path / "images")
    assert [p[1].rsplit("/", 1)[1] for p in pairing.pairs] == ["s00_label.png", "s01_label.png"]
    assert pairing.missing_label == [] and pairing.missing_image == []


def test_size_mismatch_names_both_sizes(tmp_path):
    write_set(tmp_path, "ids", count=3)
    bad = tmp_path / "masks" / "s01.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(bad)
    found = kinds(examine(tmp_path))
    assert found["size_mismatch"].files == [str(bad)]
    assert "30x20, image 96x48" in found["size_mismatch"].detail


def test_out_of_range_counts_values_against_num_classes(tmp_path):
    truth = write_set(tmp_path, "ids", count=4)
    d = examine(tmp_path, num_classes=13)
    f = kinds(d)["out_of_range"]
    counts = sum(np.bincount(ids.ravel(), minlength=256) for ids in truth.values())
    for value in (13, 15):  # car and bus are in every scene
        assert f"{value} ({counts[value]:,} px)" in f.detail
    assert f"{int(counts[13:19].sum()):,} pixels in all" in f.detail
    assert f.files == sorted(f.files) and len(f.files) == 4 and f.severity == "error"
    assert d.convertible == []  # an out-of-range file is left out of a conversion


def test_unreadable_image_and_label_are_named_with_the_reason(tmp_path):
    write_set(tmp_path, "ids", count=3)
    image, label = tmp_path / "images" / "s00.jpg", tmp_path / "masks" / "s02.png"
    image.write_bytes(image.read_bytes()[:200])
    label.write_bytes(b"not a png at all")
    f = kinds(examine(tmp_path))["unreadable"]
    assert f.files == [str(image), str(label)]
    assert "unreadable or truncated" in f.detail and str(label) in f.detail


def test_lossy_label_counts_the_pixels_a_conversion_snaps(tmp_path):
    write_set(tmp_path, "jpeg_binary", count=3)
    d = examine(tmp_path)
    found = kinds(d)
    assert set(found) == {"lossy_label", "binary_0_255"}  # JPEG noise is not taken for classes
    assert found["lossy_label"].files == [str(tmp_path / "masks" / f"s0{i}.jpg") for i in range(3)]
    assert d.snapped_pixels > 0 and f"{d.snapped_pixels:,} of their" in found["lossy_label"].detail
    assert d.num_classes == 2


def test_a_jpeg_named_png_is_lossy_too(tmp_path):
    write_set(tmp_path, "ids", count=2)
    bad = tmp_path / "masks" / "s01.png"
    Image.open(bad).save(bad, format="JPEG", quality=95)
    assert kinds(examine(tmp_path, num_classes=19))["lossy_label"].files == [str(bad)]


def test_sixteen_bit_masks_are_found_and_read_back_to_8_bit(tmp_path):
    truth = write_set(tmp_path, "sixteen_bit", count=3)
    d = examine(tmp_path)
    f = kinds(d)["sixteen_bit"]
    assert len(f.files) == 3 and "8-bit values times 257" in f.detail and f.fixed_by_convert
    assert d.class_pixels.tolist() == true_pixels(truth, 19).tolist()


def test_sixteen_bit_values_above_255_are_out_of_range(tmp_path):
    write_set(tmp_path, "ids", count=2)
    wide = np.full((48, 96), 1000, np.uint16)
    wide[:, :10] = 0
    Image.fromarray(wide).save(tmp_path / "masks" / "s00.png")
    found = kinds(examine(tmp_path))
    assert "values above 255" in found["sixteen_bit"].detail
    assert "1000 (4,128 px)" in found["out_of_range"].detail


@pytest.mark.parametrize("encoding, note", [("colour", "RGB colour"), ("grey_rgb", "grey values stored in 3 equal"),
                                            ("alpha_mask", "mask read from the alpha channel")])
def test_multi_channel_says_what_the_channels_hold(tmp_path, encoding, note):
    write_set(tmp_path, encoding, count=2)
    f = kinds(examine(tmp_path))["multi_channel"]
    assert len(f.files) == 2 and note in f.detail


def test_binary_0_255_in_a_two_class_set_but_not_background_only_masks_of_a_larger_set(tmp_path):
    write_set(tmp_path / "a", "binary", count=3)
    d = examine(tmp_path / "a")
    assert d.encoding == "binary_0_255" and kinds(d)["binary_0_255"].files[0].endswith("s00.png")
    write_set(tmp_path / "b", "ids", count=3)  # a set of 19 classes with one background + ignore mask
    Image.fromarray(np.where(np.arange(96) < 10, 255, 0).astype(np.uint8)[None].repeat(48, 0)).save(
        tmp_path / "b" / "masks" / "s01.png")
    d = examine(tmp_path / "b")
    assert "binary_0_255" not in kinds(d) and d.encoding == "ids"


def test_a_mixed_set_flags_only_its_0_255_masks(tmp_path):
    truth = write_set(tmp_path, "binary", count=3)
    ones = truth["s02"]
    Image.fromarray(ones).save(tmp_path / "masks" / "s02.png")  # saved right: 0/1
    d = examine(tmp_path)
    assert d.encoding == "mixed" and d.num_classes == 2
    assert kinds(d)["binary_0_255"].files == [str(tmp_path / "masks" / f"s0{i}.png") for i in (0, 1)]


def test_rgb_colours_match_the_cityscapes_palette(tmp_path):
    truth = write_set(tmp_path, "colour", count=3)
    d = examine(tmp_path)
    f = kinds(d)["rgb_colours"]
    assert "match the Cityscapes palette (19 classes)" in f.detail and f.fixed_by_convert
    assert d.class_names[13] == "car" and d.class_pixels.tolist() == true_pixels(truth, 19).tolist()


def test_rgb_colours_of_an_unknown_palette_name_the_colours_and_a_palette_file_maps_them(tmp_path):
    write_set(tmp_path, "binary", count=3)
    for p in (tmp_path / "masks").iterdir():
        grey = np.asarray(Image.open(p))
        rgb = np.where(grey[..., None] == 255, np.array([10, 200, 30], np.uint8), np.array([40, 40, 90], np.uint8))
        Image.fromarray(rgb).save(p)
    f = kinds(examine(tmp_path))["rgb_colours"]
    assert "match no known palette" in f.detail and "#0ac81e" in f.detail and not f.fixed_by_convert
    palette = tmp_path / "palette.txt"
    palette.write_text("# my classes\n40 40 90 background\n#0ac81e plant\n")
    d = examine(tmp_path, palette=str(palette))
    assert d.class_names == ["background", "plant"] and "palette file" in kinds(d)["rgb_colours"].detail
    assert len(d.convertible) == 3


def test_palette_pngs_saved_with_another_palette_order_are_read_by_colour(tmp_path):
    truth = write_set(tmp_path, "colour", count=2)
    for stem, ids in truth.items():  # an adaptive palette: index i holds the colour of class 18 - i
        from paddleseg.utils.visualize import get_palette

        colours = get_palette(19)
        shuffled = np.zeros((256, 3), np.uint8)
        shuffled[:19] = colours[18::-1]
        im = Image.fromarray(np.where(ids == 255, 255, 18 - ids.astype(np.int64)).astype(np.uint8), mode="P")
        im.putpalette(shuffled.ravel().tolist())
        im.save(tmp_path / "masks" / f"{stem}.png")
    d = examine(tmp_path)
    assert kinds(d)["palette_mismatch"].fixed_by_convert
    assert d.class_pixels.tolist() == true_pixels(truth, 19).tolist()


def test_empty_class_lists_the_ids_without_pixels(tmp_path):
    write_set(tmp_path, "ids", count=2)
    f = kinds(examine(tmp_path, num_classes=21))["empty_class"]
    assert f.severity == "warning" and "2 of 21 class ids have no pixel: 19, 20" in f.detail
    assert f.files == [str(tmp_path / "masks")]


def test_duplicate_image_by_pixels_whatever_the_name(tmp_path):
    write_set(tmp_path, "ids", count=3)
    img = np.asarray(Image.open(tmp_path / "images" / "s00.jpg"))
    Image.fromarray(img).save(tmp_path / "images" / "z_copy.png")  # the same pixels, another name and format
    shutil.copy(tmp_path / "masks" / "s00.png", tmp_path / "masks" / "z_copy.png")
    f = kinds(examine(tmp_path))["duplicate_image"]
    assert f.files == [str(tmp_path / "images" / "s00.jpg"), str(tmp_path / "images" / "z_copy.png")]
    assert f.severity == "warning"


def test_every_finding_lists_files_and_errors_exit_2_with_one_line(tmp_path):
    write_set(tmp_path, "binary", count=3)
    with pytest.raises(DatasetError, match=r"binary_0_255 \(3 file\(s\), e.g. .*s00.png\); --convert OUT_DIR fixes"):
        run_checkup(CheckupRequest(images=str(tmp_path / "images"), labels=str(tmp_path / "masks"), workers=1,
                                   progress=False), out=open("/dev/null", "w"))


def test_the_tool_writes_the_json_report_and_exits_2(tmp_path):
    truth = write_set(tmp_path, "binary", count=4)
    (tmp_path / "images" / "s03.jpg").unlink()
    report = tmp_path / "report.json"
    done = tool("--images", tmp_path / "images", "--labels", tmp_path / "masks", "--json", report, "--workers", "2")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "binary_0_255" in errors[0] and "Traceback" not in done.stderr
    data = json.loads(report.read_text())
    assert set(data) >= {"pairs", "encoding", "num_classes", "ignore_index", "class_pixels", "class_weights",
                         "findings"}
    assert (data["pairs"], data["encoding"], data["num_classes"], data["ignore_index"]) == (3, "binary_0_255", 2, 255)
    expected = sum(np.bincount(truth[s].ravel(), minlength=2) for s in ("s00", "s01", "s02"))
    assert data["class_pixels"] == expected.tolist()
    p = expected / expected.sum()
    assert np.allclose(data["class_weights"]["espnet"], 1 / np.log(1.10 + p), atol=1e-5)
    assert len(data["class_weights"]["median_frequency"]) == 2
    by_kind = {f["kind"]: f for f in data["findings"]}
    assert by_kind["missing_image"]["files"] == [str(tmp_path / "masks" / "s03.png")]
    assert by_kind["binary_0_255"]["count"] == 3 and by_kind["binary_0_255"]["detail"]
    assert "| binary_0_255 |" in done.stdout


@pytest.mark.slow
def test_the_tool_exits_0_on_a_clean_set(tmp_path):
    write_set(tmp_path, "ids", count=2)
    done = tool("--images", tmp_path / "images", "--labels", tmp_path / "masks")
    assert done.returncode == 0, done.stderr
    assert "no findings" in done.stdout and "error:" not in done.stderr


def test_scan_keeps_the_image_hash_and_label_histogram(tmp_path):
    img, ids = next(scenes(1))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(img).save(tmp_path / "images" / "a.png")
    Image.fromarray(ids).save(tmp_path / "masks" / "a.png")
    scan = scan_pairs([(str(tmp_path / "images" / "a.png"), str(tmp_path / "masks" / "a.png"))], 1, False)[0]
    assert scan.image_size == scan.label_size == (48, 96) and scan.kind == "grey"
    assert dict(zip(scan.keys.tolist(), scan.counts.tolist())) == {
        int(v): int(c) for v, c in zip(*np.unique(ids, return_counts=True))}
    assert int((ids == FOREGROUND).sum()) == int(scan.counts[scan.keys.tolist().index(FOREGROUND)])


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_masks_are_lossy_only_when_their_chunk_is(tmp_path, lossless):
    """Lossless WebP (a VP8L chunk) keeps every colour; lossy WebP (VP8) does not."""
    write_set(tmp_path, "colour", count=2)
    for png in sorted((tmp_path / "masks").glob("*.png")):
        Image.open(png).save(png.with_suffix(".webp"), lossless=lossless, quality=80)
        png.unlink()
    found = kinds(examine(tmp_path))
    webps = [str(tmp_path / "masks" / f"s0{i}.webp") for i in range(2)]
    assert found["rgb_colours"].files == webps
    if lossless:
        assert "lossy_label" not in found
    else:
        assert found["lossy_label"].files == webps and "lossy WebP" in found["lossy_label"].detail


def test_ids_saved_times_a_step_are_scaled_ids_unless_num_classes_says_they_are_ids(tmp_path):
    write_set(tmp_path, "scaled_ids", count=4)
    d = examine(tmp_path)
    f = kinds(d)["scaled_ids"]
    assert d.num_classes == 19 and d.encoding == "ids" and f.fixed_by_convert and f.severity == "error"
    assert len(f.files) == 4 and "multiples of 10 (0, 10, 20," in f.detail and "divides them by 10" in f.detail
    as_ids = examine(tmp_path, num_classes=181)  # the user says the values are the ids
    assert "scaled_ids" not in kinds(as_ids) and as_ids.num_classes == 181
    as_19 = examine(tmp_path, num_classes=19)  # in range only after dividing: scaled
    assert "scaled_ids" in kinds(as_19) and "out_of_range" not in kinds(as_19)
    two = examine_fresh(tmp_path / "two", "scaled_binary")
    assert two.num_classes == 2 and "multiples of 128" in kinds(two)["scaled_ids"].detail


def examine_fresh(root, encoding):
    write_set(root, encoding, count=3)
    return examine(root)


def test_real_ids_that_share_no_step_are_not_scaled(tmp_path):
    write_set(tmp_path, "ids", count=3)
    for png in (tmp_path / "masks").glob("*.png"):
        ids = np.asarray(Image.open(png))
        Image.fromarray(np.where(ids == 255, 255, ids * 2 + 1).astype(np.uint8)).save(png)  # odd values: gcd 1
    assert "scaled_ids" not in kinds(examine(tmp_path))
