"""How the stored values of a label file become class ids: a lookup table for grey values and palette
indices, a colour table for colour masks (exact, or the nearest colour for lossy files).

    ids, changed = LabelMap.values(table).apply(read_raw_label(path))   # uint8 (H, W) ids
    LabelMap.binary(lossy=False).table[[0, 255]]                          # -> [0, 1]

A table entry of -1 marks a value that is no class (out of range): :meth:`LabelMap.apply` refuses a
file holding one. Snapping (lossy files) maps every value to the nearest valid one, and ``changed``
counts the pixels whose stored value was not exactly valid.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from paddleseg.datasets.doctor.encodings import RawLabel
from paddleseg.datasets.doctor.palettes import nearest
from paddleseg.errors import DatasetError

INVALID = -1


@dataclass
class LabelMap:
    """Stored values -> class ids (module docstring). ``table`` (int16, one entry per grey value or palette
    index) or ``colours``/``colour_ids`` (packed colours and their ids); ``exact`` marks the stored values
    that are valid as they are; ``by_colour`` converts a palette PNG through its palette's colours."""

    table: Optional[np.ndarray] = None
    exact: Optional[np.ndarray] = None
    colours: Optional[np.ndarray] = None
    colour_ids: Optional[np.ndarray] = None
    snap: bool = False
    by_colour: bool = False

    # ------------------------------------------------------------------ building
    @classmethod
    def values(cls, valid: Sequence[int], ids: Sequence[int], size: int = 256, snap: bool = False) -> "LabelMap":
        """Grey values ``valid[i]`` -> ``ids[i]``; other values invalid, or (``snap``) the id of the
        nearest valid value."""
        valid = np.asarray(valid, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int16)
        table = np.full(size, INVALID, dtype=np.int16)
        exact = np.zeros(size, dtype=bool)
        keep = valid < size
        table[valid[keep]] = ids[keep]
        exact[valid[keep]] = True
        if snap and len(valid):
            order = np.argsort(valid)
            sorted_valid, sorted_ids = valid[order], ids[order]
            everything = np.arange(size)
            right = np.clip(np.searchsorted(sorted_valid, everything), 0, len(valid) - 1)
            left = np.clip(right - 1, 0, len(valid) - 1)
            pick = np.where(np.abs(everything - sorted_valid[left]) <= np.abs(sorted_valid[right] - everything),
                            left, right)
            table = sorted_ids[pick].astype(np.int16)
        return cls(table=table, exact=exact, snap=snap)

    @classmethod
    def colour_table(cls, colours: np.ndarray, ids: np.ndarray, snap: bool = False,
                     by_colour: bool = False) -> "LabelMap":
        return cls(colours=np.asarray(colours, dtype=np.uint32), colour_ids=np.asarray(ids, dtype=np.uint8),
                   snap=snap, by_colour=by_colour)

    # ------------------------------------------------------------------ using
    def ids_of_keys(self, keys: np.ndarray, palette_keys: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(class id or -1, exactly valid?) for each distinct stored value ``keys`` of a file (its packed
        palette colours ``palette_keys`` when converted by colour)."""
        keys = np.asarray(keys, dtype=np.int64)
        if self.table is not None:
            inside = (keys >= 0) & (keys < len(self.table))
            ids = np.full(len(keys), INVALID, dtype=np.int64)
            ids[inside] = self.table[keys[inside]]
            exact = np.zeros(len(keys), dtype=bool)
            exact[inside] = self.exact[keys[inside]]
            return ids, exact
        return self._colour_ids(palette_keys if self.by_colour else keys)

    def _colour_ids(self, colours: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        colours = np.asarray(colours, dtype=np.uint32)
        order = np.argsort(self.colours)
        sorted_colours = self.colours[order]
        pos = np.clip(np.searchsorted(sorted_colours, colours), 0, len(sorted_colours) - 1)
        exact = sorted_colours[pos] == colours
        ids = np.where(exact, self.colour_ids[order][pos], INVALID).astype(np.int64)
        if self.snap and (~exact).any():
            best, _ = nearest(colours[~exact], self.colours)
            ids[~exact] = self.colour_ids[best]
        return ids, exact

    def apply(self, raw: RawLabel, source: str = "") -> Tuple[np.ndarray, int]:
        """(uint8 (H, W) class ids, pixels changed by snapping) of a label as stored. DatasetError naming
        ``source`` if it holds a value that is no class."""
        values = raw.values
        if self.by_colour:
            rgb = raw.palette[values].astype(np.uint32)
            values = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        keys, inverse = np.unique(values.ravel(), return_inverse=True)
        ids, exact = self._colour_ids(keys) if self.table is None else self.ids_of_keys(keys)
        if (ids == INVALID).any():
            bad = keys[ids == INVALID][:5].tolist()
            raise DatasetError(f"{source}: holds values that are no class ({bad}); it changed since it was checked?")
        counts = np.bincount(inverse, minlength=len(keys))
        changed = int(counts[~exact].sum())
        return ids[inverse].reshape(values.shape).astype(np.uint8), changed
