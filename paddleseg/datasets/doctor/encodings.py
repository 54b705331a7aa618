"""How a label file stores its classes, read from its content: class ids, a 0/255 binary mask, colours,
or a palette PNG; and the quick look training takes at a few labels before it starts.

    raw = read_raw_label("masks/a.png")
    raw.kind        # 'grey' (values), 'palette' (indices of a palette PNG) or 'colour' (packed 0xRRGGBB)
    raw.values      # (H, W): grey values, palette indices or packed colours
    raw.lossy, raw.bits, raw.channels, raw.note    # JPEG?, 16-bit?, colour or alpha channels?

    set_encoding_problem(label_paths, num_classes=2, ignore_index=255)
    # -> "…the labels are binary masks saved as 0/255…: convert them with python tools/check_dataset.py …"

Multi-channel files are reduced to what they hold: three equal channels are grey values; an alpha
channel that is the same everywhere is dropped; when the colour is the same everywhere and only the
alpha channel varies, the mask is in the alpha channel.
"""
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
from PIL import Image

from paddleseg.errors import DatasetError
from paddleseg.transforms.io import MAX_PIXELS, ImageTooLarge, lossy_format, open_image, read_checked

PathLike = Union[str, Path]
ENCODINGS = ("ids", "binary_0_255", "rgb_colours", "palette_png")
SNIFFED_LABELS = 12  # labels training looks at before it starts
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class RawLabel:
    """A label file as it is stored (module docstring)."""

    kind: str
    values: np.ndarray
    mode: str
    format: str
    lossy: Optional[str] = None
    bits: int = 8
    channels: int = 1
    note: str = ""
    palette: Optional[np.ndarray] = None  # (N, 3) uint8 colours of a palette PNG

    @property
    def shape(self):
        return self.values.shape


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _uniform(a: np.ndarray) -> bool:
    """Every element equal."""
    return a.size == 0 or bool((a == a.flat[0]).all())


def _from_channels(arr: np.ndarray, grey_alpha: bool) -> tuple:
    """(kind, values, note) of an (H, W, C) uint8 array: LA (``grey_alpha``), RGB or RGBA."""
    colour = arr[..., :1] if grey_alpha else arr[..., :3]
    alpha = arr[..., -1] if arr.shape[-1] in (2, 4) else None
    notes = []
    if alpha is not None:
        if _uniform(alpha):
            notes.append("alpha channel ignored (the same everywhere)")
        elif (colour == colour[:1, :1]).all():
            return "grey", alpha.copy(), "mask read from the alpha channel (the colour is the same everywhere)"
        else:
            notes.append("alpha channel ignored (it varies)")
    if grey_alpha:
        return "grey", colour[..., 0].copy(), "; ".join(["grey values with an alpha channel"] + notes)
    if (colour[..., 0] == colour[..., 1]).all() and (colour[..., 1] == colour[..., 2]).all():
        return "grey", colour[..., 0].copy(), "; ".join(["grey values stored in 3 equal channels"] + notes)
    return "colour", _pack_rgb(colour), "; ".join(["RGB colour"] + notes)


def read_raw_label(path: PathLike, max_pixels: Optional[int] = MAX_PIXELS) -> RawLabel:
    """``path`` as stored (module docstring). DatasetError if it cannot be decoded (ImageTooLarge above
    ``max_pixels``, before decoding)."""
    data = read_checked(path, max_pixels, "label image")  # a regular file, its header within the limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked above
            with open_image(data) as im:
                lossy = lossy_format(im)  # before load(): WebP's chunk is read from the file, which load() closes
                im.load()
                fmt, mode = im.format or "", im.mode
                bands = len(im.getbands())
                if mode == "P":
                    flat = im.getpalette() or []
                    palette = np.zeros((256, 3), dtype=np.uint8)
                    given = np.asarray(flat[: 768], dtype=np.uint8).reshape(-1, 3)
                    palette[: len(given)] = given
                    return RawLabel("palette", np.asarray(im).copy(), mode, fmt, lossy, 8, 1, "", palette)
                if mode == "1":
                    return RawLabel("grey", np.asarray(im.convert("L")).copy(), mode, fmt, lossy, 1, 1,
                                    "1-bit image read as 0/255")
                if mode == "L":
                    return RawLabel("grey", np.asarray(im).copy(), mode, fmt, lossy)
                if mode in _WIDE_MODES:
                    values = np.asarray(im).astype(np.int64)
                    return RawLabel("grey", values, mode, fmt, lossy, 16, 1, "16-bit grey values")
                if mode == "F":
                    raise DatasetError(f"{path}: a floating-point label image (mode F) cannot hold class ids")
                if mode == "LA":
                    kind, values, note = _from_channels(np.asarray(im), grey_alpha=True)
                    return RawLabel(kind, values, mode, fmt, lossy, 8, 2, note)
                has_alpha = "A" in im.getbands() or "transparency" in im.info
                arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
                kind, values, note = _from_channels(arr, grey_alpha=False)
                return RawLabel(kind, values, mode, fmt, lossy, 8, bands, note)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{path}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated or corrupt files
        raise DatasetError(f"{path}: unreadable or truncated label image ({e})") from e


def is_binary_0_255(values: Sequence[int]) -> bool:
    """True when the distinct grey ``values`` are 0 and 255 only, 255 among them."""
    present = set(int(v) for v in values)
    return 255 in present and present <= {0, 255}


# ------------------------------------------------------------------------------------------------
# the look training takes before it starts
# ------------------------------------------------------------------------------------------------
def _common_folder(paths: Sequence[str]) -> str:
    try:
        return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    except ValueError:
        return os.path.dirname(os.path.abspath(paths[0]))


def convert_command(image_paths: Sequence[str], label_paths: Sequence[str]) -> str:
    """The check_dataset.py command that converts a data set with these files."""
    images, labels = _common_folder(image_paths), _common_folder(label_paths)
    out = os.path.join(os.path.dirname(labels) or ".", "converted")
    return (f"python tools/check_dataset.py --images {images} --labels {labels} --convert {out} "
            f"--write_config {out}.yml")


def scaled_ids_step(present: Sequence[int], num_classes: Optional[int], ignore_index: int) -> Optional[int]:
    """The step (2 or more) that the grey values ``present`` are class ids times: every value but 0 and
    the ignore index is a multiple of it and, with ``num_classes``, some are outside 0..num_classes-1
    and dividing brings every one inside. None otherwise."""
    ids = sorted(int(v) for v in present if v != ignore_index and v > 0)
    if not ids or (num_classes and ids[-1] < num_classes):
        return None
    step = math.gcd(*ids)
    return step if step >= 2 and not (num_classes and ids[-1] // step >= num_classes) else None


def set_encoding_problem(pairs: Sequence[tuple], num_classes: int, ignore_index: int = 255,
                         sample: int = SNIFFED_LABELS) -> Optional[str]:
    """A one-line message when the labels of ``pairs`` ((image, label) paths) are colour masks or
    binary 0/255 masks rather than class ids, judged from ``sample`` labels spread over the set; None
    otherwise (also when a sampled label cannot be read: the full check names that file)."""
    labelled = [(image, label) for image, label in pairs if label is not None]
    if not labelled:
        return None
    picks = sorted(set(np.linspace(0, len(labelled) - 1, min(sample, len(labelled))).round().astype(int)))
    chosen = [labelled[i] for i in picks]
    kinds: List[str] = []
    for _, label in chosen:
        try:
            raw = read_raw_label(label)
        except DatasetError:
            return None
        high = int(raw.values.max(initial=0))
        if raw.kind == "colour":
            kinds.append("colour")
            continue
        if raw.kind != "grey" or raw.bits > 8 or 0 < high < min(num_classes, 255):  # ids: the common case
            return None
        present = np.flatnonzero(np.bincount(raw.values.ravel(), minlength=256))
        if high == 0:
            kinds.append("empty")
        elif is_binary_0_255(present):
            kinds.append("binary")
        else:
            step = scaled_ids_step(present, num_classes, ignore_index)
            if step is None:
                return None  # values out of range: the full check names them
            kinds.append(f"scaled {step}")
    images, labels = [image for image, _ in labelled], [label for _, label in labelled]
    command = convert_command(images, labels)
    example = chosen[0][1]
    if kinds.count("colour") == len(kinds):
        return (f"{_common_folder(labels)}: the labels are RGB colour masks, not class ids ({len(kinds)} of "
                f"{len(kinds)} sampled files, e.g. {example}); convert them to class ids with: {command}")
    scaled = {k for k in kinds if k.startswith("scaled")}
    if len(scaled) == 1 and set(kinds) <= scaled | {"empty"}:
        step = int(scaled.pop().split()[1])
        example = chosen[kinds.index(f"scaled {step}")][1]
        return (f"{_common_folder(labels)}: the labels are class ids times {step}, saved to be seen (every value "
                f"of the {len(kinds)} sampled files is a multiple of {step}, e.g. {example}), so they fall outside "
                f"num_classes {num_classes}; convert them with: {command}")
    if "colour" not in kinds and "binary" in kinds and num_classes >= 2:
        example = chosen[kinds.index("binary")][1]
        effect = (f"with ignore_index {ignore_index} every foreground pixel is ignored and nothing is learned"
                  if ignore_index == 255 else f"255 is not a class id below num_classes {num_classes}")
        return (f"{_common_folder(labels)}: the labels are binary masks saved as 0/255 instead of class ids 0/1 "
                f"({kinds.count('binary')} of {len(kinds)} sampled files hold only 0 and 255, e.g. {example}): "
                f"{effect}; convert them with: {command}")
    return None
