"""train.py restarts itself once with glibc's huge pages for malloc (paddleseg/utils/glibc_env.py) when the
run recomputes (paddleseg/utils/memory.py decides), and only when Python runs train.py itself."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paddleseg.utils import glibc_env, memory

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "train.py")
needs_huge_pages = pytest.mark.skipif(glibc_env.environment_with_huge_pages({}) is None,
                                      reason="needs Linux with glibc >= 2.35 and transparent huge pages not 'never'")


@pytest.mark.parametrize("argv, script", [
    (["python", "train.py", "--config", "x.yml"], "train.py"),
    (["python", "-u", "-X", "faulthandler", "-Wignore", "/a/train.py"], "/a/train.py"),
    (["python", "-c", "import train"], None),
    (["python", "-m", "pdb", "train.py"], None),
    (["python"], None),
])
def test_the_script_of_a_command_line(argv, script):
    assert glibc_env.script_of(argv) == script


def test_the_tunable_is_added_beside_the_users_and_a_users_value_is_kept(monkeypatch):
    monkeypatch.setattr(glibc_env, "glibc_version", lambda: (2, 36))
    monkeypatch.setattr(glibc_env, "huge_pages_available", lambda: True)
    env = glibc_env.environment_with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/h"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "HOME": "/h"}
    assert glibc_env.environment_with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    assert glibc_env.huge_pages_on(env) and not glibc_env.huge_pages_on({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
    monkeypatch.setattr(glibc_env, "glibc_version", lambda: (2, 34))  # before the tunable existed
    assert glibc_env.environment_with_huge_pages({}) is None and not glibc_env.huge_pages_on(env)
    monkeypatch.setattr(glibc_env, "glibc_version", lambda: None)  # musl, macOS
    assert glibc_env.environment_with_huge_pages({}) is None


def test_huge_pages_off_in_the_kernel_change_nothing(monkeypatch, tmp_path):
    setting = tmp_path / "enabled"
    setting.write_text("always madvise [never]\n")
    monkeypatch.setattr(glibc_env, "THP_SETTING", setting)
    assert glibc_env.environment_with_huge_pages({}) is None
    setting.write_text("always [madvise] never\n")
    assert glibc_env.huge_pages_available()


@needs_huge_pages
def test_restart_replaces_the_process_only_for_the_script_itself(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-u", TRAIN, "--config", "a.yml"], raising=False)
    glibc_env.restart_with_huge_pages(TRAIN)
    (path, argv, env), = calls
    assert path == sys.executable and argv == [sys.executable, "-u", TRAIN, "--config", "a.yml"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    calls.clear()
    for orig_argv in (["python3", "killer.py", "--config", "a.yml"], ["python3", "-c", "pass"]):
        monkeypatch.setattr(sys, "orig_argv", orig_argv, raising=False)  # another program runs train.py's code
        glibc_env.restart_with_huge_pages(TRAIN)
    monkeypatch.setattr(sys, "orig_argv", ["python3", TRAIN], raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")  # the user's choice
    glibc_env.restart_with_huge_pages(TRAIN)
    assert calls == []


def test_only_a_recomputing_run_restarts_and_the_thresholds_follow(monkeypatch):
    restarts, thresholds = [], []
    monkeypatch.setattr(memory, "restart_with_huge_pages", restarts.append)
    monkeypatch.setattr(memory, "keep_freed_memory", lambda recompute: thresholds.append(recompute))
    memory.set_up_allocator(recompute=False, script=TRAIN)
    assert restarts == [] and thresholds == [False]
    memory.set_up_allocator(recompute=True, script=TRAIN)
    assert restarts == [TRAIN] and thresholds == [False, True]
    memory.set_up_allocator(recompute=True)  # no script to start again (a library caller)
    assert restarts == [TRAIN] and thresholds == [False, True, True]


@needs_huge_pages
@pytest.mark.slow
@pytest.mark.parametrize("recompute", [False, True])
def test_train_py_starts_again_with_the_tunable_only_to_recompute_and_runs_once(tmp_path, recompute):
    """Every interpreter start is recorded by a sitecustomize: with --recompute two starts, the second
    with the tunable, else one; the run itself (here: a data-set error after the config is read)
    happens once."""
    from conftest import write_train_config

    starts = tmp_path / "starts.txt"
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        f"with open({str(starts)!r}, 'a') as f:\n"
        "    f.write(repr(os.environ.get('GLIBC_TUNABLES')) + '\\n')\n")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    config = write_train_config(tmp_path / "cfg.yml", tmp_path / "no_data")
    done = subprocess.run([sys.executable, TRAIN, "--config", str(config), *(["--recompute"] if recompute else [])],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("no_data: folder not found") == 1, done.stderr
    expected = ["None", "'glibc.malloc.hugetlb=1'"] if recompute else ["None"]
    assert starts.read_text().splitlines() == expected


def test_recompute_keeps_16_mb_only_with_huge_pages_on(monkeypatch):
    monkeypatch.setattr(memory, "huge_pages_on", lambda environ: "GLIBC_TUNABLES" in environ)
    on = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert memory.keep_bytes(on, recompute=True) == 16 << 20
    assert memory.keep_bytes(on) == memory.keep_bytes({}, recompute=True) == 32 << 20
    assert memory.keep_bytes({**on, "PADDLESEG_MALLOC_KEEP_MB": "8"}, recompute=True) == 8 << 20
