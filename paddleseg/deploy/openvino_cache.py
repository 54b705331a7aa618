"""Compiled OpenVINO models kept between runs (``--ov_cache_dir``), checked before OpenVINO reads them.

    cache = CompiledModelCache(cache_dir, key)          # checks the entry now: DeployError if tampered
    compiled = cache.compile(lambda folder: core.compile_model(model, "CPU", {..., "CACHE_DIR": folder}))

OpenVINO's own CACHE_DIR writes one ``<hash>.blob`` per compiled model and loads it on the next
compile with the same model and settings, without checking its content: a changed blob is loaded as
it is (measured: a flipped byte ran silently). So each entry here is a folder of its own, named after
a digest of ``key`` (the model file's SHA-256, the precision, the threads, the hint, the OpenVINO
version and the CPU), with a manifest of every blob and its SHA-256, rewritten (through a rename)
after every compile, under an ``flock`` on the cache folder so that concurrent runs take turns.

Before OpenVINO sees an entry it is checked:

- manifest and blobs as recorded: used;
- no manifest (a run killed while compiling), holding only blobs: deleted with a warning and compiled
  again (nothing of it is read); likewise a blob the manifest does not list is deleted;
- anything else is an error (exit 2) and nothing is deleted: a blob changed or missing since it was
  written, an unreadable manifest, an entry moved from elsewhere, or files OpenVINO does not write.
  A compiled blob is machine code and data the runtime loads as they are: one that is not what this
  program wrote is not run, and deleting it would hide that it happened. The message names the entry
  and says to delete it (or give another ``--ov_cache_dir``).
"""
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, TypeVar

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.model_files import sha256
from paddleseg.deploy.tensorrt_cache import cache_lock, key_digest, writable_cache_folder
from paddleseg.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
BLOB_SUFFIX = ".blob"  # what OpenVINO writes into a CACHE_DIR
Compiled = TypeVar("Compiled")


def _is_ours(name: str) -> bool:
    temporary = name.startswith(f".{MANIFEST}.") and name.endswith(".tmp")  # atomic_write_text's
    return name.endswith(BLOB_SUFFIX) or name == MANIFEST or temporary


def foreign_files(entry: Path) -> List[str]:
    """Names in ``entry`` that neither OpenVINO nor this module writes there."""
    return sorted(p.name for p in entry.iterdir() if not (_is_ours(p.name) and p.is_file()))


def entry_problem(entry: Path) -> Optional[str]:
    """Why the entry ``entry`` (which has a manifest) cannot be used, or None."""
    try:
        recorded = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        built_in, files = recorded["entry"], dict(recorded["files"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        return f"has an unreadable {MANIFEST} ({type(e).__name__}: {e})"
    if built_in != str(entry):
        return f"was moved here (written in {built_in})"
    foreign = foreign_files(entry)
    if foreign:
        return f"holds files OpenVINO does not write ({', '.join(foreign[:5])})"
    on_disk = {p.name for p in entry.iterdir() if p.name.endswith(BLOB_SUFFIX)}
    for name, digest in files.items():
        if name not in on_disk:
            return f"lost {name} since it was written"
        if sha256(entry / name) != digest:
            return f"has {name} changed since it was written"
    return None


def unrecorded_blobs(entry: Path) -> List[Path]:
    """Blobs of ``entry`` its manifest does not list (a run killed while compiling another input size)."""
    try:
        files = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return []
    return sorted(p for p in entry.glob(f"*{BLOB_SUFFIX}") if p.name not in files)


class CompiledModelCache:
    """One entry of the cache folder ``cache_dir`` for ``key`` (module docstring)."""

    def __init__(self, cache_dir: Path, key: Dict):
        self.folder = writable_cache_folder(Path(os.path.abspath(cache_dir)), "--ov_cache_dir")
        self.key = key
        self.entry = cache_dir / f"openvino-{key['precision']}-{key_digest(key)[:24]}"
        with cache_lock(self.folder):
            self._check()

    def _check(self) -> None:
        """Raise for an entry that may not be used; delete an interrupted one (module docstring)."""
        entry = self.entry
        if not entry.exists():
            return
        if not entry.is_dir() or entry.is_symlink():
            raise DeployError(f"--ov_cache_dir: {entry} is not a cache entry folder; delete it or give another "
                              f"--ov_cache_dir")
        if not (entry / MANIFEST).exists():
            foreign = foreign_files(entry)
            if foreign:
                raise DeployError(f"--ov_cache_dir: {entry} has no {MANIFEST} and holds files OpenVINO does not "
                                  f"write ({', '.join(foreign[:5])}); delete it or give another --ov_cache_dir")
            logger.warning("OpenVINO cache entry %s is incomplete (a compile was interrupted): compiling again", entry)
            shutil.rmtree(entry)
            return
        problem = entry_problem(entry)
        if problem:
            raise DeployError(f"--ov_cache_dir: the compiled-model cache entry {entry} {problem}: it is not loaded; "
                              f"delete that folder (or give another --ov_cache_dir) to compile again")
        for blob in unrecorded_blobs(entry):
            logger.warning("OpenVINO cache entry %s: %s is not in its manifest (an interrupted compile): deleted",
                           entry, blob.name)
            blob.unlink()

    def _record(self) -> None:
        files = {}
        for path in sorted(self.entry.glob(f"*{BLOB_SUFFIX}")):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            files[path.name] = sha256(path)
        atomic_write_text(self.entry / MANIFEST, json.dumps({"entry": str(self.entry), "key": self.key,
                                                             "files": files}, indent=1, sort_keys=True))

    def compile(self, compile_into: Callable[[str], Compiled]) -> Compiled:
        """``compile_into(folder)`` (OpenVINO's compile with CACHE_DIR=folder) on the checked entry, then
        the entry's manifest rewritten with what it holds now."""
        with cache_lock(self.folder):
            self._check()
            fresh = not self.entry.exists()
            self.entry.mkdir(exist_ok=True)
            before = {p.name for p in self.entry.glob(f"*{BLOB_SUFFIX}")}
            try:
                compiled = compile_into(str(self.entry))
                self._record()
            except BaseException:
                if fresh:
                    shutil.rmtree(self.entry, ignore_errors=True)  # this run made it: nothing half-written stays
                raise
            added = {p.name for p in self.entry.glob(f"*{BLOB_SUFFIX}")} - before
        logger.info("OpenVINO compiled model %s %s", "kept in" if added else "loaded from", self.entry)
        return compiled
