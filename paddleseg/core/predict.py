"""Predict label maps for image files and save them as pictures (``predict.py``).

For every input image, under ``save_dir`` and mirroring the input folder tree:
``pseudo_color_prediction/`` (palette PNG of train ids), ``added_prediction/`` (overlay on the photo),
and on request ``label/`` (raw train ids, single-channel PNG) and ``label_ids/`` (official Cityscapes
label ids, for a test-server submission). Predictions have the image's exact size.

Output names (:func:`output_names`): ``<path below the input folder without extension>.png``, as
PaddleSeg writes them. Two inputs that would share a name (``a.jpg`` and ``a.png``) each keep their
extension instead (``a.jpg.png``, ``a.png.png``); a list entry outside the list's folder keeps its
relative path with every ``..`` written ``__`` (``../c2/a.png`` -> ``__/c2/a.png``), so nothing is
written outside ``save_dir``. The names are fixed before anything is written, and two inputs that
would still collide are an error. ``tools/infer.py`` names its outputs the same way (its own copy).
"""
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm

from paddleseg.core.infer import aug_inference, inference
from paddleseg.cvlibs import Config, builder, manager
from paddleseg.errors import DatasetError, UserError
from paddleseg.transforms.io import MAX_PIXELS, read_image
from paddleseg.utils.cityscapes_labels import train_ids_to_label_ids
from paddleseg.utils.visualize import overlay, save_gray, save_pseudo_color, save_rgb

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_SUFFIXES = (".txt", ".lst")
OUTPUT_FOLDERS = ("pseudo_color_prediction", "added_prediction", "label", "label_ids")
PARENT = "__"  # stands for ".." in the output name of a list entry outside the list's folder


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` and ``.`` removed by name (symbolic links are not followed)."""
    return Path(os.path.abspath(path))


def _is_below(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def collect_images(image_path, save_dir=None) -> Tuple[List[Path], Path]:
    """The images named by ``image_path`` and the folder their output paths are relative to.

    A file with an image suffix: itself. A folder: every image below it, recursively, sorted, except
    those in the output folders of ``save_dir`` (a ``save_dir`` inside the folder would otherwise
    have each run predict the previous run's outputs). A list file (``.txt``/``.lst``): the first field
    of every non-empty line, relative to the list's folder unless absolute; a file listed twice is
    predicted once."""
    path = Path(image_path)
    if path.is_dir():
        outputs = [] if save_dir is None else [(Path(save_dir) / f).resolve() for f in OUTPUT_FOLDERS]
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not _is_below(p.resolve(), outputs))
        root = path
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        listed = [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
        seen, images = set(), []
        for p in listed:
            if _absolute(p) not in seen:
                seen.add(_absolute(p))
                images.append(p)
        if len(images) < len(listed):
            logger.warning("%s: %d file(s) listed more than once, predicted once", path, len(listed) - len(images))
        root = path.parent
    elif path.is_file():
        images, root = [path], path.parent
    else:
        raise UserError(f"--image_path {path}: no such file or folder")
    if not images:
        raise UserError(f"--image_path {path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return images, root


def relative_name(image: Path, root: Path) -> Path:
    """``image``'s path below ``root``; outside it, its relative path with each ``..`` written ``__``."""
    rel = Path(os.path.relpath(image, root))  # absolute, with ".." and "." resolved by name
    return Path(*(PARENT if part == ".." else part for part in rel.parts))


def output_names(images: Sequence[Path], root: Path) -> List[Path]:
    """The output name of each image (module docstring): ``<relative path>`` with a ``.png`` suffix,
    or with ``.png`` appended where two images would otherwise share a name. UserError if some still
    collide (nothing has been written yet)."""
    relative = [relative_name(p, root) for p in images]
    plain = [r.with_suffix(".png") for r in relative]
    shared = Counter(plain)
    names = [r.with_name(r.name + ".png") if shared[n] > 1 else n for r, n in zip(relative, plain)]
    taken = {}
    clashes = []
    for image, name in zip(images, names):
        if name in taken:
            clashes.append(f"{taken[name]} and {image} -> {name}")
        taken.setdefault(name, image)
    if clashes:
        raise UserError(f"{len(clashes)} output name(s) would be written twice: {'; '.join(clashes[:5])}; "
                        f"rename or move one of each pair")
    return names


def check_save_dir(save_dir) -> None:
    """UserError unless ``save_dir`` is a folder or can be made one (no file in the way)."""
    path = Path(save_dir)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == path else f" ({existing} is a file)"
                raise UserError(f"--save_dir {path}: not a folder{where}")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise UserError(f"--save_dir {path}: {existing} is not writable")
            return


def plan_outputs(image_path, save_dir) -> List[Tuple[Path, Path]]:
    """``(image, output name)`` for every input (:func:`collect_images`, :func:`output_names`), after
    checking ``save_dir``: every argument problem is found before a model is built or a file written."""
    check_save_dir(save_dir)
    images, root = collect_images(image_path, save_dir)
    return list(zip(images, output_names(images, root)))


def transform_configs(cfg: Config) -> List[dict]:
    """The preprocessing at test time: ``export.transforms`` if set, else the val transforms (else
    ``Normalize`` with its defaults)."""
    configs = cfg.dic.get("export", {}).get("transforms") or cfg.dic.get("val_dataset", {}).get("transforms")
    return list(configs or [{"type": "Normalize"}])


def build_transforms(configs: Sequence[dict]) -> Callable:
    """One ``Compose`` of the transform ``configs``."""
    return builder.build_component({"type": "Compose", "transforms": list(configs)}, manager.TRANSFORMS,
                                   "transforms")


@dataclass
class PredictSettings:
    """How to run the model on each image: test-time augmentation and sliding window."""

    aug_pred: bool = False
    scales: Sequence[float] = (1.0,)
    flip_horizontal: bool = False
    flip_vertical: bool = False
    is_slide: bool = False
    crop_size: Optional[Sequence[int]] = None
    stride: Optional[Sequence[int]] = None


def predict_image(model: paddle.nn.Layer, image: np.ndarray, transforms: Callable,
                  settings: PredictSettings = PredictSettings()) -> np.ndarray:
    """The (H, W) uint8 train-id map of an RGB uint8 image (H, W, 3); ``transforms`` is a Compose
    of the preprocessing (returning CHW float32)."""
    height, width = image.shape[:2]
    chw, _ = transforms(image, None, np.random.default_rng(0))
    im = paddle.to_tensor(chw[None])
    slide = dict(is_slide=settings.is_slide, crop_size=settings.crop_size, stride=settings.stride)
    with paddle.no_grad():
        if settings.aug_pred:
            scores = aug_inference(model, im, scales=settings.scales, flip_horizontal=settings.flip_horizontal,
                                   flip_vertical=settings.flip_vertical, **slide)
        else:
            scores = inference(model, im, **slide)
        if tuple(scores.shape[2:]) != (height, width):  # the transforms resized the image
            scores = F.interpolate(scores, size=[height, width], mode="bilinear", align_corners=False)
        return paddle.argmax(scores[0], axis=0).numpy().astype(np.uint8)


def save_prediction(pred: np.ndarray, image: np.ndarray, name: Path, save_dir: Path, palette: np.ndarray,
                    save_label: bool = False, label_ids: bool = False) -> None:
    """Write the outputs for one image (module docstring) under ``save_dir``."""
    save_pseudo_color(pred, save_dir / "pseudo_color_prediction" / name, palette)
    save_rgb(overlay(image, pred, palette), save_dir / "added_prediction" / name)
    if save_label:
        save_gray(pred, save_dir / "label" / name)
    if label_ids:
        save_gray(train_ids_to_label_ids(pred), save_dir / "label_ids" / name)


@dataclass
class PredictSummary:
    done: int = 0
    skipped: List[Tuple[Path, str]] = field(default_factory=list)


def predict(model: paddle.nn.Layer, transforms: Callable, plan: Sequence[Tuple[Path, Path]], save_dir,
            palette: np.ndarray, *, settings: PredictSettings = PredictSettings(), save_label: bool = False,
            label_ids: bool = False, max_pixels: Optional[int] = MAX_PIXELS) -> PredictSummary:
    """Predict every ``(image, output name)`` of ``plan`` (:func:`plan_outputs`) into ``save_dir``.

    An image that cannot be read, or whose header claims more than ``max_pixels`` pixels (it is not
    decoded), is logged with its path and skipped; the summary lists it."""
    save_dir = Path(save_dir)
    model.eval()
    summary = PredictSummary()
    logger.info("Predicting %d image(s) into %s", len(plan), save_dir)
    for path, name in tqdm(plan, desc="predict", unit="img"):
        try:
            image = read_image(path, max_pixels)
        except DatasetError as e:
            logger.error("skipped: %s", e)
            summary.skipped.append((path, str(e)))
            continue
        pred = predict_image(model, image, transforms, settings)
        save_prediction(pred, image, name, save_dir, palette, save_label, label_ids)
        summary.done += 1
    logger.info("Predicted %d image(s); %d skipped", summary.done, len(summary.skipped))
    if summary.done:
        logger.info("Overlays: %s (colour maps: %s)", save_dir / "added_prediction",
                    save_dir / "pseudo_color_prediction")
    for path, reason in summary.skipped:
        logger.error("skipped: %s", reason)
    return summary
