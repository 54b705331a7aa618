"""From the scans of every pair to a diagnosis: the set's encoding, its classes and their pixels, the
class weights, how each label file becomes class ids, and the findings.

    diagnosis = diagnose(scans, pairing, Options(num_classes=None, ignore_index=255, labels_dir="masks"))
    diagnosis.encoding        # 'ids' | 'binary_0_255' | 'rgb_colours' | 'palette_png' | 'mixed'
    diagnosis.findings        # [Finding('binary_0_255', files, detail), ...]
    diagnosis.maps[i]         # LabelMap turning pair i's label into ids, None when it cannot be converted

Decisions made for the whole set, not file by file:

- A grey mask holding only 0 and 255 is a binary mask saved as 0/255 when the set has two classes
  (``--num_classes 2``, or no other file holds an id above 1); in a set with more classes it is a
  background-only mask with ignored pixels.
- Colours are looked up in ``--palette`` if given, else in the Cityscapes and the VOC palettes; the
  first palette holding every colour is the set's. Colours of lossy (JPEG) files are compared within
  :data:`LOSSY_TOLERANCE` and snapped to the nearest palette colour.
- A palette PNG is read by its indices when they agree with a known palette (or its palettes agree
  among the files); otherwise by its colours.
- 16-bit values that are 8-bit values times 257 are divided back; other values above 255 are out of
  range.
- Grey ids that are all multiples of one step of 2 or more (ids times 10, 0/100/200, 0/128: masks saved
  to be seen) are class ids times that step (``scaled_ids``), divided back on conversion. Without
  ``--num_classes`` this is assumed whenever the values share such a step; with it, only when some values
  are outside its range and dividing brings them all in. Real ids that happen to share a step (only even
  classes present) are kept by giving ``--num_classes``.
- JPEG grey masks are snapped to the nearest valid value: 0..num_classes-1 and the ignore index (0 and
  255 for a binary set). A set of JPEG id masks alone needs ``--num_classes``: its noise cannot be told
  from ids otherwise.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from paddleseg.datasets.class_weights import median_frequency_weights, weights_from_histogram
from paddleseg.datasets.doctor.encodings import is_binary_0_255, scaled_ids_step
from paddleseg.datasets.doctor.label_maps import INVALID, LabelMap
from paddleseg.datasets.doctor.pairing import Pairing
from paddleseg.datasets.doctor.palettes import (
    IGNORE,
    Palette,
    PaletteMatch,
    cityscapes_palette,
    hex_colour,
    match_palette,
    unpack,
    voc_palette,
)
from paddleseg.datasets.doctor.scan import PairScan

ERROR, WARNING = "error", "warning"
# kind -> severity: an error breaks training or silently spoils it; a warning is worth a look
SEVERITY = {
    "missing_label": ERROR, "missing_image": WARNING, "size_mismatch": ERROR, "out_of_range": ERROR,
    "unreadable": ERROR, "lossy_label": ERROR, "sixteen_bit": ERROR, "multi_channel": ERROR,
    "binary_0_255": ERROR, "scaled_ids": ERROR, "rgb_colours": ERROR, "palette_mismatch": ERROR,
    "empty_class": WARNING,
    "duplicate_image": WARNING,
}
LISTED_FILES = 5          # files named per finding in the table and the error lines
JSON_FILES = 20           # files named per finding in the JSON file
LOSSY_TOLERANCE = 40.0    # RGB distance within which a JPEG colour counts as a palette colour
DOMINANT_SHARE = 0.005    # a colour or value of at least this share of a lossy file's pixels is "meant"
PEAK_SPACING = 8          # grey values of a lossy file closer than this to a more frequent one are its noise


@dataclass
class Finding:
    """One kind of problem, the files it concerns (all of them, in order) and what it means."""

    kind: str
    files: List[str]
    detail: str
    fixed_by_convert: bool = False

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def named_files(self, count: int = LISTED_FILES) -> str:
        shown = ", ".join(self.files[:count])
        return shown + (f" and {len(self.files) - count} more" if len(self.files) > count else "")

    def to_json(self) -> Dict:
        return {"kind": self.kind, "severity": self.severity, "count": len(self.files),
                "files": self.files[:JSON_FILES], "detail": self.detail, "fixed_by_convert": self.fixed_by_convert}


@dataclass
class Options:
    """What the user told the doctor: the class count (None: infer), the ignore index, their palette
    (None: try the known ones) and the label folder (named by set-wide findings)."""

    num_classes: Optional[int] = None
    ignore_index: int = IGNORE
    palette: Optional[Palette] = None
    labels_dir: str = ""


@dataclass
class Diagnosis:
    """Everything the doctor concluded (module docstring). ``maps[i]`` is None and ``skipped[i]`` says
    why when pair ``i`` cannot be converted."""

    scans: List[PairScan]
    missing_label: List[str]
    missing_image: List[str]
    encoding: str
    num_classes: int
    ignore_index: int
    palette: Optional[Palette]
    class_names: Optional[List[str]]
    maps: List[Optional[LabelMap]]
    skipped: Dict[int, str]
    class_pixels: np.ndarray
    present_pixels: np.ndarray
    class_weights: Dict[str, Optional[List[float]]]
    findings: List[Finding] = field(default_factory=list)
    snapped_pixels: int = 0

    @property
    def has_errors(self) -> bool:
        return any(f.severity == ERROR for f in self.findings)

    @property
    def convertible(self) -> List[int]:
        return [i for i, m in enumerate(self.maps) if m is not None and i not in self.skipped]

    def names(self) -> List[str]:
        return list(self.class_names) if self.class_names else [str(i) for i in range(self.num_classes)]

    def to_json(self) -> Dict:
        return {"pairs": len(self.scans), "encoding": self.encoding, "num_classes": self.num_classes,
                "ignore_index": self.ignore_index, "class_names": self.class_names,
                "palette": self.palette.name if self.palette else None,
                "class_pixels": [int(v) for v in self.class_pixels], "class_weights": self.class_weights,
                "findings": [f.to_json() for f in self.findings]}


# ------------------------------------------------------------------------------------------------
# per-file facts
# ------------------------------------------------------------------------------------------------
def grey_peaks(keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The values a lossy grey file means: from the most frequent down, each value holding at least
    :data:`DOMINANT_SHARE` of the pixels and more than :data:`PEAK_SPACING` away from every value taken
    before it (JPEG spreads each flat value over its neighbours)."""
    total = counts.sum()
    peaks: List[int] = []
    for i in np.argsort(-counts, kind="stable"):
        if counts[i] < DOMINANT_SHARE * total:
            break
        if all(abs(int(keys[i]) - p) > PEAK_SPACING for p in peaks):
            peaks.append(int(keys[i]))
    return np.array(sorted(peaks), dtype=np.int64)


def dominant_colours(scan: PairScan) -> np.ndarray:
    keep = scan.counts >= DOMINANT_SHARE * scan.pixels
    return scan.keys[keep]


def sixteen_bit_divisor(keys: np.ndarray) -> Optional[int]:
    """257 when every value is an 8-bit value times 257 (an 8-bit mask widened), 1 when every value fits
    8 bits, None when values above 255 are real."""
    if len(keys) and (keys % 257 == 0).all() and keys.max() > 255:
        return 257
    return 1 if not len(keys) or keys.max() <= 255 else None


def _counts_text(pairs: Sequence[Tuple[object, int]], limit: int = 10) -> str:
    shown = ", ".join(f"{k} ({c:,} px)" for k, c in pairs[:limit])
    return shown + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


# ------------------------------------------------------------------------------------------------
# the diagnosis
# ------------------------------------------------------------------------------------------------
class _Builder:
    """The steps of :func:`diagnose`, sharing the scans and the options."""

    def __init__(self, scans: List[PairScan], pairing: Pairing, options: Options):
        self.scans, self.pairing, self.options = scans, pairing, options
        self.ignore = options.ignore_index
        self.findings: List[Finding] = []
        self.skipped: Dict[int, str] = {}
        self.labelled = [i for i, s in enumerate(scans) if s.label_error is None]
        self.grey = [i for i in self.labelled if scans[i].kind == "grey"]
        self.colour = [i for i in self.labelled if scans[i].kind == "colour"]
        self.palette_files = [i for i in self.labelled if scans[i].kind == "palette"]
        self.divisor: Dict[int, Optional[int]] = {}
        self.values: Dict[int, np.ndarray] = {}  # grey files: the values they mean (8-bit, lossy peaks)
        self.step = 1                  # grey ids are stored times this (scaled_ids)
        self.scaled: List[int] = []    # the grey files read with it

    def add(self, kind: str, files: List[str], detail: str, fixed: bool = False) -> None:
        if files:
            self.findings.append(Finding(kind, files, detail, fixed))

    # -------------------------------------------------------------- structure
    def structure(self) -> None:
        p, scans = self.pairing, self.scans
        self.add("missing_label", p.missing_label,
                 f"{len(p.missing_label)} image(s) have no label (a label pairs by relative path and stem, or the "
                 f"stem plus _mask, _label, _gt or _gtFine_labelTrainIds); they are left out of a conversion")
        self.add("missing_image", p.missing_image, f"{len(p.missing_image)} label(s) have no image")
        bad, messages = [], []
        for i, s in enumerate(scans):
            for path, error in ((s.image, s.image_error), (s.label, s.label_error)):
                if error:
                    bad.append(path)
                    messages.append(error)
            if not s.readable:
                self.skipped[i] = "unreadable"
        self.add("unreadable", bad, f"{len(bad)} file(s) cannot be decoded: " + " | ".join(messages[:3])
                 + (" | ..." if len(messages) > 3 else ""))
        mismatched = [i for i in range(len(scans)) if scans[i].readable and scans[i].image_size != scans[i].label_size]
        for i in mismatched:
            self.skipped[i] = "size mismatch"
        examples = "; ".join(f"{scans[i].label}: {scans[i].label_size[1]}x{scans[i].label_size[0]}, image "
                             f"{scans[i].image_size[1]}x{scans[i].image_size[0]}" for i in mismatched[:3])
        self.add("size_mismatch", [scans[i].label for i in mismatched],
                 f"{len(mismatched)} label(s) differ in size from their image ({examples})")
        groups = defaultdict(list)
        for s in scans:
            if s.image_hash:
                groups[s.image_hash].append(s.image)
        same = [g for g in groups.values() if len(g) > 1]
        self.add("duplicate_image", [f for g in same for f in g],
                 f"{len(same)} group(s) of images with identical pixels, e.g. {' = '.join(same[0][:3])}"
                 if same else "")

    # -------------------------------------------------------------- storage
    def storage(self) -> None:
        scans = self.scans
        wide = [i for i in self.labelled if scans[i].bits > 8]
        notes = []
        for i in wide:
            self.divisor[i] = sixteen_bit_divisor(scans[i].keys)
        scaled = sum(1 for i in wide if self.divisor[i] == 257)
        fits = sum(1 for i in wide if self.divisor[i] == 1)
        real = [i for i in wide if self.divisor[i] is None]
        if scaled:
            notes.append(f"{scaled} hold 8-bit values times 257")
        if fits:
            notes.append(f"{fits} hold values that fit 8 bits")
        if real:
            notes.append(f"{len(real)} hold values above 255 (out_of_range)")
        self.add("sixteen_bit", [scans[i].label for i in wide],
                 f"{len(wide)} label(s) are 16-bit images, which training does not read: {'; '.join(notes)}",
                 fixed=not real)
        multi = [i for i in self.labelled if scans[i].channels > 1 or scans[i].mode == "1"]
        kinds = defaultdict(int)
        for i in multi:
            kinds[scans[i].note or scans[i].mode] += 1
        self.add("multi_channel", [scans[i].label for i in multi],
                 f"{len(multi)} label(s) are not single-channel 8-bit images, which training reads: "
                 + "; ".join(f"{n} {k}" for k, n in sorted(kinds.items())), fixed=True)
        for i in self.grey:
            d = self.divisor.get(i, 1)
            if d is None:
                continue
            keys = scans[i].keys // d
            self.values[i] = grey_peaks(keys, scans[i].counts) if scans[i].lossy else keys

    # -------------------------------------------------------------- encodings and classes
    def classes(self) -> None:
        opts, scans = self.options, self.scans
        binary_like = {i for i, v in self.values.items() if is_binary_0_255(v)}
        other_ids = [int(v) for i, vals in self.values.items() if i not in binary_like
                     for v in vals if v != self.ignore]
        self.palette_by_index, self.palette_for_pngs = self._palette_pngs()
        if self.palette_by_index:
            other_ids += [int(k) for i in self.palette_files for k in scans[i].keys if k != self.ignore]
        two_classes = opts.num_classes == 2 if opts.num_classes else max(other_ids, default=-1) <= 1
        self.binary = sorted(binary_like) if two_classes else []
        self.step = self._id_step(binary_like)
        if self.step > 1:
            self.scaled = [i for i in self.values if i not in binary_like]
            grey_ids = {int(v) for i in self.scaled for v in self.values[i] if v != self.ignore}
            other_ids = [v for v in other_ids if v not in grey_ids] + [v // self.step for v in grey_ids]
        self.colour_palette, self.colour_matches = self._colour_palette()
        self.palette = opts.palette or self.colour_palette or self.palette_for_pngs
        if opts.num_classes:
            k = opts.num_classes
        else:
            sizes = [max(other_ids, default=-1) + 1]
            if self.binary:
                sizes.append(2)
            if self.palette is not None and (self.colour or self.palette_files):
                sizes.append(self.palette.num_classes)
            k = max(sizes)
        self.num_classes = k
        names = list(self.palette.names) if self.palette is not None else None
        if names is not None and (self.colour or self.palette_files or opts.palette):
            names = (names + [str(i) for i in range(len(names), k)])[:k]
        else:
            names = None
        self.class_names = names
        file_kinds = set()
        for i in self.labelled:
            kind = scans[i].kind
            file_kinds.add({"colour": "rgb_colours", "palette": "palette_png"}.get(
                kind, "binary_0_255" if i in self.binary else "ids"))
        self.encoding = file_kinds.pop() if len(file_kinds) == 1 else ("mixed" if file_kinds else "unknown")

    def _id_step(self, binary_like: set) -> int:
        """The step that every grey id of the exactly stored (not lossy) non-binary files is a multiple of,
        when the masks look saved to be seen (module docstring); 1 otherwise."""
        files = [i for i in self.values if i not in binary_like]
        if not files or any(self.scans[i].lossy for i in files):
            return 1
        grey = {int(v) for i in files for v in self.values[i]}
        return scaled_ids_step(grey, self.options.num_classes, self.ignore) or 1

    def _palette_pngs(self) -> Tuple[bool, Optional[Palette]]:
        """(read palette PNGs by their indices?, the known palette their colours match)."""
        scans = self.scans
        if not self.palette_files:
            return True, None
        pairs = {(int(k), int(c)) for i in self.palette_files for k, c in zip(scans[i].keys, scans[i].palette_keys)}
        colours_of = defaultdict(set)
        for index, colour in pairs:
            colours_of[index].add(colour)
        consistent = all(len(c) == 1 for c in colours_of.values())
        candidates = [self.options.palette] if self.options.palette else [cityscapes_palette(), voc_palette()]
        matched, _ = match_palette([c for _, c in pairs], candidates)
        files = [scans[i].label for i in self.palette_files]
        if matched is not None:
            agree = all(matched.lookup[unpack(c)] == index for index, c in pairs)
            if agree:
                return True, matched
            self.add("palette_mismatch", files,
                     f"the indices of the palette PNGs are not the class ids of their colours in the {matched.name} "
                     f"palette (saved with another palette order?); --convert reads them by colour", fixed=True)
            return False, matched
        if not consistent:
            self.add("palette_mismatch", files,
                     "the palette PNGs give the same index different colours and their colours match no known "
                     "palette; their indices are used as class ids (give --palette FILE to read them by colour)")
        return True, None

    def _colour_palette(self) -> Tuple[Optional[Palette], List[PaletteMatch]]:
        if not self.colour:
            return None, []
        scans = self.scans
        candidates = [self.options.palette] if self.options.palette else [cityscapes_palette(), voc_palette()]
        exact = {int(c) for i in self.colour if not scans[i].lossy for c in scans[i].keys}
        lossy = {int(c) for i in self.colour if scans[i].lossy for c in dominant_colours(scans[i])}
        if exact:
            chosen, results = match_palette(exact, candidates)
            if chosen is not None and lossy and not match_palette(lossy, [chosen], LOSSY_TOLERANCE)[0]:
                chosen = None
        else:
            chosen, results = match_palette(lossy, candidates, LOSSY_TOLERANCE)
        return chosen, results

    # -------------------------------------------------------------- label maps and pixels
    def maps(self) -> List[Optional[LabelMap]]:
        scans, k, ignore = self.scans, self.num_classes, self.ignore
        ids = list(range(k)) + ([ignore] if ignore >= k else [])
        maps: List[Optional[LabelMap]] = [None] * len(scans)
        cache: Dict[tuple, LabelMap] = {}

        def shared(key: tuple, build) -> LabelMap:
            if key not in cache:
                cache[key] = build()
            return cache[key]

        for i in self.labelled:
            s = scans[i]
            snap = bool(s.lossy)
            if s.kind == "grey":
                d = self.divisor.get(i, 1)
                if d is None:
                    continue
                size = 256 if s.bits <= 8 else 65536
                if i in self.binary:
                    maps[i] = shared(("binary", d, size, snap),
                                     lambda: LabelMap.values([0, 255 * d], [0, 1], size, snap))
                elif i in self.scaled:
                    stored = [v * self.step * d for v in range(k)] + ([ignore * d] if ignore >= k else [])
                    maps[i] = shared(("scaled", self.step, d, size, snap),
                                     lambda: LabelMap.values(stored, ids, size, snap))
                else:
                    maps[i] = shared(("ids", d, size, snap),
                                     lambda: LabelMap.values([v * d for v in ids], ids, size, snap))
            elif s.kind == "palette":
                if self.palette_by_index:
                    maps[i] = shared(("ids", 1, 256, snap), lambda: LabelMap.values(ids, ids, 256, snap))
                else:
                    colours, colour_ids = self.palette_for_pngs.table(ignore)
                    maps[i] = shared(("palette-colour",), lambda: LabelMap.colour_table(
                        colours, colour_ids, snap=False, by_colour=True))
            elif s.kind == "colour" and self.colour_palette is not None:
                colours, colour_ids = self.colour_palette.table(ignore)
                maps[i] = shared(("colour", snap), lambda: LabelMap.colour_table(colours, colour_ids, snap))
            if maps[i] is None:
                self.skipped.setdefault(i, "no class ids for its values")
        return maps

    def pixels(self, maps: List[Optional[LabelMap]]) -> Tuple[np.ndarray, np.ndarray, int]:
        scans, k, ignore = self.scans, self.num_classes, self.ignore
        class_pixels = np.zeros(k, dtype=np.int64)
        present = np.zeros(k, dtype=np.int64)
        out_values: Dict[object, int] = defaultdict(int)
        out_files, snapped = [], 0
        for i in self.labelled:
            s, m = scans[i], maps[i]
            if m is None:
                if s.kind == "grey" and self.divisor.get(i, 1) is None:
                    out_files.append(s.label)
                    for v, c in zip(s.keys, s.counts):
                        if v > 255:
                            out_values[int(v)] += int(c)
                continue
            ids, exact = m.ids_of_keys(s.keys, s.palette_keys)
            bad = ids == INVALID
            if bad.any():
                out_files.append(s.label)
                self.skipped[i] = "values out of range"
                shown = s.keys[bad] // (self.divisor.get(i) or 1) if s.kind == "grey" else s.keys[bad]
                for v, c in zip(shown, s.counts[bad]):
                    out_values[hex_colour(unpack(v)) if s.kind == "colour" else int(v)] += int(c)
                continue
            snapped += int(s.counts[~exact].sum()) + s.other_pixels
            counted = (ids != ignore) & (ids < k)
            per_class = np.bincount(ids[counted], weights=s.counts[counted], minlength=k)[:k].astype(np.int64)
            class_pixels += per_class
            present[per_class > 0] += s.pixels
        if out_files:
            values = sorted(out_values.items(), key=lambda kv: -kv[1])
            told = "--num_classes" if self.options.num_classes else "the classes found"
            self.add("out_of_range", out_files,
                     f"{len(out_files)} label(s) hold values outside 0..{k - 1} ({told}) and ignore index {ignore}: "
                     f"{_counts_text(values)}; {sum(out_values.values()):,} pixels in all; they are left out of a "
                     f"conversion")
        return class_pixels, present, snapped

    # -------------------------------------------------------------- encoding findings
    def encoding_findings(self, class_pixels: np.ndarray, snapped: int) -> None:
        scans, k = self.scans, self.num_classes
        lossy = [i for i in self.labelled if scans[i].lossy]
        formats = sorted({scans[i].lossy for i in lossy})
        total = sum(scans[i].pixels for i in lossy)
        self.add("lossy_label", [scans[i].label for i in lossy],
                 f"{len(lossy)} label(s) stored as {', '.join(formats)}: lossy compression changes class ids near "
                 f"every edge and invents new values; {snapped:,} of their {total:,} pixels "
                 f"({100 * snapped / max(total, 1):.1f}%) are no valid value, and --convert snaps them to the nearest "
                 f"valid one", fixed=True)
        self.add("binary_0_255", [scans[i].label for i in self.binary],
                 f"{len(self.binary)} mask(s) hold only 0 and 255: a binary mask saved for viewing; with ignore_index "
                 f"{self.ignore} " + ("its foreground is ignored and nothing is learned" if self.ignore == 255 else
                                      "255 is no class") + "; --convert maps 255 to class 1", fixed=True)
        if self.scaled:
            seen = sorted({int(v) for i in self.scaled for v in self.values[i] if v != self.ignore})
            shown = ", ".join(map(str, seen[:12])) + (" ..." if len(seen) > 12 else "")
            self.add("scaled_ids", [scans[i].label for i in self.scaled],
                     f"{len(self.scaled)} mask(s) hold values that are all multiples of {self.step} ({shown}): "
                     f"class ids times {self.step}, saved to be seen; read as they are they would be "
                     f"{seen[-1] + 1} mostly empty classes; --convert divides them by {self.step} (classes "
                     f"0..{k - 1}); if these values are the class ids themselves, give --num_classes", fixed=True)
        if self.colour:
            distinct = len({int(c) for i in self.colour if not scans[i].lossy for c in scans[i].keys}
                           | {int(c) for i in self.colour if scans[i].lossy for c in dominant_colours(scans[i])})
            if self.colour_palette is not None:
                detail = (f"{len(self.colour)} colour mask(s) with {distinct} distinct colours; they match the "
                          f"{self.colour_palette.name} palette ({self.colour_palette.num_classes} classes); "
                          f"--convert turns them into class ids")
            else:
                tried = ", ".join(f"{r.palette.name}: {r.matched} of {r.total}" for r in self.colour_matches)
                unknown = min(self.colour_matches, key=lambda r: len(r.unknown)).unknown if self.colour_matches else []
                detail = (f"{len(self.colour)} colour mask(s) with {distinct} distinct colours that match no "
                          f"{'given' if self.options.palette else 'known'} palette ({tried} colours); not in it: "
                          f"{', '.join(hex_colour(c) for c in unknown[:10])}{' ...' if len(unknown) > 10 else ''}; "
                          f"give --palette FILE (one 'R G B name' line per class, in id order)")
            self.add("rgb_colours", [scans[i].label for i in self.colour], detail,
                     fixed=self.colour_palette is not None)
        if self.labelled and k:
            names = self.class_names or [str(i) for i in range(k)]
            empty = [i for i in range(k) if class_pixels[i] == 0]
            listed = ", ".join(f"{i} ({names[i]})" if names[i] != str(i) else str(i) for i in empty[:20])
            self.add("empty_class", [self.options.labels_dir or "labels"] if empty else [],
                     f"{len(empty)} of {k} class ids have no pixel: {listed}{' ...' if len(empty) > 20 else ''}")


def diagnose(scans: List[PairScan], pairing: Pairing, options: Options) -> Diagnosis:
    """The diagnosis of a scanned set (module docstring)."""
    b = _Builder(scans, pairing, options)
    b.structure()
    b.storage()
    b.classes()
    maps = b.maps()
    class_pixels, present, snapped = b.pixels(maps)
    b.encoding_findings(class_pixels, snapped)
    weights: Dict[str, Optional[List[float]]] = {"espnet": None, "median_frequency": None}
    if class_pixels.sum() > 0:
        weights["espnet"] = [round(float(w), 6) for w in weights_from_histogram(class_pixels)]
        weights["median_frequency"] = [round(float(w), 6) for w in median_frequency_weights(class_pixels, present)]
    order = list(SEVERITY)
    findings = sorted(b.findings, key=lambda f: (f.severity != ERROR, order.index(f.kind)))
    return Diagnosis(scans, pairing.missing_label, pairing.missing_image, b.encoding, b.num_classes, b.ignore,
                     b.palette, b.class_names, maps, b.skipped, class_pixels, present, weights, findings, snapped)
