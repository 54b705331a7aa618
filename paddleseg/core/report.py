"""The evaluation report users look at: ``DIR/index.html`` with the scores, the charts and the worst images.

    worst = WorstImages(8)
    matrix = evaluate(model, dataset, worst=worst)              # paddleseg.core.val
    write_report("output/report", matrix, worst, class_names)

``DIR`` holds only what :func:`write_report` writes, and opens without a network (no scripts, no fonts,
no links out; the pictures sit beside the page):

    index.html             summary, per-class table (IoU, precision, recall), the charts, the gallery
    metrics.json           the same numbers, machine-readable (an undefined value is null)
    confusion_matrix.png   the confusion matrix, each ground-truth row normalised, with class names
    class_iou.png          IoU per class
    gallery/NN_<name>.png  the N images with the lowest per-image mIoU, worst first:
                           image | ground truth | prediction | errors

The report replaces ``DIR`` whole (:func:`paddleseg.utils.atomic.atomic_folder`): it is built in a hidden
folder beside ``DIR`` and swapped in, so an interrupted or failed report leaves the previous one as it
was, and pictures of an earlier report never linger beside a new page. Because the swap deletes what
``DIR`` held, :func:`check_report_dir` refuses a ``DIR`` that is a file or a folder holding anything a
report does not write: before evaluating, and again just before the swap.

A per-image mIoU is the mean IoU of that image alone over the classes present in its ground truth or
its prediction; an image whose pixels are all ignored has none and is not ranked.
"""
import html
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

from paddleseg.errors import UserError
from paddleseg.transforms.io import read_image
from paddleseg.utils import charts
from paddleseg.utils.atomic import atomic_folder
from paddleseg.utils.metrics import ConfusionMatrix, _nanmean
from paddleseg.utils.output_targets import check_replaceable_folder, write_marker
from paddleseg.utils.visualize import get_palette, save_rgb

PathLike = Union[str, Path]
INDEX, METRICS, CONFUSION, CLASS_IOU, GALLERY = ("index.html", "metrics.json", "confusion_matrix.png",
                                                 "class_iou.png", "gallery")
REPORT_FILES = (INDEX, METRICS, CONFUSION, CLASS_IOU)
REPORT_KIND = "report"  # its marker: a folder holding it is an earlier report, which a new one replaces
GALLERY_IMAGES = 8  # worst images shown by default
PANEL_WIDTH = 400  # pixels per gallery panel
PANEL_TITLES = ("image", "ground truth", "prediction", "errors (red)")


# ------------------------------------------------------------------------------------------------
# the worst images, kept while evaluating
# ------------------------------------------------------------------------------------------------
@dataclass
class ScoredImage:
    """One evaluated image: its per-image mIoU, its path, ground truth and prediction ((H, W) uint8)."""

    miou: float
    path: str
    label: np.ndarray
    pred: np.ndarray

    @property
    def key(self):
        return self.miou, self.path  # lowest mIoU first; ties in path order


class WorstImages:
    """The ``count`` images with the lowest per-image mIoU, kept while an evaluation runs.

    :meth:`offer` is given every image's counts, prediction and label, and keeps copies of at most
    ``count`` of them: memory stays that of ``count`` label maps, however large the set."""

    def __init__(self, count: int = GALLERY_IMAGES):
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.count = count
        self.images: List[ScoredImage] = []

    def offer(self, path: str, counts: np.ndarray, pred: np.ndarray, label: np.ndarray) -> None:
        """Consider one image: ``counts`` is its own (C, C) confusion matrix, ``pred`` and ``label`` its
        (H, W) class maps (copied only when the image is kept)."""
        miou = ConfusionMatrix.from_matrix(counts).miou()
        if miou != miou or self.count == 0:  # NaN: no counted pixel
            return
        self._keep(ScoredImage(miou, str(path), label, pred))

    def _keep(self, image: ScoredImage) -> None:
        if len(self.images) >= self.count:
            best = max(range(len(self.images)), key=lambda i: self.images[i].key)
            if image.key >= self.images[best].key:
                return
            del self.images[best]
        image.label, image.pred = _as_uint8(image.label), _as_uint8(image.pred)
        self.images.append(image)

    def merge(self, other: "WorstImages") -> "WorstImages":
        """Keep the worst of both (e.g. the shards of several ranks); returns self."""
        for image in other.images:
            self._keep(image)
        return self

    def gather_ranks(self) -> None:
        """In a multi-process evaluation, collect every rank's worst images into this one, on every rank."""
        import paddle.distributed as dist

        everyone: List[WorstImages] = []
        dist.all_gather_object(everyone, self)
        self.images = []
        for other in everyone:
            self.merge(other)

    def sorted(self) -> List[ScoredImage]:
        """The kept images, worst first."""
        return sorted(self.images, key=lambda image: image.key)


def _as_uint8(values: np.ndarray) -> np.ndarray:
    """A uint8 copy: class ids (< 255, datasets allow at most 255 classes) and the ignore index fit."""
    return np.array(values, dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# the folder
# ------------------------------------------------------------------------------------------------
def _is_report_entry(path: Path) -> bool:
    if path.is_symlink():
        return False
    if path.name in REPORT_FILES:
        return path.is_file()
    if path.name == GALLERY and path.is_dir():
        return all(p.is_file() and not p.is_symlink() and p.suffix == ".png" for p in path.iterdir())
    return False


def check_report_dir(folder: PathLike, name: str = "--report") -> None:
    """UserError unless ``folder`` (``name`` says where it came from) may be replaced by a report:
    new, an empty folder or an earlier report (it holds the marker every report writes,
    :mod:`paddleseg.utils.output_targets`) and only what a report writes, in a place where a folder can
    be made. Reads only."""
    check_replaceable_folder(folder, name, REPORT_KIND, own_entry=_is_report_entry)


def write_report(folder: PathLike, matrix: ConfusionMatrix, worst: Optional[WorstImages] = None,
                 class_names: Optional[Sequence[str]] = None, *, palette: Optional[np.ndarray] = None,
                 details: Optional[Dict[str, str]] = None, name: str = "--report") -> Path:
    """Write the report of ``matrix`` (and the gallery of ``worst``) to ``folder``, replacing it whole
    (module docstring). ``details`` are shown as "key: value" lines under the title (model, config,
    iteration). Returns the path of ``index.html``. UserError for a folder that may not be replaced or
    cannot be written; the previous report is then unchanged."""
    check_report_dir(folder, name)
    names = list(class_names) if class_names is not None else [str(i) for i in range(matrix.num_classes)]
    if len(names) != matrix.num_classes:
        raise ValueError(f"{len(names)} class names for {matrix.num_classes} classes")
    palette = get_palette(matrix.num_classes) if palette is None else palette
    try:
        with atomic_folder(folder) as tmp:
            _write_contents(tmp, matrix, worst, names, palette, details or {})
            write_marker(tmp, REPORT_KIND)
            check_report_dir(folder, name)  # nothing was added meanwhile that the swap would delete
    except OSError as e:
        raise UserError(f"{name} {folder}: the report could not be written ({e.strerror or e}); the previous "
                        f"one, if any, is unchanged") from e
    return Path(folder) / INDEX


def _write_contents(tmp: Path, matrix: ConfusionMatrix, worst: Optional[WorstImages], names: List[str],
                    palette: np.ndarray, details: Dict[str, str]) -> None:
    save_rgb(charts.confusion_heatmap(matrix.matrix, names), tmp / CONFUSION)
    save_rgb(charts.class_iou_bars(matrix.iou(), names, palette), tmp / CLASS_IOU)
    gallery = []
    if worst is not None:
        (tmp / GALLERY).mkdir()
        for rank, image in enumerate(worst.sorted(), 1):
            picture = f"{GALLERY}/{rank:02d}_{_safe_name(image.path)}.png"
            save_rgb(gallery_picture(image, palette, matrix.ignore_index), tmp / picture)
            gallery.append({"rank": rank, "image": shown_path(image.path), "miou": image.miou, "picture": picture})
    metrics = report_metrics(matrix, names, gallery)
    # backslashreplace: any other text from a file name (a config path in details) cannot stop the report
    (tmp / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8", errors="backslashreplace")
    (tmp / INDEX).write_text(render_html(metrics, details), encoding="utf-8", errors="backslashreplace")


def shown_path(path: str) -> str:
    """``path`` as text that encodes as UTF-8: bytes of the file name that are not UTF-8 (which Python
    holds as lone surrogates) are shown as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _safe_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:80] or "image"


def _number(value: float) -> Optional[float]:
    return None if value != value else float(value)


def report_metrics(matrix: ConfusionMatrix, names: List[str], gallery: List[Dict]) -> Dict:
    """Everything the page shows, as plain numbers (None where undefined)."""
    iou, precision, recall = matrix.iou(), matrix.class_precision(), matrix.class_recall()
    pixels = matrix.ground_truth_pixels
    classes = [{"name": n, "iou": _number(iou[i]), "precision": _number(precision[i]),
                "recall": _number(recall[i]), "pixels": int(pixels[i])} for i, n in enumerate(names)]
    means = {key: _number(_nanmean(column)) for key, column in
             (("iou", iou), ("precision", precision), ("recall", recall))}
    return {"miou": _number(matrix.miou()), "acc": _number(matrix.pixel_accuracy()), "kappa": _number(matrix.kappa()),
            "dice": _number(matrix.mean_dice()), "pixels": int(matrix.matrix.sum()), "classes": classes,
            "mean": means, "confusion_matrix": matrix.matrix.tolist(), "gallery": gallery}


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def gallery_picture(image: ScoredImage, palette: np.ndarray, ignore_index: int = 255,
                    width: int = PANEL_WIDTH) -> np.ndarray:
    """image | ground truth | prediction | errors side by side (RGB uint8), each panel ``width`` pixels
    wide, under a strip naming the panels. Errors: wrong pixels red on the dimmed photo, ignored ones
    black. The photo is read again from its file (the evaluated tensor is normalised)."""

    label, pred = image.label, image.pred
    height = label.shape[0]
    photo = read_image(image.path)
    if photo.shape[:2] != label.shape:  # the val transforms resized it
        photo = cv2.resize(photo, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_AREA)
    ignored = label == ignore_index
    errors = (np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) * 0.4).astype(np.uint8)
    errors[(pred != label) & ~ignored] = (255, 0, 0)
    errors[ignored] = 0
    panels = [photo, palette[label], palette[pred], errors]
    scale = width / label.shape[1]
    size = (width, max(1, round(height * scale)))
    panels = [cv2.resize(p, size, interpolation=cv2.INTER_AREA if i == 0 else cv2.INTER_NEAREST)
              for i, p in enumerate(panels)]
    gap = np.full((size[1], 4, 3), 255, dtype=np.uint8)
    row = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
    strip = np.full((22, row.shape[1], 3), 255, dtype=np.uint8)
    for i, title in enumerate(PANEL_TITLES):
        cv2.putText(strip, title, (i * (width + 4) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([strip, row], axis=0)


# ------------------------------------------------------------------------------------------------
# the page
# ------------------------------------------------------------------------------------------------
_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1700px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .details { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr.mean td { font-weight: bold; }
.na { color: #999; } .charts { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
img { max-width: 100%; height: auto; } figure { margin: 0 0 1.5em; } figcaption { color: #444; }
"""


def _cell(value: Optional[float], digits: int = 4) -> str:
    """A table cell showing ``value`` rounded, carrying the exact value in ``data-value``."""
    if value is None:
        return '<td class="na" data-value="">n/a</td>'
    return f'<td data-value="{value!r}">{value:.{digits}f}</td>'


def render_html(metrics: Dict, details: Dict[str, str]) -> str:
    """The page of :func:`report_metrics`' numbers; pictures are referenced relative to it."""
    e = html.escape
    lines = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Evaluation report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Evaluation report</h1>"]
    shown = {**details, "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    lines.append('<p class="details">' + "<br>".join(f"{e(k)}: {e(str(v))}" for k, v in shown.items()) + "</p>")
    lines += ['<table id="summary"><tr><th>mIoU</th><th>Accuracy</th><th>Kappa</th><th>Dice</th>'
              '<th>pixels scored</th></tr><tr>',
              "".join(_cell(metrics[k]) for k in ("miou", "acc", "kappa", "dice")) +
              f'<td data-value="{metrics["pixels"]}">{metrics["pixels"]:,}</td></tr></table>']
    lines += ["<h2>Per class</h2>", '<table id="classes"><tr><th>Class</th><th>IoU</th><th>Precision</th>'
              "<th>Recall</th><th>ground-truth pixels</th></tr>"]
    for c in metrics["classes"]:
        lines.append(f"<tr><td>{e(c['name'])}</td>" + "".join(_cell(c[k]) for k in ("iou", "precision", "recall"))
                     + f'<td data-value="{c["pixels"]}">{c["pixels"]:,}</td></tr>')
    mean = metrics["mean"]
    lines.append('<tr class="mean"><td>mean</td>' + "".join(_cell(mean[k]) for k in ("iou", "precision", "recall"))
                 + "<td></td></tr></table>")
    lines += ['<div class="charts">',
              f'<figure><img src="{CONFUSION}" alt="confusion matrix"><figcaption>Confusion matrix: each row '
              f"is a ground-truth class, split into what it was predicted as (percent; grey: the class is not in "
              f"the ground truth).</figcaption></figure>",
              f'<figure><img src="{CLASS_IOU}" alt="IoU per class"><figcaption>IoU per class; the dashed line is '
              f"the mIoU.</figcaption></figure>", "</div>"]
    gallery = metrics["gallery"]
    if gallery:
        lines.append(f'<h2>The {len(gallery)} images with the lowest mIoU</h2><div id="gallery">')
        for g in gallery:
            lines.append(f'<figure><img src="{e(g["picture"])}" alt="{e(g["image"])}"><figcaption>'
                         f'{g["rank"]}. mIoU <span class="miou" data-value="{g["miou"]!r}">{g["miou"]:.4f}</span>: '
                         f'{e(g["image"])}</figcaption></figure>')
        lines.append("</div>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"
