"""Making a failed rank's error visible in the main output of ``paddle.distributed.launch``.

The launcher shows rank 0's output; when another rank fails, rank 0 only sees its collective
operations break (a gloo/NCCL abort many lines long). So a failing rank writes its one-line error to
``$PADDLE_LOG_DIR/failed_rank_<N>.txt`` before it exits, and every rank runs a watchdog thread that
prints such a file as soon as it appears and ends its own process, so the whole job stops at once,
non-zero, naming the rank and its error.

A rank killed outright (SIGKILL, the out-of-memory killer) writes no report. So every rank also
records its PID there (``rank_<N>.pid``, tagged with the job's master endpoint so files of earlier
jobs are ignored), and the watchdog, and :func:`check_peers` before each collective step, stop the
job naming a local rank whose process has vanished. Ranks on other machines are not visible this way;
their loss still ends the job, through the collective's own error.
"""
import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional

EXIT_PEER_FAILED = 3
_POLL_SECONDS = 0.05


def launched_rank() -> Optional[int]:
    """This process's rank when started by paddle.distributed.launch with several ranks, else None."""
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1:
        return None
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def _log_dir() -> Optional[Path]:
    value = os.environ.get("PADDLE_LOG_DIR")
    return Path(value) if value else None


def report_failure(message: str, linger: float = 1.0) -> None:
    """Record this rank's fatal error for the others (no-op outside a multi-rank launch)."""
    rank, log_dir = launched_rank(), _log_dir()
    if rank is None or log_dir is None:
        return
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"failed_rank_{rank}.txt").write_text(message.strip() + "\n", encoding="utf-8")
    except OSError:
        return
    time.sleep(linger)  # let the watchdogs report before our exit breaks their collectives


def _job() -> str:
    return os.environ.get("PADDLE_MASTER", "")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # a zombie has exited
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


_stopping = threading.Lock()


def _stop(message: str) -> None:
    if _stopping.acquire(blocking=False):  # the watchdog and the main thread may both notice
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(EXIT_PEER_FAILED)
    time.sleep(60)  # the other one is exiting the process


def check_peers() -> None:
    """Stop this process if another rank of this job reported a failure or its process vanished."""
    rank, log_dir = launched_rank(), _log_dir()
    if rank is None or log_dir is None:
        return
    for report in sorted(log_dir.glob("failed_rank_*.txt")):
        failed = report.stem.rsplit("_", 1)[-1]
        if failed != str(rank):
            text = report.read_text(encoding="utf-8", errors="replace").strip()
            _stop(f"rank {failed} failed: {text} (its full log: {log_dir / f'workerlog.{failed}'}); "
                  f"rank {rank} stops too")
    for pid_file in sorted(log_dir.glob("rank_*.pid")):
        peer = pid_file.stem.split("_", 1)[-1]
        try:
            pid, job = pid_file.read_text(encoding="utf-8").split(maxsplit=1)
        except (OSError, ValueError):
            continue
        if peer != str(rank) and job.strip() == _job() and not _alive(int(pid)):
            _stop(f"rank {peer} (pid {pid}) exited without an error report: killed (out of memory?) or crashed; "
                  f"its log: {log_dir / f'workerlog.{peer}'}; rank {rank} stops too")


def start_watchdog() -> None:
    """In a multi-rank launch, exit this process as soon as another rank has failed (see module doc)."""
    rank, log_dir = launched_rank(), _log_dir()
    if rank is None or log_dir is None:
        return
    for stale in log_dir.glob("failed_rank_*.txt"):  # from an earlier job in the same log dir
        if stale.stat().st_mtime < time.time() - 1:
            stale.unlink(missing_ok=True)
    try:
        (log_dir / f"rank_{rank}.pid").write_text(f"{os.getpid()} {_job()}\n", encoding="utf-8")
    except OSError:
        pass

    def watch():
        while True:
            check_peers()
            time.sleep(_POLL_SECONDS)

    threading.Thread(target=watch, name="peer-failure-watchdog", daemon=True).start()
