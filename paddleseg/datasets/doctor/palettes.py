"""Colour palettes that turn colour masks into class ids: Cityscapes, Pascal VOC, or the user's own file.

    palette = voc_palette()
    palette.lookup[(128, 0, 0)] == 1            # aeroplane; (224, 224, 192), VOC's border, -> 255 (ignored)
    match_palette(colours, [cityscapes_palette(), voc_palette()])   # the first palette holding every colour
    read_palette_file("my_palette.txt")         # one "R G B name" line per class, in id order

A palette file is plain text, one class per line in id order: ``R G B`` (spaces or commas between) or
``#rrggbb``, then the class name (optional; it may contain spaces). Blank lines and lines starting with
``#`` followed by a space are skipped. A line may start with an explicit id, ``ID:`` (e.g. ``255: 224
224 192 border``); a colour given the ignore index (255 unless the tool is told otherwise) marks pixels
that are ignored, not a class. Ids must then run 0..k-1 without gaps.
"""
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from cityscapesscripts.helpers.labels import labels as cityscapes_label_table

from paddleseg.errors import DatasetError
from paddleseg.utils.cityscapes_labels import CITYSCAPES_CLASSES
from paddleseg.utils.cityscapes_labels import PALETTE as CITYSCAPES_TRAIN_COLOURS
from paddleseg.utils.regular_file import read_text

Colour = Tuple[int, int, int]
PathLike = Union[str, Path]
IGNORE = 255
MAX_PALETTE_BYTES = 1 << 20
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


@dataclass
class Palette:
    """Colours to class ids: ``lookup`` maps a colour to its id (``ignore_index`` for ignored colours),
    ``names`` are the class names of ids 0..k-1."""

    name: str
    names: List[str]
    lookup: Dict[Colour, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def colour_of(self, class_id: int) -> Optional[Colour]:
        """The first colour of ``class_id`` (for drawing), or None."""
        return next((c for c, i in self.lookup.items() if i == class_id), None)

    def table(self, ignore_index: int = IGNORE) -> Tuple[np.ndarray, np.ndarray]:
        """(packed colours (M,) uint32, ids (M,) uint8) of every colour; ignored colours get ``ignore_index``."""
        colours = np.array([pack(c) for c in self.lookup], dtype=np.uint32)
        ids = np.array([ignore_index if i == IGNORE else i for i in self.lookup.values()], dtype=np.uint8)
        return colours, ids


def pack(colour: Sequence[int]) -> int:
    """0xRRGGBB of an (r, g, b) colour."""
    r, g, b = (int(v) for v in colour[:3])
    return (r << 16) | (g << 8) | b


def unpack(packed: int) -> Colour:
    packed = int(packed)
    return (packed >> 16) & 255, (packed >> 8) & 255, packed & 255


def hex_colour(colour: Sequence[int]) -> str:
    return "#%02x%02x%02x" % tuple(int(v) for v in colour[:3])


def voc_colour(index: int) -> Colour:
    """Pascal VOC's colour of ``index``: its bits dealt out in turn to R, G and B, from each channel's
    high bit down (index 1 -> (128, 0, 0), 255 -> (224, 224, 192))."""
    rgb = [0, 0, 0]
    for bit in range(8):
        for channel in range(3):
            rgb[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return tuple(rgb)


def voc_palette() -> Palette:
    """The 21 VOC classes; the border colour (index 255) is ignored."""
    lookup = {voc_colour(i): i for i in range(len(VOC_CLASSES))}
    lookup[voc_colour(255)] = IGNORE
    return Palette("Pascal VOC", list(VOC_CLASSES), lookup)


def cityscapes_palette() -> Palette:
    """The 19 Cityscapes training classes by colour (train ids); the colours of the classes without a
    train id (unlabeled, ground, parking, ...) are ignored. Where two labels share a colour (pole and
    polegroup, car and license plate) the training class wins."""
    lookup = {tuple(label.color): IGNORE for label in cityscapes_label_table}
    lookup.update({tuple(colour): i for i, colour in enumerate(CITYSCAPES_TRAIN_COLOURS)})
    return Palette("Cityscapes", list(CITYSCAPES_CLASSES), lookup)


_ID = re.compile(r"^\s*(\d+)\s*:\s*(.*)$")
_HEX = re.compile(r"^#([0-9a-fA-F]{6})\b\s*(.*)$")
_RGB = re.compile(r"^(\d+)\s*[,\s]\s*(\d+)\s*[,\s]\s*(\d+)\b[\s,]*(.*)$")


def parse_palette(text: str, source: str, ignore_index: int = IGNORE) -> Palette:
    """A :class:`Palette` from the text of a palette file (module docstring); DatasetError naming
    ``source`` and the line for anything else."""
    lookup: Dict[Colour, int] = {}
    names: Dict[int, str] = {}
    next_id = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("# ") or line == "#":
            continue
        where = f"{source}:{number}"
        explicit = _ID.match(line)
        class_id = int(explicit.group(1)) if explicit else next_id
        rest = explicit.group(2) if explicit else line
        found = _HEX.match(rest)
        if found:
            colour, name = unpack(int(found.group(1), 16)), found.group(2).strip()
        else:
            found = _RGB.match(rest)
            if not found:
                raise DatasetError(f"{where}: expected 'R G B name' or '#rrggbb name', got {raw.strip()!r}")
            colour, name = tuple(int(found.group(i)) for i in (1, 2, 3)), found.group(4).strip()
            if max(colour) > 255:
                raise DatasetError(f"{where}: colour values must be 0..255, got {colour}")
        if class_id > 255:
            raise DatasetError(f"{where}: class id {class_id} is above 255")
        if colour in lookup:
            raise DatasetError(f"{where}: colour {hex_colour(colour)} is listed twice")
        ignored = class_id == ignore_index
        lookup[colour] = IGNORE if ignored else class_id
        if not ignored:
            names.setdefault(class_id, name or str(class_id))
            next_id = class_id + 1
    if not names:
        raise DatasetError(f"{source}: no class colours in the palette file")
    ids = sorted(names)
    if ids != list(range(len(ids))):
        missing = sorted(set(range(max(ids) + 1)) - set(ids))
        raise DatasetError(f"{source}: class ids must run 0..{len(ids) - 1} without gaps; missing {missing[:10]}")
    return Palette(f"palette file {source}", [names[i] for i in ids], lookup)


def read_palette_file(path: PathLike, ignore_index: int = IGNORE) -> Palette:
    """The palette of ``path`` (module docstring); DatasetError if it cannot be read or parsed."""
    try:
        text = read_text(path, MAX_PALETTE_BYTES)
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise DatasetError(f"--palette {path}: cannot be read ({reason})") from e
    return parse_palette(text, str(path), ignore_index)


@dataclass
class PaletteMatch:
    """How well a palette explains a set of colours."""

    palette: Palette
    matched: int          # colours found in the palette (or within the tolerance of one)
    total: int            # colours looked at
    unknown: List[Colour]  # colours the palette does not hold

    @property
    def complete(self) -> bool:
        return self.matched == self.total and self.total > 0


def nearest(colours: np.ndarray, palette_colours: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """For packed ``colours`` (N,), the index of the nearest of ``palette_colours`` (M,) (Euclidean in
    RGB) and its distance."""
    a = np.stack([(colours >> s) & 255 for s in (16, 8, 0)], axis=1).astype(np.int32)
    b = np.stack([(palette_colours >> s) & 255 for s in (16, 8, 0)], axis=1).astype(np.int32)
    best = np.zeros(len(a), dtype=np.int64)
    dist = np.full(len(a), np.inf)
    for start in range(0, len(a), 4096):  # bounded memory for many colours
        d = np.sqrt(((a[start:start + 4096, None, :] - b[None, :, :]) ** 2).sum(axis=2))
        best[start:start + 4096] = d.argmin(axis=1)
        dist[start:start + 4096] = d.min(axis=1)
    return best, dist


def match_palette(colours: Sequence[int], candidates: Sequence[Palette], tolerance: float = 0.0) -> Tuple[
        Optional[Palette], List[PaletteMatch]]:
    """The first of ``candidates`` that holds every packed colour of ``colours`` (within ``tolerance``,
    the RGB distance allowed for colours from lossy files), and how each candidate fared."""
    colours = np.unique(np.asarray(list(colours), dtype=np.uint32))
    results = []
    for palette in candidates:
        packed, _ = palette.table()
        if tolerance > 0 and len(colours):
            _, dist = nearest(colours, packed)
            known = dist <= tolerance
        else:
            known = np.isin(colours, packed)
        results.append(PaletteMatch(palette, int(known.sum()), len(colours), [unpack(c) for c in colours[~known]]))
    chosen = next((r.palette for r in results if r.complete), None)
    return chosen, results
