"""paddleseg.utils.atomic: a folder is replaced whole or not at all, a killed replacement is
recoverable, and a rewritten file keeps its mode and its symlink."""
import os
import stat
import subprocess
import sys

import pytest

from paddleseg.utils.atomic import atomic_folder, atomic_write_text, old_folder, partial_folder, publish, recover


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def files(folder):
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def make(folder, **content):
    folder.mkdir(parents=True)
    for name, text in content.items():
        (folder / name).write_text(text)
    return folder


def test_atomic_folder_replaces_the_whole_folder_and_keeps_its_mode(tmp_path):
    final = make(tmp_path / "export", a="old a", b="old b")
    final.chmod(0o750)
    with atomic_folder(final) as work:
        assert work.parent == tmp_path and work.name.startswith(".export.partial-")
        assert not final.joinpath("c").exists()
        (work / "c").write_text("new c")
    assert files(final) == {"c": "new c"}
    assert stat.S_IMODE(final.stat().st_mode) == 0o750
    assert leftovers(tmp_path) == []


def test_an_error_inside_keeps_the_old_folder_and_no_partial(tmp_path):
    final = make(tmp_path / "export", a="old a")
    with pytest.raises(RuntimeError, match="broken"):
        with atomic_folder(final) as work:
            (work / "a").write_text("half-written")
            raise RuntimeError("broken")
    assert files(final) == {"a": "old a"}
    assert leftovers(tmp_path) == []


def test_atomic_folder_creates_missing_parents_and_follows_a_symlink(tmp_path):
    real = make(tmp_path / "real", a="old")
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_folder(link) as work:
        (work / "b").write_text("new")
    assert link.is_symlink() and files(real) == {"b": "new"}
    with atomic_folder(tmp_path / "x" / "y") as work:
        (work / "c").write_text("c")
    assert files(tmp_path / "x" / "y") == {"c": "c"}


def test_atomic_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(NotADirectoryError):
        with atomic_folder(tmp_path / "f"):
            pass
    assert (tmp_path / "f").read_text() == "keep" and leftovers(tmp_path) == []


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    final = make(tmp_path / "export", a="old")
    tmp = make(partial_folder(final), a="new")
    real_rename = os.rename

    def rename(src, dst):
        if str(src) == str(tmp):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        publish(tmp, final)
    assert files(final) == {"a": "old"} and not old_folder(final).exists()


def test_recover_restores_an_old_folder_left_between_the_two_renames(tmp_path):
    pid = dead_pid()
    final = tmp_path / "export"
    make(tmp_path / f".export.old-{pid}", a="previous")      # killed after renaming it aside ...
    make(tmp_path / f".export.partial-{pid}", a="new")       # ... before renaming the new one in
    handled = recover(final)
    assert len(handled) == 2
    assert files(final) == {"a": "previous"} and leftovers(tmp_path) == []


def test_recover_deletes_an_old_folder_once_its_replacement_is_in(tmp_path):
    final = make(tmp_path / "export", a="new")
    make(tmp_path / f".export.old-{dead_pid()}", a="previous")  # killed before deleting it
    recover(final)
    assert files(final) == {"a": "new"} and leftovers(tmp_path) == []


def test_recover_leaves_running_processes_and_other_names_alone(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        make(tmp_path / f".export.partial-{live.pid}", a="in progress")
        make(tmp_path / f".exports.partial-{dead_pid()}", a="another target")
        assert recover(tmp_path / "export") == []
        assert leftovers(tmp_path) == sorted(p.name for p in tmp_path.iterdir())
    finally:
        live.kill()
        live.wait()


def test_atomic_write_text_keeps_the_mode(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("old\n")
    path.chmod(0o640)
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_atomic_write_text_gives_a_new_file_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "n.yml", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "n.yml").stat().st_mode) == 0o640


def test_atomic_write_text_writes_through_a_symlink(tmp_path):
    real = tmp_path / "configs" / "real.yml"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "link.yml"
    link.symlink_to(os.path.relpath(real, tmp_path))
    assert atomic_write_text(link, "new\n") == real
    assert link.is_symlink() and os.readlink(link) == "configs/real.yml"
    assert real.read_text() == "new\n"
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []


def test_atomic_write_text_failure_leaves_the_file(tmp_path, monkeypatch):
    path = tmp_path / "c.yml"
    path.write_text("old\n")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n" and leftovers(tmp_path) == []


def test_the_folder_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    """A training run holds its save_dir's lock and still replaces folders inside it (no self-deadlock);
    another process is refused at once."""
    import subprocess
    import sys

    from paddleseg.utils.atomic import atomic_folder, folder_lock

    with folder_lock(tmp_path, blocking=False):
        with atomic_folder(tmp_path / "report") as work:
            (work / "index.html").write_text("ok")
        probe = subprocess.run([sys.executable, "-c", (
            "import fcntl, os, sys\n"
            f"fd = os.open({str(tmp_path)!r}, os.O_RDONLY)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")])
        assert probe.returncode == 3
    assert (tmp_path / "report" / "index.html").read_text() == "ok"
