"""Starting train.py again with glibc's transparent huge pages for malloc (``glibc.malloc.hugetlb=1``).

glibc reads its tunables from ``GLIBC_TUNABLES`` once, when the process starts, so a running process
cannot turn them on: train.py, run as a script, replaces itself once (``os.execve``: the same PID,
arguments and open terminal) with the tunable added. With it, glibc asks the kernel for 2 MB pages
for the memory it maps (madvise), so the pages of a block mapped afresh each step cost a fault per
2 MB instead of per 4 KB. That makes a lower mmap threshold cheap (paddleseg/utils/memory.py), which
``--recompute`` uses to keep its peak low. A training step without ``--recompute`` measured the same
with and without the tunable (docs/performance.md): only a recomputing run restarts,
decided by :func:`paddleseg.utils.memory.set_up_allocator` once the config is read (so the restart
costs the import of Paddle and the config a second time, a few seconds, against hours of training).

Nothing changes when: the platform is not Linux with glibc 2.35 or later, the kernel's transparent
huge pages are off (``never``), ``GLIBC_TUNABLES`` already names ``glibc.malloc.hugetlb`` (the
user's value is kept: ``glibc.malloc.hugetlb=0`` turns this off), or Python is not running train.py
itself as its script (``python -c``, a debugger, coverage, another program's ``runpy``), so a host
program is never re-run.

Standard library only.
"""
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

VARIABLE = "GLIBC_TUNABLES"
TUNABLE = "glibc.malloc.hugetlb"
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
# python options that take no value; -X and -W take one (attached or the next argument)
_NO_VALUE_FLAGS = {"-b", "-bb", "-B", "-d", "-E", "-i", "-I", "-O", "-OO", "-P", "-q", "-R", "-s", "-S", "-u", "-v",
                   "-vv", "-x"}


def glibc_version() -> Optional[tuple]:
    """(major, minor) of the C library when it is glibc, else None."""
    try:
        name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, ValueError, OSError):  # not glibc (macOS, musl, Windows)
        return None


def huge_pages_available() -> bool:
    """Whether the kernel hands out transparent huge pages on request (``always`` or ``madvise``)."""
    try:
        return "[never]" not in THP_SETTING.read_text()
    except OSError:
        return False


def tunable_value(environ: Mapping[str, str]) -> Optional[str]:
    """The value ``GLIBC_TUNABLES`` gives ``glibc.malloc.hugetlb``, or None when it names no value."""
    for item in environ.get(VARIABLE, "").split(":"):
        name, _, value = item.partition("=")
        if name.strip() == TUNABLE:
            return value.strip()
    return None


def huge_pages_on(environ: Mapping[str, str]) -> bool:
    """Whether this process's malloc uses huge pages: started with ``glibc.malloc.hugetlb`` 1 or 2, on
    a glibc that knows the tunable and a kernel that has them."""
    version = glibc_version()
    return (tunable_value(environ) in ("1", "2") and version is not None and version >= (2, 35)
            and huge_pages_available())


def environment_with_huge_pages(environ: Mapping[str, str]) -> Optional[Dict[str, str]]:
    """``environ`` with ``glibc.malloc.hugetlb=1`` added to ``GLIBC_TUNABLES``, or None when there is
    nothing to add (module docstring)."""
    version = glibc_version()
    if version is None or version < (2, 35) or not huge_pages_available() or tunable_value(environ) is not None:
        return None
    env = dict(environ)
    env[VARIABLE] = ":".join(t for t in (environ.get(VARIABLE, ""), f"{TUNABLE}=1") if t)
    return env


def script_of(orig_argv: Sequence[str]) -> Optional[str]:
    """The script a ``python [options] script args`` command line runs; None for ``-c``, ``-m``, stdin."""
    i = 1
    while i < len(orig_argv):
        arg = orig_argv[i]
        if arg in ("-X", "-W"):
            i += 2
        elif arg.startswith(("-X", "-W")) or arg in _NO_VALUE_FLAGS:
            i += 1
        elif arg.startswith("-"):  # -c, -m, -, --help, combined flags: not a plain script run
            return None
        else:
            return arg
    return None


def restart_with_huge_pages(script: str) -> None:
    """Replace this process by the same command line with the tunable added, when ``script`` is what
    Python runs and the tunable is missing (module docstring); else return. A failed exec returns too:
    the run then goes on without huge pages."""
    orig_argv = getattr(sys, "orig_argv", None)  # Python 3.10+
    if not orig_argv or getattr(sys, "frozen", False) or not sys.executable:
        return
    ran = script_of(orig_argv)
    try:
        same = ran is not None and Path(ran).resolve() == Path(script).resolve()
    except OSError:
        return
    env = environment_with_huge_pages(os.environ) if same else None
    if env is None:
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        os.execve(sys.executable, [sys.executable] + list(orig_argv[1:]), env)
    except OSError:
        return
