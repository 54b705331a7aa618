"""Output names and pictures of a prediction, the same for every front end (predict.py, tools/infer.py).

For every input image, under ``save_dir`` and mirroring the input folder tree:
``pseudo_color_prediction/`` (a palette PNG of the train ids: shown in colour, read back as ids),
``added_prediction/`` (the photo blended with those colours), and on request ``label/`` (raw train
ids, single-channel PNG) and ``label_ids/`` (Cityscapes label ids, for a test-server submission).

Output names (:func:`output_names`): ``<path below the input folder without extension>.png``, as
PaddleSeg writes them. Two inputs that would share a name (``a.jpg`` and ``a.png``) each keep their
extension instead (``a.jpg.png``, ``a.png.png``); a list entry outside the list's folder keeps its
relative path with every ``..`` written ``__`` (``../c2/a.png`` -> ``__/c2/a.png``), so nothing is
written outside ``save_dir``. The names are fixed before anything is written, and two inputs that
would still collide are an error.

Each picture is encoded in memory and written through a temporary name and a rename
(:func:`paddleseg.utils.atomic.atomic_write_bytes`): a killed run leaves no half-written file, and
any file name works.

A video's outputs (:class:`VideoOutputWriter`, names from :func:`video_output_names`) sit beside the
image folders, named after the video's stem (:func:`paddleseg.deploy.inputs.video_stem`, never an
image folder's name): ``<stem>_overlay.mp4`` (the frames blended with the prediction as
``added_prediction/`` is, same size and frame rate; :class:`paddleseg.deploy.video.Mp4Writer`) and, on
request, ``<stem>/frame_000000.png`` (train ids, one per frame, numbered by the frame's index in the
input) and ``<stem>.json`` (the run's figures: frames, frame rates, flicker).
"""
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.video import Mp4Writer
from paddleseg.utils.atomic import atomic_write_bytes

PathLike = Union[str, Path]
PSEUDO_COLOR, ADDED, LABEL, LABEL_IDS = "pseudo_color_prediction", "added_prediction", "label", "label_ids"
OUTPUT_FOLDERS = (PSEUDO_COLOR, ADDED, LABEL, LABEL_IDS)
PARENT = "__"  # stands for ".." in the output name of a list entry outside the list's folder
OVERLAY_WEIGHT = 0.6  # share of the photo in the overlay (PaddleSeg's default)


# ------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------
def relative_name(image: Path, root: Path) -> Path:
    """``image``'s path below ``root``; outside it, its relative path with each ``..`` written ``__``."""
    rel = Path(os.path.relpath(image, root))  # absolute, with ".." and "." resolved by name
    return Path(*(PARENT if part == ".." else part for part in rel.parts))


def output_names(images: Sequence[Path], root: Path) -> List[Path]:
    """The output name of each image (module docstring): ``<relative path>`` with a ``.png`` suffix,
    or with ``.png`` appended where two images would otherwise share a name. DeployError if some still
    collide (nothing has been written yet)."""
    relative = [relative_name(p, root) for p in images]
    plain = [r.with_suffix(".png") for r in relative]
    shared = Counter(plain)
    names = [r.with_name(r.name + ".png") if shared[n] > 1 else n for r, n in zip(relative, plain)]
    taken, clashes = {}, []
    for image, name in zip(images, names):
        if name in taken:
            clashes.append(f"{taken[name]} and {image} -> {name}")
        taken.setdefault(name, image)
    if clashes:
        raise DeployError(f"{len(clashes)} output name(s) would be written twice: {'; '.join(clashes[:5])}; "
                          f"rename or move one of each pair")
    return names


def check_save_dir(save_dir: PathLike) -> None:
    """DeployError unless ``save_dir`` is a folder or can be made one (no file in the way, writable)."""
    path = Path(save_dir)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == path else f" ({existing} is a file)"
                raise DeployError(f"--save_dir {path}: not a folder{where}")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise DeployError(f"--save_dir {path}: {existing} is not writable")
            return


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def palette_table(colors: Optional[Sequence[Sequence[int]]] = None,
                  custom_color: Optional[Sequence[int]] = None) -> np.ndarray:
    """A (256, 3) uint8 colour table indexed by class id: ``colors`` (``[[r, g, b], ...]``), then the
    first ones replaced by ``custom_color`` (``r g b r g b ...``); black elsewhere."""
    table = np.zeros((256, 3), dtype=np.uint8)
    for values in (colors, custom_color):
        if values is not None and len(values):
            rgb = np.asarray(values, dtype=np.uint8).reshape(-1, 3)[:256]
            table[:len(rgb)] = rgb
    return table


def label_id_table(label_ids: Sequence[int]) -> np.ndarray:
    """A (256,) uint8 lookup from train id to label id (``label_ids[train_id]``; 0 elsewhere)."""
    table = np.zeros(256, dtype=np.uint8)
    table[:len(label_ids)] = label_ids
    return table


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) image of a class-id map (H, W). A full (256, 3) uint8 table is looked up by
    OpenCV (the same values as numpy's indexing, about 7x faster: docs/performance.md)."""
    label = np.asarray(label, dtype=np.uint8)
    if label.ndim == 2 and label.size and palette.shape == (256, 3) and palette.dtype == np.uint8:
        return cv2.LUT(cv2.merge([label, label, label]), np.ascontiguousarray(palette.reshape(256, 1, 3)))
    return palette[label]


def overlay(image: np.ndarray, label: np.ndarray, palette: np.ndarray, weight: float = OVERLAY_WEIGHT) -> np.ndarray:
    """The RGB uint8 ``image`` blended with the colours of ``label``: ``weight`` of the photo."""
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape[:2]} differ in size")
    return cv2.addWeighted(image, weight, colorize(label, palette), 1.0 - weight, 0.0)


def _pillow_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save_pseudo_color(label: np.ndarray, path: PathLike, palette: np.ndarray, sync: bool = False) -> None:
    """Save a class-id map as an 8-bit palette PNG: shown in colour, read back as class ids."""
    image = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
    image.putpalette(palette.astype(np.uint8).flatten().tolist())
    _write(path, _pillow_png(image), sync)


def save_gray(label: np.ndarray, path: PathLike, sync: bool = False) -> None:
    """Save a (H, W) uint8 map as a single-channel PNG (raw ids)."""
    _write(path, _pillow_png(Image.fromarray(np.asarray(label, dtype=np.uint8), mode="L")), sync)


def save_rgb(image: np.ndarray, path: PathLike, sync: bool = False) -> None:
    """Save an RGB uint8 image in the format its suffix names (OpenCV's encoder)."""
    ok, data = cv2.imencode(Path(path).suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: could not be encoded")
    _write(path, data.tobytes(), sync)


def _write(path: PathLike, data: bytes, sync: bool) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, sync=sync)


class OutputWriter:
    """Writes the pictures of one prediction (module docstring) under ``save_dir``. ``label_ids`` is a
    :func:`label_id_table`, needed when ``save_label_ids`` is set."""

    def __init__(self, save_dir: PathLike, palette: np.ndarray, *, save_label: bool = False,
                 save_label_ids: bool = False, label_ids: Optional[np.ndarray] = None):
        if save_label_ids and label_ids is None:
            raise ValueError("save_label_ids needs a label_ids table")
        self.save_dir = Path(save_dir)
        self.palette = palette
        self.save_label = save_label
        self.label_ids = label_ids if save_label_ids else None

    def write(self, name: Path, image: np.ndarray, label: np.ndarray) -> None:
        """The outputs of ``label`` (H, W) uint8 on ``image`` (RGB, H, W, 3), as ``<folder>/<name>``."""
        save_pseudo_color(label, self.save_dir / PSEUDO_COLOR / name, self.palette)
        save_rgb(overlay(image, label, self.palette), self.save_dir / ADDED / name)
        if self.save_label:
            save_gray(label, self.save_dir / LABEL / name)
        if self.label_ids is not None:
            save_gray(self.label_ids[label], self.save_dir / LABEL_IDS / name)


# ------------------------------------------------------------------------------------------------
# videos
# ------------------------------------------------------------------------------------------------
class VideoOutputNames(NamedTuple):
    overlay: Path   # <stem>_overlay.mp4
    labels: Path    # <stem>/, a label PNG per frame
    report: Path    # <stem>.json


def video_output_names(save_dir: PathLike, stem: str) -> VideoOutputNames:
    """Where a video's outputs go (module docstring)."""
    folder = Path(save_dir)
    return VideoOutputNames(folder / f"{stem}_overlay.mp4", folder / stem, folder / f"{stem}.json")


def frame_name(index: int) -> str:
    """The label PNG of the frame at ``index`` in the input."""
    return f"frame_{index:06d}.png"


class VideoOutputWriter:
    """Writes one video's outputs under ``save_dir`` (module docstring): use it as a context manager;
    the MP4 is finished and renamed into place when the block ends, however it ends."""

    def __init__(self, save_dir: PathLike, stem: str, palette: np.ndarray, fps: float, size: Tuple[int, int], *,
                 save_labels: bool = False):
        self.names = video_output_names(save_dir, stem)
        self.palette = palette
        self.save_labels = save_labels
        self.mp4 = Mp4Writer(self.names.overlay, fps, size)

    def __enter__(self) -> "VideoOutputWriter":
        self.mp4.open()
        return self

    def __exit__(self, *exc) -> None:
        self.mp4.close()

    @property
    def frames(self) -> int:
        return self.mp4.frames

    def write(self, index: int, image: np.ndarray, label: np.ndarray) -> None:
        """The outputs of frame ``index``: its overlay appended to the MP4, its labels as a PNG (both or
        neither when the caller holds Ctrl-C and SIGTERM around it, as the prediction loop does)."""
        self.mp4.write(overlay(image, label, self.palette))
        if self.save_labels:
            save_gray(label, self.names.labels / frame_name(index))

    def write_report(self, report: Dict) -> Path:
        """``<stem>.json`` with ``report`` (written whole or not at all)."""
        _write(self.names.report, (json.dumps(report, indent=1) + "\n").encode("utf-8"), sync=False)
        return self.names.report
