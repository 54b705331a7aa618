"""Whether a process runs, judged from ``/proc``: the loader's worker watch, the recovery of folders
left by a killed run (:mod:`paddleseg.utils.atomic`) and the failed-rank monitor ask it.

Standard library only: the monitor (:mod:`paddleseg.utils.peer_monitor`) runs as a script and imports
this file by its folder, without the package (which would load Paddle).
"""
import os


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie (exited, not yet reaped; state Z) does not. Without
    ``/proc`` (not Linux), whether a signal can be sent to it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False  # /proc exists and the process is gone
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
