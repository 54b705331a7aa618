"""Running the entry points as a user would, for the fault-injection tests.

``run_script`` runs a script in a fresh interpreter; ``run_with_fault`` does the same with a fault
hook installed first (the hook's code monkeypatches a function so that it kills the process, hangs,
or fails, at one chosen point), so the production code carries no fault switches."""
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Sequence

from conftest import REPO

PYTHON = sys.executable


def run_script(script: str, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(REPO / script), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def run_with_fault(hook: str, script: str, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``script`` after executing ``hook`` (Python source) in the same process."""
    boot = textwrap.dedent(f"""
        import runpy, sys
        sys.path.insert(0, {str(REPO)!r})
        sys.argv = [{str(REPO / script)!r}] + sys.argv[1:]
    """) + textwrap.dedent(hook) + f"\nrunpy.run_path({str(REPO / script)!r}, run_name='__main__')\n"
    return subprocess.run([PYTHON, "-c", boot, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def train_args(config: Path, save_dir: Path, *extra: str) -> list:
    return ["--config", str(config), "--save_dir", str(save_dir), "--log_iters", "1", *extra]


def snapshot(folder: Path) -> Dict[str, str]:
    """Every file and folder under ``folder`` with the SHA-256 of its content (to prove nothing changed)."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, exactly one ``error: ...`` line on stderr naming every fragment, no traceback; returns
    the error line."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr[-3000:])
    return errors[0]


def hidden(folder: Path) -> Sequence[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


HEADROOM = 1 << 30


def memory_limit(preload: str) -> str:
    """Hook: import ``preload`` (what the script imports anyway), then cap the address space at the
    current size plus HEADROOM; report the peak resident memory on exit."""
    return f"""
import atexit, resource, sys
import {preload}
def _status(key):
    return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]) * 1024
_limit = _status('VmSize:') + {HEADROOM}
resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
atexit.register(lambda: print(f'peak_rss={{_status("VmHWM:")}} limit={{_limit}}', file=sys.stderr))
"""


def peak_rss(stderr: str) -> int:
    return int(stderr.rsplit("peak_rss=", 1)[1].split()[0])
