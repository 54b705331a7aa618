"""Predict label maps for image files and save them as pictures (``predict.py``).

For every input image, under ``save_dir`` and mirroring the input folder tree:
``pseudo_color_prediction/`` (palette PNG of train ids), ``added_prediction/`` (overlay on the photo),
and on request ``label/`` (raw train ids, single-channel PNG) and ``label_ids/`` (official Cityscapes
label ids, for a test-server submission). Predictions have the image's exact size.
"""
import logging
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
from paddleseg.transforms import read_image
from paddleseg.utils.cityscapes_labels import train_ids_to_label_ids
from paddleseg.utils.visualize import overlay, save_gray, save_pseudo_color, save_rgb

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_SUFFIXES = (".txt", ".lst")


def collect_images(image_path) -> Tuple[List[Path], Path]:
    """The images named by ``image_path`` and the folder their output paths are relative to.

    A file with an image suffix: itself. A folder: every image below it, recursively, sorted. A list
    file (``.txt``/``.lst``): the first field of every non-empty line, relative to the list's folder
    unless absolute."""
    path = Path(image_path)
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        root = path
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        images = [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
        root = path.parent
    elif path.is_file():
        images, root = [path], path.parent
    else:
        raise UserError(f"--image_path {path}: no such file or folder")
    if not images:
        raise UserError(f"--image_path {path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return images, root


def output_name(image: Path, root: Path) -> Path:
    """``image``'s path below ``root`` with a ``.png`` suffix (its name alone if outside ``root``)."""
    try:
        rel = image.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(image.name)
    return rel.with_suffix(".png")


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
    failed: List[Tuple[Path, str]] = field(default_factory=list)


def predict(model: paddle.nn.Layer, transforms: Callable, image_path, save_dir, palette: np.ndarray, *,
            settings: PredictSettings = PredictSettings(), save_label: bool = False,
            label_ids: bool = False) -> PredictSummary:
    """Predict every image of ``image_path`` (see :func:`collect_images`) into ``save_dir``.

    An image that cannot be read is logged with its path and skipped; the summary lists it."""
    images, root = collect_images(image_path)
    save_dir = Path(save_dir)
    model.eval()
    summary = PredictSummary()
    logger.info("Predicting %d image(s) into %s", len(images), save_dir)
    for path in tqdm(images, desc="predict", unit="img"):
        try:
            image = read_image(path)
        except DatasetError as e:
            logger.error("skipped: %s", e)
            summary.failed.append((path, str(e)))
            continue
        pred = predict_image(model, image, transforms, settings)
        save_prediction(pred, image, output_name(path, root), save_dir, palette, save_label, label_ids)
        summary.done += 1
    logger.info("Predicted %d image(s); %d failed", summary.done, len(summary.failed))
    for path, reason in summary.failed:
        logger.error("failed: %s (%s)", path, reason)
    return summary
