"""A training config for a converted data set, ready for ``python train.py --config FILE``.

    text = config_text(conversion, weights)       # conversion: paddleseg.datasets.doctor.convert.Conversion
    write_config("configs/my_data.yml", conversion)

What it holds: the ``Dataset`` type on the converted lists (absolute paths, so the config works from any
folder), ``num_classes``, ``ignore_index`` and the class names, ESPNet's class weights ``1/ln(1.10+p)``
of the converted labels in ``CrossEntropyLoss``, the quick-start model, optimizer and schedule
(:data:`QUICKSTART`, the values of ``configs/quickstart/espnetv2_synthetic.yml``), and a crop and batch
size fitted to the images: the crop is the median image size (at most :data:`MAX_CROP` a side, a
multiple of 16), the batch holds about :data:`BATCH_PIXELS` pixels (2 to 16 samples, no more than the
training set). Images longer than :data:`MAX_SIDE` on their long side are first resized to it.
"""
import inspect
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import yaml

from paddleseg.datasets.class_weights import weights_from_histogram
from paddleseg.datasets.doctor.convert import Conversion
from paddleseg.errors import UserError
from paddleseg.utils.atomic import atomic_write_text

PathLike = Union[str, Path]


class _Dumper(yaml.SafeDumper):
    """Plain YAML: a list used twice (the class names) is written twice, not as an anchor and alias."""

    def ignore_aliases(self, data) -> bool:
        return True


MAX_CROP = 512
MAX_SIDE = 1024
BATCH_PIXELS = 4 * 256 * 128  # the quick start's batch: 4 crops of 256x128
# the quick-start model, optimizer and schedule (configs/quickstart/espnetv2_synthetic.yml; a test keeps
# the two equal)
QUICKSTART = {
    "iters": 1000,
    "model": {"type": "ESPNetV2", "in_channels": 3, "scale": 1.0, "drop_prob": 0.0},
    "optimizer": {"type": "Adam", "weight_decay": 0.0002},
    "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.001, "end_lr": 0.0, "power": 0.9},
    "loss_coef": [1, 1],
    "train_transforms": [
        {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
        {"type": "RandomPaddingCrop"},
        {"type": "RandomHorizontalFlip"},
        {"type": "RandomDistort", "brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4},
        {"type": "Normalize"},
    ],
}


def _floor16(v: float) -> int:
    return max(16, int(v) // 16 * 16)


def fitted_sizes(sizes: Sequence[Tuple[int, int]], train_samples: int) -> Tuple[Optional[int], List[int], int]:
    """(long side to resize to or None, crop [width, height], batch size) for labels of ``sizes``
    ((height, width) each) and ``train_samples`` training samples."""
    heights = np.array([h for h, _ in sizes], dtype=np.float64)
    widths = np.array([w for _, w in sizes], dtype=np.float64)
    h, w = float(np.median(heights)), float(np.median(widths))
    long_side = None
    if max(h, w) > MAX_SIDE:
        long_side = MAX_SIDE
        scale = MAX_SIDE / max(h, w)
        h, w = h * scale, w * scale
    crop = [min(MAX_CROP, _floor16(w)), min(MAX_CROP, _floor16(h))]
    batch = int(np.clip(round(BATCH_PIXELS / (crop[0] * crop[1])), 2, 16))
    return long_side, crop, max(1, min(batch, train_samples))


def dataset_takes_class_names() -> bool:
    """True when the ``Dataset`` type has a ``class_names`` argument."""
    from paddleseg.datasets.dataset import Dataset

    return "class_names" in inspect.signature(Dataset.__init__).parameters


def build_config(conversion: Conversion, weights: Optional[Sequence[float]] = None,
                 class_names: Optional[bool] = None) -> Dict:
    """The config of ``conversion`` as a dict (module docstring). ``weights``: the class weights (default:
    ESPNet's, from the converted labels); ``class_names``: write them into the datasets (default: when the
    ``Dataset`` type takes them)."""
    c = conversion
    root = os.path.abspath(c.out)
    if weights is None and c.class_pixels.sum() > 0:
        weights = weights_from_histogram(c.class_pixels)
    long_side, crop, batch = fitted_sizes(c.sizes, c.train)
    resize = [{"type": "ResizeByLong", "long_size": long_side}] if long_side else []
    train_transforms = resize + [dict(t) for t in QUICKSTART["train_transforms"]]
    for t in train_transforms:
        if t["type"] == "RandomPaddingCrop":
            t["crop_size"] = crop
            if c.ignore_index != 255:
                t["label_padding_value"] = c.ignore_index
    common = {"type": "Dataset", "dataset_root": root, "num_classes": c.num_classes, "ignore_index": c.ignore_index}
    if c.separator != " ":
        common["separator"] = c.separator
    if c.class_names and (dataset_takes_class_names() if class_names is None else class_names):
        common["class_names"] = list(c.class_names)
    if c.palette and (dataset_takes_class_names() if class_names is None else class_names):
        common["palette"] = [list(colour) for colour in c.palette]
    cfg: Dict = {"batch_size": batch, "iters": QUICKSTART["iters"],
                 "train_dataset": {**common, "train_path": os.path.join(root, "train.txt"), "mode": "train",
                                   "transforms": train_transforms}}
    if c.val:
        cfg["val_dataset"] = {**common, "val_path": os.path.join(root, "val.txt"), "mode": "val",
                              "transforms": resize + [{"type": "Normalize"}]}
    loss = {"type": "CrossEntropyLoss", "ignore_index": c.ignore_index}
    if weights is not None:
        loss["weight"] = [round(float(w), 4) for w in weights]
    cfg["model"] = {**QUICKSTART["model"], "num_classes": c.num_classes}
    cfg["optimizer"] = dict(QUICKSTART["optimizer"])
    cfg["lr_scheduler"] = dict(QUICKSTART["lr_scheduler"])
    cfg["loss"] = {"types": [loss], "coef": list(QUICKSTART["loss_coef"])}
    return cfg


def config_text(conversion: Conversion, weights: Optional[Sequence[float]] = None,
                class_names: Optional[bool] = None) -> str:
    cfg = build_config(conversion, weights, class_names)
    names = ", ".join(conversion.class_names) if conversion.class_names else "not known (ids)"
    header = (f"# Written by tools/check_dataset.py on {time.strftime('%Y-%m-%d %H:%M')} for the converted set\n"
              f"# {os.path.abspath(conversion.out)}: {conversion.train} training and {conversion.val} validation "
              f"samples, {conversion.num_classes} classes ({names}).\n"
              f"# Class weights: ESPNet's 1/ln(1.10 + p) of the converted labels. Train with\n"
              f"#   python train.py --config <this file> --do_eval\n")
    return header + yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=None,
                              width=110)


def check_config_target(path: PathLike) -> None:
    """UserError unless a new config can be written at ``path`` (an existing file is never replaced)."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise UserError(f"--write_config {path}: exists; give a new file name (an existing config is not replaced)")
    parent = Path(os.path.realpath(target.parent if str(target.parent) else "."))
    for existing in [parent, *parent.parents]:
        if existing.exists():
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise UserError(f"--write_config {path}: cannot be written ({existing} is not a writable folder)")
            break


def write_config(path: PathLike, conversion: Conversion, weights: Optional[Sequence[float]] = None) -> Path:
    """Write the config of ``conversion`` to the new file ``path`` (atomically)."""
    check_config_target(path)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(target, config_text(conversion, weights))
    except OSError as e:
        raise UserError(f"--write_config {path}: could not be written ({e.strerror or e})") from e
