"""Converted TensorRT programs, kept between runs in a cache folder.

    prefix = cached_trt_program(cache_dir, key, convert)   # <entry>/model: .json, .pdiparams, engines in model/

Converting a model to TensorRT engines takes minutes; the result depends on the model files, the
shape range, the precision, the TensorRT and Paddle versions and the GPU, all of which make up
``key``. The entry's folder is named after a digest of the key. The converted program refers to its
engine files by absolute path, so it cannot be built elsewhere and renamed into place: instead an
entry is complete once its manifest (every file with its SHA-256, and the folder it was built in) is
written, through a rename, and all of this happens under an ``flock`` on the cache folder, so
concurrent runs convert once. An entry without a manifest (a killed run), one whose files changed
or one that was moved is deleted and converted again, unless it holds files this code does not write.
"""
import fcntl
import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.model_files import sha256
from paddleseg.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)

CACHE_MANIFEST = "manifest.json"  # written last: an entry without it is an interrupted conversion
CACHE_PREFIX = "model"  # <entry>/model.json, model.pdiparams and model/ (engine files), as paddle.tensorrt writes


def key_digest(key: Dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()


@contextmanager
def cache_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the cache folder itself, on a descriptor of its own (so two threads
    wait for each other too): one run converts at a time, the others wait and then find its result.
    The kernel drops the lock when the process dies."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another run that is converting into %s", folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def cache_entry_problem(entry: Path) -> Optional[str]:
    """Why the cache entry ``entry`` cannot be used (None if it can): see the module docstring."""
    manifest = entry / CACHE_MANIFEST
    if not manifest.is_file():
        return "incomplete (an earlier conversion was interrupted)"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        built_in, files = recorded["entry"], dict(recorded["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable ({CACHE_MANIFEST}: {e})"
    if built_in != str(entry):
        return f"moved (built in {built_in})"
    for required in (f"{CACHE_PREFIX}.json", f"{CACHE_PREFIX}.pdiparams"):
        if required not in files:
            return f"without {required}"
    for name, digest in files.items():
        path = entry / name
        if not path.is_file():
            return f"missing {name}"
        if sha256(path) != digest:
            return f"damaged ({name} changed since it was written)"
    return None


def foreign_files(entry: Path) -> List[str]:
    """Names at the top of ``entry`` that neither this module nor paddle.tensorrt writes there
    (it writes ``model`` and ``model.*``)."""
    return sorted(p.name for p in entry.iterdir()
                  if not (p.name in (CACHE_PREFIX, CACHE_MANIFEST) or p.name.startswith(f"{CACHE_PREFIX}.")
                          or (p.name.startswith(f".{CACHE_MANIFEST}.") and p.name.endswith(".tmp"))))


def _discard(entry: Path) -> None:
    try:
        shutil.rmtree(entry)
    except OSError as e:
        logger.warning("could not delete the unfinished TensorRT cache entry %s: %s", entry, e.strerror or e)


def writable_cache_folder(cache_dir: Path, flag: str) -> Path:
    """``cache_dir``, created if needed; a :class:`DeployError` naming ``flag`` where it cannot be written."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeployError(f"{flag} {cache_dir}: cannot create it ({e.strerror or e})") from e
    if not cache_dir.is_dir() or not os.access(cache_dir, os.W_OK | os.X_OK):
        raise DeployError(f"{flag} {cache_dir}: not a writable folder")
    return cache_dir


def _entry_folder(cache_dir: Path, key: Dict) -> Path:
    cache_dir = writable_cache_folder(cache_dir, "--trt_cache_dir")
    return cache_dir / f"{key['backend']}-{key['precision']}-{key_digest(key)[:24]}"


def _clear_unusable(entry: Path, problem: str) -> None:
    foreign = foreign_files(entry)
    if foreign:
        raise DeployError(f"--trt_cache_dir: {entry} is {problem} and holds files tools/infer.py does "
                          f"not write ({', '.join(foreign[:5])}); move them away or give another --trt_cache_dir")
    logger.warning("TensorRT cache entry %s is %s: converting again", entry, problem)
    try:
        shutil.rmtree(entry)
    except OSError as e:
        raise DeployError(f"--trt_cache_dir: {entry} is {problem} and cannot be deleted "
                          f"({e.strerror or e}); delete it or give another --trt_cache_dir") from e


def _record(entry: Path, key: Dict, prefix: Path) -> None:
    missing = [p.name for p in (prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams")) if not p.is_file()]
    if missing:
        raise DeployError(f"the TensorRT conversion wrote no {' or '.join(missing)} in {entry}")
    files = {}
    for path in sorted(p for p in entry.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        files[path.relative_to(entry).as_posix()] = sha256(path)
    atomic_write_text(entry / CACHE_MANIFEST, json.dumps({"entry": str(entry), "key": key, "files": files},
                                                         indent=1, sort_keys=True))


def cached_trt_program(cache_dir: Path, key: Dict, convert: Callable[[Path], None]) -> Path:
    """The prefix (``<entry>/model``) of the converted program for ``key``, from ``cache_dir``, or made
    by ``convert(prefix)`` and then kept (module docstring)."""
    entry = _entry_folder(Path(os.path.abspath(cache_dir)), key)
    prefix = entry / CACHE_PREFIX
    with cache_lock(entry.parent):
        if entry.exists():
            problem = cache_entry_problem(entry)
            if problem is None:
                logger.info("TensorRT program from the cache: %s", entry)
                return prefix
            _clear_unusable(entry, problem)
        entry.mkdir()
        try:
            convert(prefix)
            _record(entry, key, prefix)
        except BaseException:
            _discard(entry)  # this run made the entry: nothing half-written stays behind
            raise
    logger.info("TensorRT program converted and kept in %s", entry)
    return prefix
