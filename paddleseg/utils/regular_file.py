"""Opening a file the user named only when it is a regular file, and reading it with a size bound.

``open(path)`` on a FIFO blocks until a writer appears (a list file or ``run.json`` that is a FIFO
hangs the program), and ``/dev/zero`` or another character device reads forever. Every file the
project reads because a user or a config named it (configs, list files, ``run.json``, digests,
checkpoints) goes through :func:`open_regular`: it opens with ``O_NONBLOCK`` (so a FIFO cannot block
the open itself), checks with ``fstat`` on the open descriptor (no window between the check and the
use) that it is a regular file, and optionally that it is not larger than ``max_bytes``.

Standard library only: the deployment package uses it too.
"""
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO, Optional, Union

PathLike = Union[str, Path]


class NotRegularFileError(OSError):
    """The path exists but is a FIFO, a device, a socket or a folder; or is larger than allowed."""


def describe_kind(mode: int) -> str:
    """What a non-regular file is, in words (for error messages)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: PathLike, max_bytes: Optional[int] = None) -> BinaryIO:
    """``path`` opened for binary reading, after checking it is a regular file of at most ``max_bytes``.

    Raises :class:`NotRegularFileError` (an ``OSError``; its message says what the file is) and the
    usual ``FileNotFoundError`` / ``PermissionError``. Symbolic links are followed, so a link to
    ``/dev/zero`` is refused as a character device."""
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(f"{path}: is {describe_kind(info.st_mode)}, not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotRegularFileError(f"{path}: is {info.st_size} bytes, more than the {max_bytes} bytes such "
                                      f"a file can hold")
        os.set_blocking(fd, True)
        return io.open(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: PathLike, max_bytes: int) -> bytes:
    """The whole content of the regular file ``path`` (at most ``max_bytes``; see :func:`open_regular`).
    A file that grows past the bound while it is read is refused too."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotRegularFileError(f"{path}: is more than the {max_bytes} bytes such a file can hold")
    return data


def read_text(path: PathLike, max_bytes: int, encoding: str = "utf-8") -> str:
    """:func:`read_bytes` decoded (``UnicodeDecodeError`` for bytes that are not ``encoding``)."""
    return read_bytes(path, max_bytes).decode(encoding)
