"""paddleseg.core.report and ``val.py --report``: a self-contained page whose numbers are the
evaluation's, the N worst images in order, a folder replaced whole and only when it is a report."""
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import paddle
import pytest

import paddleseg  # noqa: F401
from paddleseg.checkpoint import load_entire_model
from paddleseg.core.report import WorstImages, check_report_dir, write_report
from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.core.val import evaluate
from paddleseg.cvlibs import Config
from paddleseg.errors import UserError
from paddleseg.models import ESPNetV2
from paddleseg.utils.cityscapes_labels import CITYSCAPES_CLASSES
from paddleseg.utils.metrics import ConfusionMatrix

from conftest import REPO, write_train_config


class Page(HTMLParser):
    """What a test needs from index.html: referenced files, table cells (exact values) per table id,
    gallery entries, and anything that would reach the network."""

    def __init__(self, text: str):
        super().__init__()
        self.references, self.external, self.tables, self.gallery_mious = [], [], {}, []
        self._table, self._row = None, None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.references.append(attrs[key])
        if tag in ("script", "link", "iframe", "object", "embed") or "url(" in attrs.get("style", ""):
            self.external.append(tag)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag == "td" and self._row is not None:
            self._row.append(attrs.get("data-value"))
        elif tag == "span" and attrs.get("class") == "miou":
            self.gallery_mious.append(float(attrs["data-value"]))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table, self._row = None, None


def exact(value):
    return None if value == "" else float(value)


def nan_to_none(values):
    return [None if v != v else float(v) for v in values]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_cityscapes):
    tmp = tmp_path_factory.mktemp("report")
    paddle.seed(1)
    model = ESPNetV2(num_classes=19, scale=0.5)
    paddle.save(model.state_dict(), str(tmp / "model.pdparams"))
    return write_train_config(tmp / "cfg.yml", tiny_cityscapes), tmp / "model.pdparams"


def per_image_mious(config, weights):
    """Each val image scored alone, computed here without the report's code: [(mIoU, path)]."""
    cfg = Config(config)
    model = cfg.model
    load_entire_model(model, weights)
    model.eval()
    dataset = cfg.val_dataset
    scores = []
    with paddle.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            logits = model(paddle.to_tensor(sample["img"][None]))[0]
            matrix = ConfusionMatrix(19)
            matrix.update(paddle.argmax(logits, axis=1).numpy()[0], sample["label"])
            scores.append((matrix.miou(), sample["img_path"]))
    return sorted(scores)


def run_val(config, weights, *extra):
    return subprocess.run([sys.executable, str(REPO / "val.py"), "--config", str(config), "--model_path", str(weights),
                           *map(str, extra)], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_worst_images_keeps_the_lowest_in_order_and_copies_only_those():
    worst = WorstImages(3)
    rng = np.random.default_rng(0)
    correct = rng.permutation(10) * 10  # of 100 pixels of class 0, in random order; the rest predicted as 1
    offered, mious = [], []
    for i, tp in enumerate(correct):
        counts = np.array([[tp, 100 - tp], [0, 0]])
        mious.append(ConfusionMatrix.from_matrix(counts).miou())  # grows with tp
        label, pred = np.zeros((2, 3), np.int64), np.full((2, 3), i, np.int64)
        worst.offer(f"img{i}.png", counts, pred, label)
        offered.append(pred)
    worst.offer("ignored_only.png", np.zeros((2, 2), np.int64), pred, label)  # no counted pixel: not ranked
    kept = worst.sorted()
    lowest = np.argsort(mious)[:3]
    assert [image.miou for image in kept] == [mious[i] for i in lowest]
    assert [image.path for image in kept] == [f"img{i}.png" for i in lowest]
    for image in kept:
        assert image.pred.dtype == np.uint8 and image.label.dtype == np.uint8
        index = int(image.path[3:-4])
        offered[index][:] = 99  # the kept copy is the report's own
        assert (image.pred == index).all()
    assert len(worst.images) == 3


@pytest.mark.slow
def test_val_report_is_a_self_contained_page_of_the_evaluations_numbers(tmp_path, checkpoint):
    config, weights = checkpoint
    done = run_val(config, weights, "--report", tmp_path / "report", "--report_images", 2, "--json",
                   tmp_path / "scores.json")
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "report"
    assert f"report: {folder / 'index.html'}" in done.stdout
    page = Page((folder / "index.html").read_text(encoding="utf-8"))
    assert not page.external and page.references
    for ref in page.references:
        assert not ref.startswith(("http:", "https:", "//", "/", "data:", "file:")), ref
        assert (folder / ref).is_file(), ref
    assert {"confusion_matrix.png", "class_iou.png"} <= set(page.references)

    cfg = Config(config)
    model = cfg.model
    load_entire_model(model, weights)
    expected = evaluate(model, cfg.val_dataset, progress=False)
    summary = page.tables["summary"][1]
    assert [exact(v) for v in summary[:4]] == [expected.miou(), expected.pixel_accuracy(), expected.kappa(),
                                               expected.mean_dice()]
    rows = page.tables["classes"][1:]  # after the heading row
    assert len(rows) == 19 + 1
    for column, values in enumerate((expected.iou(), expected.class_precision(), expected.class_recall())):
        assert [exact(row[column + 1]) for row in rows[:19]] == nan_to_none(values)
    assert [int(row[4]) for row in rows[:19]] == expected.ground_truth_pixels.tolist()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == expected.matrix.tolist()
    assert [c["name"] for c in metrics["classes"]] == list(CITYSCAPES_CLASSES)

    worst_two = per_image_mious(config, weights)[:2]
    assert [g["image"] for g in metrics["gallery"]] == [path for _, path in worst_two]
    assert page.gallery_mious == pytest.approx([score for score, _ in worst_two], abs=1e-12)
    assert sorted(p.name for p in (folder / "gallery").iterdir()) == [Path(g["picture"]).name
                                                                      for g in metrics["gallery"]]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "folder with other files"])
def test_a_report_dir_that_is_not_a_report_is_refused_before_evaluating(tmp_path, checkpoint, kind):
    config, _ = checkpoint
    target = tmp_path / "report"
    if kind == "file":
        target.write_text("keep me")
    else:
        target.mkdir()
        (target / "index.html").write_text("an earlier report's page")
        (target / "notes.txt").write_text("keep me")
    before = sorted((p.name, p.read_bytes()) for p in ([target] if target.is_file() else target.iterdir()))
    # the checkpoint does not exist: the report folder must be refused before anything is loaded
    done = run_val(config, tmp_path / "missing.pdparams", "--report", target)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"--report {target}" in errors[0] and "Traceback" not in done.stderr
    assert ("is a file" if kind == "file" else "holds index.html, notes.txt but is not an earlier report") in errors[0]
    assert sorted((p.name, p.read_bytes()) for p in ([target] if target.is_file() else target.iterdir())) == before


def test_a_new_report_replaces_an_earlier_one_whole(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (16, 24))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), rng.integers(0, 255, (16, 24, 3), dtype=np.uint8))
    matrix = ConfusionMatrix(3)
    worst = WorstImages(1)
    for seed in (1, 2):
        pred = np.random.default_rng(seed).integers(0, 3, (16, 24))
        worst.offer(str(image), matrix.update(pred, label), pred, label)
    write_report(tmp_path / "report", matrix, worst, ["a", "b", "c"])
    first = sorted(p.name for p in (tmp_path / "report" / "gallery").iterdir())
    (tmp_path / "report" / "gallery" / "99_stale.png").write_bytes(b"")  # as an earlier report with more images
    check_report_dir(tmp_path / "report")  # an earlier report may be replaced
    write_report(tmp_path / "report", matrix, WorstImages(0), ["a", "b", "c"])
    assert len(first) == 1 and not list((tmp_path / "report" / "gallery").iterdir())  # nothing stale lingers
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        ".paddleseg-output", "class_iou.png", "confusion_matrix.png", "gallery", "index.html", "metrics.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folder left behind
    (tmp_path / "report" / "mine.txt").write_text("x")
    with pytest.raises(UserError, match="holds mine.txt"):
        write_report(tmp_path / "report", matrix, None, ["a", "b", "c"])
    assert (tmp_path / "report" / "mine.txt").read_text() == "x"


@pytest.mark.slow
def test_training_writes_the_report_of_its_last_evaluation(tmp_path, tiny_cityscapes):
    cfg = Config(write_train_config(tmp_path / "cfg.yml", tiny_cityscapes))
    train(cfg, TrainOptions(save_dir=tmp_path / "run", do_eval=True, save_interval=3, log_iters=3))
    metrics = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())
    model = Config(tmp_path / "cfg.yml").model
    load_entire_model(model, tmp_path / "run" / "iter_6")
    expected = evaluate(model, cfg.val_dataset, progress=False)
    assert metrics["miou"] == expected.miou() and metrics["confusion_matrix"] == expected.matrix.tolist()
    assert 1 <= len(metrics["gallery"]) <= 4 and "iteration: 6" in (tmp_path / "run" / "report" / "index.html").read_text()
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"report of iteration 6: {tmp_path / 'run' / 'report' / 'index.html'}" in log


def test_training_refuses_a_report_folder_of_other_files_before_writing(tmp_path, tiny_cityscapes):
    cfg = Config(write_train_config(tmp_path / "cfg.yml", tiny_cityscapes))
    (tmp_path / "run" / "report").mkdir(parents=True)
    (tmp_path / "run" / "report" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="the report folder .*holds notes.txt"):
        train(cfg, TrainOptions(save_dir=tmp_path / "run", do_eval=True, save_interval=3))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report"]


@pytest.mark.slow
def test_the_report_renders_in_a_headless_browser(tmp_path, checkpoint):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium) to render the report")
    config, weights = checkpoint
    assert run_val(config, weights, "--report", tmp_path / "report").returncode == 0
    shot = tmp_path / "shot.png"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1200,2400", (tmp_path / "report" / "index.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    import cv2

    picture = cv2.imread(str(shot))
    assert picture.shape[:2] == (2400, 1200)
    colours = len(np.unique(picture.reshape(-1, 3), axis=0))
    assert colours > 1000, f"the screenshot has {colours} colours: the page (or its images) did not render"
    assert (picture < 128).any(axis=2).mean() > 0.02  # text and pictures, not an empty white page


@pytest.mark.slow
def test_a_two_rank_evaluation_reports_the_worst_images_of_both_shards(tmp_path, checkpoint):
    config, weights = checkpoint
    done = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                           str(tmp_path / "log"), str(REPO / "val.py"), "--config", str(config), "--model_path",
                           str(weights), "--report", str(tmp_path / "report"), "--report_images", "3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    worst_three = per_image_mious(config, weights)[:3]  # the 4 images are split 2 + 2 between the ranks
    assert [g["image"] for g in metrics["gallery"]] == [path for _, path in worst_three]


def test_a_folder_that_only_looks_like_a_report_is_not_replaced(tmp_path):
    """A hand-written index.html (and metrics.json) is the user's: only a folder holding the marker that
    every report writes is an earlier report."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text("<h1>my page</h1>")
    (folder / "metrics.json").write_text("{}")
    matrix = ConfusionMatrix(2)
    matrix.update(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(UserError, match="is not an earlier report of this project"):
        write_report(folder, matrix, None, ["a", "b"])
    assert (folder / "index.html").read_text() == "<h1>my page</h1>"
    write_report(tmp_path / "real", matrix, None, ["a", "b"])
    write_report(tmp_path / "real", matrix, None, ["a", "b"])  # an earlier report is replaced
