"""Making a failed rank's error visible, and stopping the whole job, under ``paddle.distributed.launch``.

The launcher shows rank 0's output; when another rank fails, rank 0 only sees its collective
operations break (a gloo/NCCL abort many lines long), or hangs in them. So:

- a rank that fails writes its one-line error to ``$PADDLE_LOG_DIR/failed_rank_<N>.txt`` before it
  exits (:func:`report_failure`, called by :func:`paddleseg.utils.cli.run`);
- every rank records its PID there (``rank_<N>.pid``) and removes it when it exits normally, so a
  PID file left behind by a dead process means it was killed (out of memory) or crashed;
- every rank starts a small monitor process (:mod:`paddleseg.utils.peer_monitor`) that notices either
  at once, writes one line naming the rank into its own rank's log, and stops its rank.

Files carry a tag of the job attempt (the master endpoint and the trainer endpoints, whose ports the
launcher picks afresh at every launch), so those of an earlier job, or of an earlier attempt of the
same command with the same ``--master``, are ignored. A PID file also names the machine and PID
namespace it was written in (host name, boot id, PID-namespace inode): a peer's PID is checked only
where it means something, on the same host in the same namespace. Ranks on other machines or in
other containers are visible through their failure reports (a shared log folder) or the collective's
own error.
"""
import atexit
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from paddleseg.utils.peer_monitor import namespace


def launched_rank() -> Optional[int]:
    """This process's rank when started by paddle.distributed.launch with several ranks, else None."""
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1:
        return None
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def _log_dir() -> Optional[Path]:
    value = os.environ.get("PADDLE_LOG_DIR")
    return Path(value) if value else None


def _job() -> str:
    """The tag of this job attempt, the same on every rank and node of it."""
    return f"{os.environ.get('PADDLE_MASTER', '')}|{os.environ.get('PADDLE_TRAINER_ENDPOINTS', '')}"


def _write_tagged(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{_job()}\n{body.strip()}\n", encoding="utf-8")
    os.replace(tmp, path)


def report_failure(message: str, linger: float = 1.0) -> None:
    """Record this rank's fatal error for the others (no-op outside a multi-rank launch)."""
    rank, log_dir = launched_rank(), _log_dir()
    if rank is None or log_dir is None:
        return
    try:
        _write_tagged(log_dir / f"failed_rank_{rank}.txt", message)
    except OSError:
        return
    time.sleep(linger)  # let the monitors report before our exit breaks their collectives


def start_watchdog() -> Optional[subprocess.Popen]:
    """In a multi-rank launch: record this rank's PID and start its monitor (module docstring)."""
    rank, log_dir = launched_rank(), _log_dir()
    if rank is None or log_dir is None:
        return None
    pid_file = log_dir / f"rank_{rank}.pid"
    try:
        _write_tagged(pid_file, f"{os.getpid()} {namespace()}")
    except OSError:
        return None
    atexit.register(pid_file.unlink, missing_ok=True)  # a normal exit is not a vanished rank
    monitor = Path(__file__).with_name("peer_monitor.py")
    return subprocess.Popen([sys.executable, str(monitor), str(log_dir), str(rank), _job(), str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None)
