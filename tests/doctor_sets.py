"""Small image/mask sets in every encoding the data-set doctor meets, built from the synthetic street scenes
(paddleseg/datasets/synthetic.py): the true class ids are known, so a conversion can be compared with them.

    ids = write_set(tmp_path / "set", "colour", count=6)   # images/*.jpg, masks/*.png; returns name -> train ids
"""
import hashlib
import io
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from paddleseg.datasets.doctor.palettes import voc_colour
from paddleseg.datasets.synthetic import make_scene, paint, rasterize
from paddleseg.utils.cityscapes_labels import colorize

FOREGROUND = 13  # car: the class of the binary sets
ENCODINGS = ("ids", "binary", "colour", "palette", "voc_palette", "jpeg_binary", "jpeg_colour", "sixteen_bit",
             "grey_rgb", "alpha_mask", "scaled_ids", "scaled_binary")
SCALE = 10  # scaled_ids: train ids times 10 (255 kept), as masks saved to be seen often are


def scenes(count: int, width: int = 96, height: int = 48, seed: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """(RGB image, Cityscapes train ids with 255 for unlabelled) of ``count`` synthetic scenes."""
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        objects = make_scene(rng, width, height)
        index = rasterize(objects, width, height)
        table = np.full(len(objects) + 1, 255, np.uint8)
        table[1:] = [name2label[n].trainId if 0 <= name2label[n].trainId < 255 else 255 for n, _ in objects]
        yield paint(objects, index, rng), table[index]


def voc_palette_flat() -> list:
    return [v for i in range(256) for v in voc_colour(i)]


def expected_ids(encoding: str, train_ids: np.ndarray) -> np.ndarray:
    """The class ids a correct conversion of ``encoding`` gives for a scene's train ids."""
    if encoding in ("binary", "jpeg_binary", "alpha_mask", "scaled_binary"):
        return (train_ids == FOREGROUND).astype(np.uint8)
    if encoding == "voc_palette":
        return np.where(train_ids == 255, 255, train_ids % 21).astype(np.uint8)
    return train_ids


def save_mask(encoding: str, train_ids: np.ndarray, path: Path) -> Path:
    """Write the mask of ``train_ids`` in ``encoding``; returns the path written (JPEG masks get .jpg)."""
    binary = np.where(train_ids == FOREGROUND, 255, 0).astype(np.uint8)
    if encoding == "ids":
        Image.fromarray(train_ids).save(path)
    elif encoding == "binary":
        Image.fromarray(binary).save(path)
    elif encoding == "colour":
        Image.fromarray(colorize(train_ids)).save(path)
    elif encoding == "palette":  # indices = train ids, the Cityscapes colours
        from paddleseg.utils.visualize import get_palette

        im = Image.fromarray(train_ids, mode="P")
        im.putpalette(get_palette(19).ravel().tolist())
        im.save(path)
    elif encoding == "voc_palette":
        im = Image.fromarray(expected_ids("voc_palette", train_ids), mode="P")
        im.putpalette(voc_palette_flat())
        im.save(path)
    elif encoding == "jpeg_binary":
        path = path.with_suffix(".jpg")
        Image.fromarray(binary).save(path, quality=75)
    elif encoding == "jpeg_colour":
        path = path.with_suffix(".jpg")
        Image.fromarray(colorize(train_ids)).save(path, quality=90)
    elif encoding == "sixteen_bit":  # an 8-bit mask widened to 16 bits (values x 257)
        Image.fromarray(train_ids.astype(np.uint16) * 257).save(path)
    elif encoding == "scaled_ids":
        Image.fromarray(np.where(train_ids == 255, 255, train_ids * SCALE).astype(np.uint8)).save(path)
    elif encoding == "scaled_binary":  # a two-class mask saved as 0/128
        Image.fromarray((train_ids == FOREGROUND).astype(np.uint8) * 128).save(path)
    elif encoding == "grey_rgb":
        Image.fromarray(np.repeat(train_ids[..., None], 3, axis=2)).save(path)
    elif encoding == "alpha_mask":  # a cut-out: the mask is in the alpha channel
        rgba = np.zeros(train_ids.shape + (4,), np.uint8)
        rgba[..., :3] = (10, 200, 30)
        rgba[..., 3] = binary
        Image.fromarray(rgba, mode="RGBA").save(path)
    else:
        raise ValueError(encoding)
    return path


def write_set(root: Path, encoding: str, count: int = 6, width: int = 96, height: int = 48, seed: int = 0,
              mask_suffix: str = "") -> Dict[str, np.ndarray]:
    """``root/images/sNN.jpg`` and ``root/masks/sNN<mask_suffix>.png`` (or .jpg); returns stem -> the ids a
    correct conversion gives."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (img, ids) in enumerate(scenes(count, width, height, seed)):
        stem = f"s{i:02d}"
        Image.fromarray(img).save(root / "images" / f"{stem}.jpg", quality=90)
        save_mask(encoding, ids, root / "masks" / f"{stem}{mask_suffix}.png")
        truth[stem] = expected_ids(encoding, ids)
    return truth


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def snapshot(folder: Path) -> Dict[str, str]:
    """Every file and folder under ``folder`` with the SHA-256 of its content (to prove nothing changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}
