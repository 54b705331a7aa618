"""The watchdog process of one rank of a multi-process job (started by
:func:`paddleseg.utils.distributed.start_watchdog`).

    python peer_monitor.py LOG_DIR RANK JOB PARENT_PID

It watches ``LOG_DIR`` (the launcher's log folder) for another rank of the same job that reported a
failure (``failed_rank_<N>.txt``) or whose process vanished without one (its ``rank_<N>.pid`` left
behind: killed, out of memory). It then prints one line naming that rank into this rank's log and
stops this rank, so the whole job ends at once. It is a separate process that imports only the
standard library and its sibling :mod:`paddleseg.utils.processes` (by its folder, not through the
package, which would load Paddle), so it starts in milliseconds, and it outlives this rank if the collective backend
aborts it first (gloo aborts a rank within milliseconds of a peer's socket closing) or the launcher
stops the rank's process group (SIGTERM and Ctrl-C are ignored here), so the log still says why. It
exits when its rank exits.
"""
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Optional

if __package__:  # imported as paddleseg.utils.peer_monitor (tests, distributed.py)
    from paddleseg.utils.processes import alive
else:  # run as a file (start_watchdog): its folder is sys.path[0], so the sibling imports alone
    from processes import alive

POLL_SECONDS = 0.05


def read_tagged(path: Path, job: str) -> Optional[str]:
    """The body of a ``JOB\\nbody`` file of this job, or None (missing, or an earlier job's)."""
    try:
        tag, _, body = path.read_text(encoding="utf-8", errors="replace").partition("\n")
    except OSError:
        return None
    return body.strip() if tag == job else None


def find_failure(log_dir: Path, rank: str, job: str) -> Optional[str]:
    for report in sorted(log_dir.glob("failed_rank_*.txt")):
        failed = report.stem.rsplit("_", 1)[-1]
        message = read_tagged(report, job)
        if failed != rank and message is not None:
            return f"rank {failed} failed: {message} (its full log: {log_dir / f'workerlog.{failed}'})"
    here = namespace()
    for pid_file in sorted(log_dir.glob("rank_*.pid")):
        peer = pid_file.stem.split("_", 1)[-1]
        pid, _, where = (read_tagged(pid_file, job) or "").partition(" ")
        if peer == rank or not pid.isdigit() or where != here or alive(int(pid)):
            continue  # another host's or container's PID says nothing here
        if any(read_tagged(log_dir / f"{kind}_rank_{peer}.txt", job) is not None for kind in ("failed", "stopped")):
            continue  # it said why, or was stopped because of another rank
        if read_tagged(pid_file, job) is None:  # removed meanwhile: it exited normally
            continue
        return (f"rank {peer} (pid {pid}) exited without an error report: killed (out of memory?) or crashed; "
                f"its log: {log_dir / f'workerlog.{peer}'}")
    return None


def namespace() -> str:
    """Where a PID means this process: host name, boot id and PID-namespace inode. Written with each
    rank's PID (:func:`paddleseg.utils.distributed.start_watchdog`); a PID is checked only where the
    namespace matches."""
    parts = []
    for read in (socket.gethostname, lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                 lambda: str(os.stat("/proc/self/ns/pid").st_ino)):
        try:
            parts.append(read())
        except OSError:
            parts.append("?")
    return "/".join(parts)


def main(argv) -> int:
    log_dir, rank, job, parent = Path(argv[0]), argv[1], argv[2], int(argv[3])
    # The launcher stops a rank's whole process group (SIGTERM) as soon as it sees another rank exit, and
    # Ctrl-C reaches the group too: the monitor outlives them to write its line (it exits with its rank)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    while True:
        message = find_failure(log_dir, rank, job)
        if message is not None:
            try:
                (log_dir / f"stopped_rank_{rank}.txt").write_text(f"{job}\n{message}\n", encoding="utf-8")
            except OSError:
                pass
            print(f"error: {message}; rank {rank} stops too", file=sys.stderr, flush=True)
            if alive(parent):
                os.kill(parent, signal.SIGKILL)
            return 3
        if not alive(parent):
            return 0
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
