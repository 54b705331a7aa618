"""A training run owns its save_dir: one writer at a time, and only its own files are ever touched.

- **One writer.** Rank 0 holds an exclusive ``flock`` on the save_dir folder itself for the whole run
  (no lock file is created, so a refused run leaves the folder exactly as it was). A second run on
  the same folder fails at once, naming the holder's PID and host from ``run.json``. The kernel drops
  the lock when the holder dies, so a lock left by a killed run never blocks.
- **One owner.** ``save_dir/run.json`` records the run id; every checkpoint's ``train_state.json`` and
  ``best_model/score.json`` carry it too. Pruning, clean-up and best-model replacement act only on
  folders with this id (:mod:`paddleseg.checkpoint.training`).
- **No silent take-over.** A new run in a folder that holds another run's checkpoints, or anything at
  the names a run writes (``iter_N/``, ``best_model/``, ``run.json``), stops with how to continue that
  run or where to write instead. Other files in the folder are left alone.
"""
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from paddleseg.checkpoint.training import (
    BEST_DIR,
    JSON_MAX_BYTES,
    RUN_ID,
    TrainState,
    checkpoint_folders,
    latest_valid,
    owner,
)
from paddleseg.errors import UserError
from paddleseg.utils.atomic import folder_lock
from paddleseg.utils.regular_file import read_text

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
AUTO = "auto"  # --resume_model auto


class SaveDirError(UserError):
    """The save_dir is in use by another run, or belongs to one."""


def new_run_id() -> str:
    """Readable and unique: ``20261123-153000-1a2b3c4d``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


class SaveDirLock:
    """The exclusive lock of one save_dir folder, held by the process that writes into it
    (:func:`paddleseg.utils.atomic.folder_lock`, so the run can still replace folders inside it)."""

    def __init__(self, save_dir: Path):
        self.path = Path(save_dir)
        self._held: Optional[contextlib.ExitStack] = None

    def acquire(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SaveDirError(f"{self.path}: the save directory is not writable ({e.strerror or e})") from e
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(folder_lock(self.path, blocking=False))
        except BlockingIOError:
            try:
                record = RunRecord.read(self.path)
            except SaveDirError:
                record = None
            holder = f"pid {record.pid} on host {record.host}" if record and record.pid else "its pid is not recorded yet"
            raise SaveDirError(f"{self.path}: in use by another training run ({holder}); wait for it to finish, or "
                               f"write to another --save_dir") from None
        except OSError as e:
            raise SaveDirError(f"{self.path}: the save directory is not usable ({e.strerror or e})") from e
        self._held = stack

    def release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def __enter__(self) -> "SaveDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class RunRecord:
    """``save_dir/run.json``."""

    run_id: str
    created: str
    config: str
    pid: int = 0  # the process that last held the lock
    host: str = ""

    @classmethod
    def read(cls, save_dir: Path) -> Optional["RunRecord"]:
        """The record of ``save_dir``, or None when there is none. Read only as a small regular file (a
        FIFO or a link to a device is refused, not waited on or read without end)."""
        path = Path(save_dir) / RUN_FILE
        if not os.path.lexists(path):
            return None
        try:
            raw = json.loads(read_text(path, JSON_MAX_BYTES))
            record = cls(run_id=raw["run_id"], created=raw.get("created", ""), config=raw.get("config", ""),
                         pid=int(raw.get("pid", 0)), host=str(raw.get("host", "")))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise SaveDirError(f"{path}: unreadable run record ({type(e).__name__}: {e}); this folder's owner is "
                               f"unknown, so write to another --save_dir") from e
        if not isinstance(record.run_id, str) or not record.run_id:
            raise SaveDirError(f"{path}: the run record has no run id; write to another --save_dir")
        if RUN_ID.fullmatch(record.run_id) is None:
            raise SaveDirError(f"{path}: the run id {record.run_id!r} is not one train.py writes (lowercase letters, "
                               f"digits and '-'); this folder's owner is unknown, so write to another --save_dir")
        return record

    def write(self, save_dir: Path) -> None:
        """Write atomically, recording this process as the holder."""
        self.pid, self.host = os.getpid(), socket.gethostname()
        path = Path(save_dir) / RUN_FILE
        tmp = path.with_name(f".{RUN_FILE}.partial-{os.getpid()}")
        tmp.write_text(json.dumps(self.__dict__, indent=2), encoding="utf-8")
        os.replace(tmp, path)


def foreign_entries(save_dir: Path, run_id: Optional[str]) -> List[Path]:
    """What stands at the names a run writes (``iter_N/``, ``best_model/``) and was not written by
    ``run_id``: another run's checkpoints, an earlier version's, or the user's own folders."""
    save_dir = Path(save_dir)
    found = [p for p in checkpoint_folders(save_dir) if run_id is None or owner(p) != run_id]
    best = save_dir / BEST_DIR
    if best.exists() and (run_id is None or owner(best) != run_id):
        found.append(best)
    return found


def _describe(paths: List[Path]) -> str:
    names = [p.name for p in paths[:5]]
    return ", ".join(names) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


@dataclass
class RunClaim:
    """What :func:`claim` decided: this run's id, and the checkpoint to resume (None: from scratch)."""

    run_id: str
    resume_from: Optional[Path]
    new_record: bool


def resolve(save_dir: Path, resume: Optional[Path], resume_state: Optional[TrainState]) -> RunClaim:
    """Decide, reading only, which run writes into ``save_dir`` and what it resumes.

    ``resume`` is ``--resume_model``: None, :data:`AUTO`, or a checkpoint folder whose verified
    state is ``resume_state``. Raises :class:`SaveDirError` for a folder this run may not write to."""
    save_dir = Path(save_dir)
    record = RunRecord.read(save_dir)
    if resume is not None and str(resume) == AUTO:
        if record is None:
            foreign = foreign_entries(save_dir, None)
            if foreign:
                raise SaveDirError(f"{save_dir}: --resume_model auto found no run record ({RUN_FILE}) but "
                                   f"{_describe(foreign)}, which this version of train.py did not write; "
                                   f"resume one explicitly with --resume_model {foreign[0]} --save_dir <new "
                                   f"folder>, or write to another --save_dir")
            return RunClaim(new_run_id(), None, True)
        _refuse_foreign(save_dir, record.run_id)
        return RunClaim(record.run_id, latest_valid(save_dir, record.run_id), False)
    if resume is not None:
        rid = resume_state.run_id
        if record is not None and record.run_id != rid:
            raise SaveDirError(f"{save_dir}: belongs to run {record.run_id}, but {resume} was written by "
                               f"{'run ' + rid if rid else 'an earlier version (no run id)'}; continue it in "
                               f"another --save_dir")
        if record is None:
            foreign = foreign_entries(save_dir, rid or None)
            if not rid and foreign:
                raise SaveDirError(f"{save_dir}: {resume} was written by an earlier version (no run id) and the "
                                   f"folder holds {_describe(foreign)}; continue it in an empty folder: "
                                   f"--resume_model {resume} --save_dir <new folder>")
            _refuse_foreign(save_dir, rid or None)
        else:
            _refuse_foreign(save_dir, rid)
        return RunClaim(rid or new_run_id(), Path(resume), record is None)
    if record is not None:
        latest = latest_valid(save_dir, record.run_id)
        where = f"its latest checkpoint is {latest}" if latest else "it has no valid checkpoint yet"
        raise SaveDirError(f"{save_dir}: already holds run {record.run_id} ({where}); continue it with "
                           f"--resume_model auto, or write a new run to another --save_dir")
    _refuse_foreign(save_dir, None)
    return RunClaim(new_run_id(), None, True)


def _refuse_foreign(save_dir: Path, run_id: Optional[str]) -> None:
    foreign = foreign_entries(save_dir, run_id)
    if foreign:
        raise SaveDirError(f"{save_dir}: holds {_describe(foreign)}, not written by this run; they are left "
                           f"alone, and this run would write at the same names: write to another --save_dir")
