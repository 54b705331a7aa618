"""Reading every image and label of a data set once, in worker processes: what each file is and holds.

    scans = scan_pairs(pairs, workers=4)     # one PairScan per (image, label), in order
    scans[0].kinds, scans[0].keys, scans[0].counts   # 'grey': values, 'colour': packed colours, with pixel counts

Only summaries come back from the workers (sizes, a hash of the image's pixels, a histogram of the
label's values or colours), never the pixels.
"""
import hashlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from paddleseg.datasets.doctor.encodings import read_raw_label
from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError
from paddleseg.transforms.io import read_image

MAX_COLOURS = 4096  # distinct colours kept per label (JPEG colour masks have thousands; the rest are summed)


@dataclass
class PairScan:
    """One (image, label) pair as read: sizes are (height, width); ``keys``/``counts`` the distinct grey
    values, palette indices or packed colours of the label and their pixel counts; ``palette_keys`` the
    packed colours of a palette PNG's used indices."""

    image: str
    label: str
    image_size: Optional[Tuple[int, int]] = None
    image_error: Optional[str] = None
    image_hash: Optional[str] = None
    label_size: Optional[Tuple[int, int]] = None
    label_error: Optional[str] = None
    kind: str = ""
    mode: str = ""
    format: str = ""
    lossy: Optional[str] = None
    bits: int = 8
    channels: int = 1
    note: str = ""
    keys: Optional[np.ndarray] = None
    counts: Optional[np.ndarray] = None
    palette_keys: Optional[np.ndarray] = None
    distinct: int = 0       # distinct values or colours before MAX_COLOURS
    other_pixels: int = 0   # pixels of the colours left out

    @property
    def readable(self) -> bool:
        return self.image_error is None and self.label_error is None

    @property
    def pixels(self) -> int:
        return int(self.counts.sum()) + self.other_pixels if self.counts is not None else 0


def histogram(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct values of an integer array and their counts (bincount for 8-bit values: faster)."""
    if values.dtype == np.uint8:
        counts = np.bincount(values.ravel(), minlength=256)
        keys = np.flatnonzero(counts)
        return keys.astype(np.int64), counts[keys].astype(np.int64)
    keys, counts = np.unique(values.ravel(), return_counts=True)
    return keys.astype(np.int64), counts.astype(np.int64)


def image_digest(img: np.ndarray) -> str:
    """A hash of an image's pixels and shape: the same picture saved twice, under any name or format
    without loss, has the same digest."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(img.shape).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def scan_pair(pair: Tuple[str, str]) -> PairScan:
    """Read one pair (module docstring); problems are recorded, not raised."""
    image, label = pair
    scan = PairScan(image, label)
    try:
        img = read_image(image)
        scan.image_size, scan.image_hash = img.shape[:2], image_digest(img)
    except DatasetError as e:
        scan.image_error = str(e)
    try:
        raw = read_raw_label(label)
    except DatasetError as e:
        scan.label_error = str(e)
        return scan
    scan.label_size = raw.shape[:2]
    scan.kind, scan.mode, scan.format, scan.lossy = raw.kind, raw.mode, raw.format, raw.lossy
    scan.bits, scan.channels, scan.note = raw.bits, raw.channels, raw.note
    keys, counts = histogram(raw.values)
    scan.distinct = len(keys)
    if len(keys) > MAX_COLOURS:
        top = np.sort(np.argsort(counts)[::-1][:MAX_COLOURS])
        scan.other_pixels = int(counts.sum() - counts[top].sum())
        keys, counts = keys[top], counts[top]
    scan.keys, scan.counts = keys, counts
    if raw.kind == "palette":
        rgb = raw.palette[keys].astype(np.uint32)
        scan.palette_keys = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return scan


def scan_pairs(pairs: Sequence[Tuple[str, str]], workers: Optional[int] = None,
               progress: bool = True) -> List[PairScan]:
    return parallel_map(scan_pair, pairs, workers, "reading pairs", progress)
