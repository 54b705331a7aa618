"""Folders and files that are replaced whole or not at all.

    with atomic_folder(Path("output/export")) as tmp:
        ...                               # write into tmp; an exception deletes tmp, the old folder stays
    # output/export is now the new folder, the old one is gone

    atomic_write_text(Path("configs/my.yml"), text)   # keeps the file's mode, writes through a symlink
    atomic_write_bytes(Path("out/a.png"), png_bytes, sync=False)   # the same for bytes (paddleseg.deploy)

A folder is built in a hidden ``.<name>.partial-<pid>`` beside its target (the same file system, so the
renames are atomic), flushed to disk, then swapped in by :func:`publish`: the old folder is renamed to
``.<name>.old-<pid>``, the new one renamed in, the old one deleted. A process killed part-way leaves
either a partial folder (never valid) or, between the two renames, no ``<name>`` but the complete old
folder as ``.<name>.old-<pid>``. :func:`recover` (run by :func:`atomic_folder` before it starts)
deletes the first and renames the second back; it only touches folders of processes that are gone.
The swap and the recovery hold an exclusive ``flock`` on the parent folder, so two processes
replacing the same folder never interleave their renames.

Standard library only: the deployment package (:mod:`paddleseg.deploy`) writes its outputs through it.
"""
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Union

from paddleseg.utils.processes import alive

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)$")


def fsync_file(path: PathLike) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, then the folders themselves (deepest first)."""
    folders = [folder]
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            continue
        if p.is_dir():
            folders.append(p)
        else:
            fsync_file(p)
    for d in reversed(folders):
        fsync_dir(d)


def partial_folder(final: Path) -> Path:
    """This process's hidden work folder for ``final``."""
    return final.with_name(f".{final.name}.partial-{os.getpid()}")


def old_folder(final: Path) -> Path:
    """Where this process moves the folder it replaces, for the instant between the two renames."""
    return final.with_name(f".{final.name}.old-{os.getpid()}")


_HELD: Dict[str, int] = {}  # folders this process holds an flock on (real path -> descriptor)


@contextmanager
def folder_lock(folder: PathLike, blocking: bool = True) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself (no lock file is created), re-entrant within this
    process: a training run holds its save_dir's lock and still replaces folders inside it. Without
    ``blocking``, a lock held by another process raises :class:`BlockingIOError` at once. The kernel
    drops the lock when the process dies."""
    key = os.path.realpath(folder)
    if key in _HELD:
        yield
        return
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = fd
    try:
        yield
    finally:
        del _HELD[key]
        os.close(fd)  # releases the lock



def _remove_replaced(old: Path) -> None:
    try:
        shutil.rmtree(old)
    except OSError as e:  # the new folder is in place already: this is only left-over disk space
        logger.warning("could not delete the replaced folder %s: %s", old, e.strerror or e)


def publish(tmp: Path, final: Path) -> None:
    """Flush the complete folder ``tmp`` and rename it to ``final``, replacing an existing ``final``:
    at every instant ``final`` is the old folder, the new one, or (killed between the renames) absent
    with the old one at :func:`old_folder`, which :func:`recover` puts back."""
    fsync_tree(tmp)
    old = None
    with folder_lock(final.parent):
        if final.exists() or final.is_symlink():
            old = old_folder(final)
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except BaseException:
            if old is not None:
                os.rename(old, final)
            raise
        fsync_dir(final.parent)
    if old is not None:
        _remove_replaced(old)


def recover(final: Path) -> List[Path]:
    """Clean up after processes that were killed while replacing ``final``: delete their partial
    folders; put back an old folder whose replacement never arrived, or delete it when it did.
    Folders of processes still running are left alone. Returns the leftovers handled."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    handled = []
    with folder_lock(final.parent):
        for p in sorted(final.parent.iterdir()):
            m = _LEFTOVER.match(p.name)
            if not m or m["name"] != final.name or not p.is_dir():
                continue
            pid = int(m["pid"])
            if pid == os.getpid() or alive(pid):
                continue
            if m["kind"] == "old" and not (final.exists() or final.is_symlink()):
                os.rename(p, final)
                logger.warning("%s: restored from %s (a replacement of it was interrupted)", final, p.name)
            else:
                shutil.rmtree(p)
            handled.append(p)
    return handled


@contextmanager
def atomic_folder(final: PathLike) -> Iterator[Path]:
    """Yield an empty work folder; when the block ends normally it replaces ``final`` whole
    (:func:`publish`), when it raises it is deleted and ``final`` is untouched. A symlink ``final``
    is followed (its target folder is replaced). The new folder keeps the old one's permission bits."""
    final = Path(os.path.realpath(final))
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)
    tmp = partial_folder(final)
    if tmp.exists():  # left by an earlier process that had our pid
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if final.is_dir():
            os.chmod(tmp, stat.S_IMODE(final.stat().st_mode))
        yield tmp
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the error being raised says what went wrong
        raise


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace the file ``path`` with ``text`` whole or not at all (:func:`atomic_write_bytes`, the text
    encoded as it is, line ends unchanged). Returns the file written."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: PathLike, data: bytes, sync: bool = True) -> Path:
    """Replace the file ``path`` with ``data`` whole or not at all: written to a temporary file in
    the same folder, given the old file's permission bits (and owner, where allowed), then renamed
    over it; with ``sync`` the file and its folder are flushed to disk too (prediction outputs, many
    small files that can be made again, skip that). A symlink is followed: its target is replaced and
    the link stays a link. A new file gets the usual mode (0666 less the umask). Any file name works,
    bytes that are not UTF-8 included. Returns the file written."""
    target = Path(os.path.realpath(path))
    old = target.stat() if target.exists() else None
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if old is not None:
                _keep_owner(f.fileno(), old, target)  # before fchmod: a chown clears set-id bits
                os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(target.parent)
    return target


def _keep_owner(fd: int, old: os.stat_result, target: Path) -> None:
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        logger.warning("%s: rewritten by uid %d gid %d; its owner was uid %d gid %d (not allowed to keep it)",
                       target, new.st_uid, new.st_gid, old.st_uid, old.st_gid)
