"""Content checks of a data set: every image readable, its label the same size and within the classes.

Structural checks (folders, file pairs) belong to each dataset's ``validate``; this module reads the
files. ``tools/check_dataset.py`` runs it over a whole data set; training runs it before the first
iteration with a :class:`CheckCache`, so each file is read once, not at every start or resume.
"""
import json
import os
from functools import partial
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.datasets.doctor.encodings import set_encoding_problem
from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError
from paddleseg.transforms.io import decode, read_checked, read_label

FilePair = Tuple[str, Optional[str]]
MAX_LISTED = 10


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of a fully decoded image; raises DatasetError if it cannot be decoded, and
    :class:`~paddleseg.transforms.io.ImageTooLarge` (before decoding) if its header claims more pixels
    than training and evaluation read. Read as :mod:`paddleseg.deploy.images` reads (any file name)."""
    return decode(read_checked(path), path, cv2.IMREAD_UNCHANGED).shape[:2]


def bad_values_message(counts: np.ndarray, num_classes: int, ignore_index: int) -> Optional[str]:
    """'values 19 (12 px), 40 (3 px)' for the label values outside 0..num_classes-1 and ignore_index."""
    valid = np.zeros(len(counts), dtype=bool)
    valid[:num_classes] = True
    if 0 <= ignore_index < len(counts):
        valid[ignore_index] = True
    bad = np.flatnonzero((counts > 0) & ~valid)
    if not len(bad):
        return None
    listed = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:MAX_LISTED])
    more = f" and {len(bad) - MAX_LISTED} more values" if len(bad) > MAX_LISTED else ""
    return (f"label values outside 0..{num_classes - 1} and {ignore_index}: {listed}{more}; "
            f"{int(counts[bad].sum())} pixels in all")


def check_pair(pair: FilePair, num_classes: int, ignore_index: int) -> Optional[str]:
    """The problem with one (image, label) pair as a message naming the file, or None if it is fine."""
    img_path, label_path = pair
    try:
        size = image_size(img_path)
        if label_path is None:
            return None
        label = read_label(label_path)
    except DatasetError as e:
        return str(e)
    if label.shape[:2] != size:
        return (f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from the image's "
                f"{size[1]}x{size[0]} ({img_path})")
    message = bad_values_message(np.bincount(label.ravel(), minlength=256), num_classes, ignore_index)
    return f"{label_path}: {message}" if message else None


def default_cache_file() -> Path:
    """Where training remembers the samples that passed: ``$XDG_CACHE_HOME`` (or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "paddleseg-espnetv2" / "checked_samples.json"


class CheckCache:
    """Samples that passed :func:`check_pair`, each remembered with the stamps of its files (size,
    modification time, status-change time and inode) and the class count it was checked for: a
    training run reads every file once, not at every start or resume, and a file that changed is
    checked again. Size and mtime alone are not enough: a same-size file copied over the old one with
    its mtime set back (``touch -r``, ``cp -p``, ``rsync -t``) keeps both, but its ctime moves, and a
    file replaced by a rename has a new inode. A cache that cannot be read or written is ignored (the
    check then just runs)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def stamp(pair: FilePair, num_classes: int, ignore_index: int) -> Tuple[str, Optional[list]]:
        """The cache key of ``pair`` and the stamps of its files now (None if one cannot be stat'ed)."""
        stamps = []
        for f in pair:
            if f is None:
                stamps.append(None)
                continue
            try:
                st = os.stat(f)
            except OSError:
                return "", None
            stamps.append([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
        return f"{os.path.abspath(pair[0])}|{pair[1] and os.path.abspath(pair[1])}|{num_classes}|{ignore_index}", stamps

    def passed(self, key: str, stamps: Optional[list]) -> bool:
        return stamps is not None and self.entries.get(key) == stamps

    def add(self, key: str, stamps: Optional[list]) -> None:
        if stamps is not None:
            self.entries[key] = stamps

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            live = {k: v for k, v in self.entries.items() if os.path.exists(k.split("|", 1)[0])}
            tmp.write_text(json.dumps(live), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass


def check_contents(file_list: Sequence[FilePair], num_classes: int, ignore_index: int = 255,
                   workers: Optional[int] = None, progress: bool = True, raise_error: bool = True,
                   cache: Optional[Path] = None) -> List[str]:
    """Read every pair; return the problems (one message per bad pair), or raise :class:`DatasetError`
    listing them when ``raise_error``. With ``cache`` (a file), pairs that passed before and have not
    changed since are not read again (:class:`CheckCache`). A set of colour masks or of binary masks
    saved as 0/255 (judged from a few labels first, whatever the cache holds) is one problem naming the
    encoding and the ``check_dataset.py --convert`` command that fixes it."""
    encoding = set_encoding_problem(file_list, num_classes, ignore_index)  # colour or 0/255 masks: one message
    if encoding:
        if raise_error:
            raise DatasetError(encoding)
        return [encoding]
    memory = CheckCache(cache) if cache is not None else None
    todo, todo_stamps = list(file_list), []
    if memory is not None:  # stamped before reading: a file changed during the check is not cached as passed
        stamped = [(p, memory.stamp(p, num_classes, ignore_index)) for p in file_list]
        stamped = [(p, stamp) for p, stamp in stamped if not memory.passed(*stamp)]
        todo, todo_stamps = [p for p, _ in stamped], [stamp for _, stamp in stamped]
    fn = partial(check_pair, num_classes=num_classes, ignore_index=ignore_index)
    results = parallel_map(fn, todo, workers, "checking", progress) if todo else []
    problems = [p for p in results if p]
    if memory is not None and todo:
        for stamp, problem in zip(todo_stamps, results):
            if not problem:
                memory.add(*stamp)
        memory.save()
    if problems and raise_error:
        listed = " | ".join(problems[:MAX_LISTED])
        more = f" | ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(f"{len(problems)} of {len(file_list)} samples are invalid: {listed}{more}")
    return problems
