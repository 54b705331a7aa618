"""The data-set report users look at: ``DIR/index.html``, one self-contained page (pictures embedded as
base64, no scripts, fonts or links out; it opens without a network).

    write_report("output/data_report", diagnosis, {"images": "data/img", "labels": "data/masks"})

It shows the summary (pairs, encoding, classes), the findings with the files they name, a table and a
histogram (log scale) of the pixels per class with both kinds of class weights, and a gallery of
image | mask as stored | class ids over the image, for a sample of the pairs and for every flagged file
(up to :data:`MAX_FLAGGED`). Every file name is escaped. ``DIR`` is replaced whole, through a hidden
work folder (:func:`paddleseg.utils.atomic.atomic_folder`), and must be new, empty or an earlier report.
"""
import base64
import html
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from paddleseg.datasets.doctor.diagnosis import ERROR, Diagnosis
from paddleseg.datasets.doctor.encodings import RawLabel, read_raw_label
from paddleseg.datasets.doctor.palettes import Palette
from paddleseg.errors import DatasetError, UserError
from paddleseg.transforms.io import read_image
from paddleseg.utils import charts
from paddleseg.utils.atomic import atomic_folder
from paddleseg.utils.output_targets import check_replaceable_folder, write_marker
from paddleseg.utils.visualize import get_palette, overlay

PathLike = Union[str, Path]
INDEX = "index.html"
REPORT_KIND = "data report"  # the marker of its folder (paddleseg/utils/output_targets.py)
SAMPLE = 8           # pairs shown whatever the findings
MAX_FLAGGED = 60     # flagged pairs shown at most (the findings list every file)
PANEL_WIDTH = 320
PANEL_TITLES = ("image", "mask as stored", "class ids over the image")

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .details { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
td.num { text-align: right; } .error { color: #b00020; font-weight: bold; } .warning { color: #a66300; }
.files { font-family: monospace; font-size: 90%; word-break: break-all; }
img { max-width: 100%; height: auto; } figure { margin: 0 0 1.5em; } figcaption { color: #444; word-break: break-all; }
"""


# ------------------------------------------------------------------------------------------------
# the folder
# ------------------------------------------------------------------------------------------------
def _is_report_entry(path: Path) -> bool:
    return path.name == INDEX and path.is_file() and not path.is_symlink()


def check_report_folder(folder: PathLike, flag: str = "--report") -> None:
    """UserError unless ``folder`` may be replaced by a report: new, empty, or an earlier data report
    (its marker and ``index.html``), in a writable place. Reads only."""
    check_replaceable_folder(folder, flag, REPORT_KIND, own_entry=_is_report_entry)


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def display_palette(num_classes: int, palette: Optional[Palette]) -> np.ndarray:
    """(256, 3) colours per class id: the data set's own palette where known, the project's otherwise."""
    colours = get_palette(max(num_classes, 1))
    if palette is not None:
        for i in range(min(num_classes, 255)):
            c = palette.colour_of(i)
            if c is not None:
                colours[i] = c
    return colours


def stored_picture(raw: RawLabel, colours: np.ndarray) -> np.ndarray:
    """An RGB picture of a label as it is stored: its colours, its palette's colours, 0/255 grey as grey,
    other grey values as class colours, 16-bit values stretched to grey."""
    v = raw.values
    if raw.kind == "colour":
        return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8)
    if raw.kind == "palette":
        return raw.palette[v]
    if raw.bits > 8:
        top = max(int(v.max(initial=0)), 1)
        grey = (v.astype(np.float64) * 255 / top).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    present = np.unique(v)
    if set(present.tolist()) <= {0, 255}:
        return np.repeat(v[..., None].astype(np.uint8), 3, axis=2)
    return colours[v.astype(np.uint8)]


def _placeholder(height: int, width: int, text: str) -> np.ndarray:
    panel = np.full((height, width, 3), 220, dtype=np.uint8)
    cv2.putText(panel, text, (8, min(height - 8, 24)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (120, 0, 0), 1, cv2.LINE_AA)
    return panel


def pair_picture(diagnosis: Diagnosis, index: int, colours: np.ndarray, width: int = PANEL_WIDTH) -> np.ndarray:
    """image | mask as stored | class ids over the image, each panel ``width`` wide, titled."""
    scan, label_map = diagnosis.scans[index], diagnosis.maps[index]
    try:
        photo = read_image(scan.image)
    except DatasetError:
        photo = None
    try:
        raw = read_raw_label(scan.label)
    except DatasetError:
        raw = None
    size = photo.shape[:2] if photo is not None else (raw.shape[:2] if raw is not None else (240, width))
    height = max(1, round(size[0] * width / max(size[1], 1)))

    def fit(panel: np.ndarray, nearest: bool) -> np.ndarray:
        return cv2.resize(panel, (width, height), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)

    image_panel = fit(photo, False) if photo is not None else _placeholder(height, width, "image unreadable")
    if raw is None:
        stored = _placeholder(height, width, "label unreadable")
        ids_panel = _placeholder(height, width, "label unreadable")
    else:
        stored = fit(stored_picture(raw, colours), True)
        ids = None
        if label_map is not None:
            try:
                ids, _ = label_map.apply(raw, scan.label)
            except DatasetError:
                ids = None
        if ids is None:
            ids_panel = _placeholder(height, width, "no class ids (see findings)")
        elif photo is not None:
            ids_small = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
            ids_panel = overlay(image_panel, ids_small, colours)
        else:
            ids_panel = fit(colours[ids], True)
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    row = np.concatenate([image_panel, gap, stored, gap, ids_panel], axis=1)
    strip = np.full((22, row.shape[1], 3), 255, dtype=np.uint8)
    for i, title in enumerate(PANEL_TITLES):
        cv2.putText(strip, title, (i * (width + 4) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, row], axis=0)


def class_histogram_chart(pixels: Sequence[int], names: Sequence[str], colours: np.ndarray) -> np.ndarray:
    """Bars of the pixels per class on a log scale, in the class colours; empty classes marked."""
    pixels = np.asarray(pixels, dtype=np.float64)
    count = len(names)
    figure = charts.new_figure(max(6.0, 0.35 * count + 2.0), 4.5)
    axes = figure.add_subplot()
    x = np.arange(count)
    axes.bar(x, np.where(pixels > 0, pixels, np.nan), color=colours[:count] / 255.0, edgecolor="black",
             linewidth=0.5)
    for i in np.flatnonzero(pixels == 0):
        axes.text(i, 1, "0", ha="center", va="bottom", color="#b00020", fontsize=8)
    axes.set_yscale("log")
    axes.set_xticks(x, names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    axes.set_ylabel("pixels (log scale)")
    axes.set_title("Pixels per class")
    axes.grid(axis="y", alpha=0.3)
    return charts.render(figure)


def _data_uri(picture: np.ndarray, fmt: str = ".jpg") -> str:
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if fmt == ".jpg" else []
    ok, encoded = cv2.imencode(fmt, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"could not encode a {fmt} picture")
    mime = "image/jpeg" if fmt == ".jpg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(encoded.tobytes()).decode('ascii')}"


# ------------------------------------------------------------------------------------------------
# the page
# ------------------------------------------------------------------------------------------------
def gallery_indices(diagnosis: Diagnosis, sample: int = SAMPLE, max_flagged: int = MAX_FLAGGED,
                    seed: int = 0) -> Tuple[List[int], List[Tuple[int, List[str]]], int]:
    """(sampled pair indices, flagged pairs with their finding kinds, flagged pairs not shown)."""
    scans = diagnosis.scans
    by_file: Dict[str, List[int]] = {}
    for i, s in enumerate(scans):
        by_file.setdefault(s.image, []).append(i)
        by_file.setdefault(s.label, []).append(i)
    kinds: Dict[int, List[str]] = {}
    for f in diagnosis.findings:
        for path in f.files:
            for i in by_file.get(path, []):
                if f.kind not in kinds.setdefault(i, []):
                    kinds[i].append(f.kind)
    flagged = sorted(kinds)
    rng = np.random.default_rng(seed)
    pool = [i for i in range(len(scans)) if i not in kinds]
    sampled = sorted(rng.choice(pool, min(sample, len(pool)), replace=False).tolist()) if pool else []
    return sampled, [(i, kinds[i]) for i in flagged[:max_flagged]], max(0, len(flagged) - max_flagged)


def render_html(diagnosis: Diagnosis, details: Dict[str, str], chart: str,
                pictures: List[Tuple[str, str, str]], hidden: int) -> str:
    """The page; ``chart`` and each picture's first item are data URIs; pictures are (uri, caption, group)."""
    e = html.escape
    d = diagnosis
    names = d.names()
    lines = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Data set report</title>", f"<style>{_STYLE}</style></head><body>", "<h1>Data set report</h1>"]
    shown = {**details, "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    lines.append('<p class="details">' + "<br>".join(f"{e(k)}: {e(str(v))}" for k, v in shown.items()) + "</p>")
    errors = sum(1 for f in d.findings if f.severity == ERROR)
    lines += ['<table id="summary"><tr><th>pairs</th><th>encoding</th><th>classes</th><th>ignore index</th>'
              "<th>palette</th><th>findings</th></tr>",
              f'<tr><td class="num">{len(d.scans)}</td><td>{e(d.encoding)}</td><td class="num">{d.num_classes}</td>'
              f'<td class="num">{d.ignore_index}</td><td>{e(d.palette.name) if d.palette else "-"}</td>'
              f"<td>{errors} error(s), {len(d.findings) - errors} warning(s)</td></tr></table>"]
    lines.append("<h2>Findings</h2>")
    if d.findings:
        lines.append('<table id="findings"><tr><th>kind</th><th>severity</th><th>files</th><th>detail</th></tr>')
        for f in d.findings:
            listed = "<br>".join(e(p) for p in f.files[:10]) + (f"<br>... and {len(f.files) - 10} more"
                                                                 if len(f.files) > 10 else "")
            lines.append(f'<tr><td>{e(f.kind)}</td><td class="{f.severity}">{f.severity}</td>'
                         f'<td class="files">{len(f.files)}: {listed}</td><td>{e(f.detail)}</td></tr>')
        lines.append("</table>")
    else:
        lines.append("<p>None: the set can be trained on as it is.</p>")
    lines += ["<h2>Classes</h2>", '<table id="classes"><tr><th>id</th><th>name</th><th>pixels</th><th>share</th>'
              "<th>ESPNet weight</th><th>median-frequency weight</th></tr>"]
    total = max(int(d.class_pixels.sum()), 1)
    espnet = d.class_weights.get("espnet") or [None] * d.num_classes
    median = d.class_weights.get("median_frequency") or [None] * d.num_classes
    for i in range(d.num_classes):
        px = int(d.class_pixels[i])
        weights = "".join(f'<td class="num">{w:.4f}</td>' if w is not None else '<td class="num">-</td>'
                          for w in (espnet[i], median[i]))
        lines.append(f'<tr><td class="num">{i}</td><td>{e(names[i])}</td><td class="num">{px:,}</td>'
                     f'<td class="num">{100 * px / total:.2f}%</td>{weights}</tr>')
    lines.append("</table>")
    if chart:
        lines.append(f'<figure><img src="{chart}" alt="pixels per class"><figcaption>Pixels per class (log scale); '
                     f"a red 0 marks a class without pixels.</figcaption></figure>")
    for group, title in (("flagged", "Flagged files"), ("sample", "A sample of the pairs")):
        chosen = [p for p in pictures if p[2] == group]
        if not chosen:
            continue
        lines.append(f'<h2>{title}</h2><div id="{group}">')
        for uri, caption, _ in chosen:
            lines.append(f'<figure><img src="{uri}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>')
        if group == "flagged" and hidden:
            lines.append(f"<p>... and {hidden} more flagged pairs (the findings above name them).</p>")
        lines.append("</div>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def write_report(folder: PathLike, diagnosis: Diagnosis, details: Optional[Dict[str, str]] = None,
                 sample: int = SAMPLE, seed: int = 0) -> Path:
    """Write the report of ``diagnosis`` to ``folder`` (module docstring); returns ``index.html``."""
    check_report_folder(folder)
    colours = display_palette(diagnosis.num_classes, diagnosis.palette)
    chart = ""
    if diagnosis.num_classes:
        chart = _data_uri(class_histogram_chart(diagnosis.class_pixels, diagnosis.names(), colours), ".png")
    sampled, flagged, hidden = gallery_indices(diagnosis, sample, seed=seed)
    pictures = []
    for i, kinds in flagged:
        s = diagnosis.scans[i]
        pictures.append((_data_uri(pair_picture(diagnosis, i, colours)),
                         f"{', '.join(kinds)}: {s.image} | {s.label}", "flagged"))
    for i in sampled:
        s = diagnosis.scans[i]
        pictures.append((_data_uri(pair_picture(diagnosis, i, colours)), f"{s.image} | {s.label}", "sample"))
    page = render_html(diagnosis, details or {}, chart, pictures, hidden)
    try:
        with atomic_folder(folder) as tmp:
            (tmp / INDEX).write_text(page, encoding="utf-8")
            write_marker(tmp, REPORT_KIND)
            check_report_folder(folder)
    except OSError as e:
        raise UserError(f"--report {folder}: could not be written ({e.strerror or e}); the previous one, if any, "
                        f"is unchanged") from e
    return Path(folder) / INDEX
