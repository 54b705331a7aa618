"""paddleseg.utils.processes.alive: running processes are alive; exited ones, reaped or zombie, are not."""
import os
import subprocess
import sys
import time

from paddleseg.utils.processes import alive


def test_a_running_process_is_alive():
    assert alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_an_exited_process_is_not_alive_reaped_or_not():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while alive(child.pid) and time.monotonic() < deadline:  # exited but not reaped: a zombie
        time.sleep(0.01)
    assert not alive(child.pid)
    child.wait()
    assert not alive(child.pid)
