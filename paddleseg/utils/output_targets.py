"""Checking, before anything is computed, that an output the user named can be written, and that a
folder an output replaces whole is one this project wrote.

A report or an export replaces its folder whole. Recognising "an earlier report" by the names of the
files in it is not enough: a folder holding only a hand-written ``index.html`` (or a Kubernetes
``deploy.yaml`` beside an export) looks like one. So each kind of output writes a marker file into
its folder (:func:`marker_text`, inside the temporary folder, so it is published with the rest), and
a folder may be replaced only when it is new, empty, or holds that marker.

Standard library only (the deployment package uses it).
"""
import os
from pathlib import Path
from typing import Callable, Optional, Union

from paddleseg.errors import UserError

PathLike = Union[str, Path]
MARKER = ".paddleseg-output"  # holds one line: the kind of output ("report", "export", ...)


def check_parent_writable(target: Path, shown: str) -> None:
    """UserError unless the nearest existing ancestor of ``target`` is a writable folder."""
    for existing in target.parents:
        if existing.exists():
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise UserError(f"{shown}: cannot be written ({existing} is not a writable folder)")
            return


def check_file_target(path: PathLike, flag: str) -> Path:
    """UserError unless ``path`` can be written as a file (not a folder, in a writable folder)."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    check_parent_writable(target, f"{flag} {path}")
    return target


def marker_text(kind: str) -> str:
    return f"{kind}\n"


def write_marker(folder: PathLike, kind: str) -> None:
    """Mark ``folder`` (being written) as an output of ``kind`` that a later run may replace."""
    (Path(folder) / MARKER).write_text(marker_text(kind), encoding="utf-8")


def written_by_us(folder: Path, kind: str) -> bool:
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        with open(marker, "rb") as f:
            return f.read(64) == marker_text(kind).encode()
    except OSError:
        return False


def check_replaceable_folder(folder: PathLike, flag: str, kind: str, hint: Optional[str] = None,
                             own_entry: Callable[[Path], bool] = lambda p: True) -> Path:
    """The real path of ``folder`` (``flag`` says where the name came from), after checking that an
    output of ``kind`` may replace it whole: it is new, empty, or an earlier output of that kind (it
    holds the marker, and every entry passes ``own_entry``: nothing the user added since would be
    deleted), and can be made. A symlink is judged by the folder it points to, which is what would be
    replaced. Reads only."""
    given = Path(folder)
    target = Path(os.path.realpath(given))
    shown = f"{flag} {given}" + (f" (-> {target})" if target != given.absolute() else "")
    if target.exists() and not target.is_dir():
        raise UserError(f"{shown}: is a file; give a folder for the {kind} (new, empty or an earlier {kind})")
    if target.is_dir() and any(target.iterdir()) and not written_by_us(target, kind):
        entries = sorted(p.name for p in target.iterdir())
        listed = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise UserError(f"{shown}: holds {listed} but is not an earlier {kind} of this project (it has no "
                        f"{MARKER}); the {kind} replaces the whole folder, so give a new or empty folder"
                        + (f" ({hint})" if hint else ""))
    if target.is_dir():
        others = sorted(p.name for p in target.iterdir() if p.name != MARKER and not own_entry(p))
        if others:
            listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            article = "an" if kind[0] in "aeiou" else "a"
            raise UserError(f"{shown}: holds {listed}, which {article} {kind} does not write; the {kind} replaces the "
                            f"whole folder, so give a new or empty folder, or move {listed} out")
    check_parent_writable(target, shown)
    return target
