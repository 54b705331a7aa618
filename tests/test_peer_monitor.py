"""The failed-rank monitor judges a peer's PID only where it means something: same host, same PID
namespace, same job attempt."""
import os
import signal
import subprocess
import sys
import time

from paddleseg.utils import peer_monitor
from paddleseg.utils.peer_monitor import find_failure, namespace

JOB = "10.0.0.1:8090|10.0.0.1:6070,10.0.0.2:6071"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write(path, tag, body):
    path.write_text(f"{tag}\n{body}\n", encoding="utf-8")


def test_a_dead_pid_recorded_on_another_host_or_container_does_not_stop_the_job(tmp_path):
    pid = dead_pid()
    write(tmp_path / "rank_1.pid", JOB, f"{pid} other-node/1234-boot/4026531836")
    write(tmp_path / "rank_2.pid", JOB, f"{pid} {namespace().rsplit('/', 1)[0]}/999")  # another PID namespace
    assert find_failure(tmp_path, "0", JOB) is None


def test_a_dead_pid_on_this_host_is_named(tmp_path):
    pid = dead_pid()
    write(tmp_path / "rank_1.pid", JOB, f"{pid} {namespace()}")
    message = find_failure(tmp_path, "0", JOB)
    assert message is not None and f"rank 1 (pid {pid}) exited without an error report" in message


def test_files_of_an_earlier_attempt_with_the_same_master_are_ignored(tmp_path):
    earlier = "10.0.0.1:8090|10.0.0.1:5555,10.0.0.2:5556"  # same --master, other trainer ports
    write(tmp_path / "rank_1.pid", earlier, f"{dead_pid()} {namespace()}")
    write(tmp_path / "failed_rank_1.txt", earlier, "old failure")
    assert find_failure(tmp_path, "0", JOB) is None


def test_a_failure_report_from_another_host_still_stops_the_job(tmp_path):
    write(tmp_path / "failed_rank_3.txt", JOB, "data/x.png: unreadable or truncated image")
    assert "rank 3 failed: data/x.png: unreadable" in find_failure(tmp_path, "0", JOB)


def test_the_monitor_runs_as_a_file_with_the_standard_library_only(tmp_path):
    """start_watchdog runs peer_monitor.py by its path: it starts without the package (or Paddle) and
    exits 0 once its rank is gone."""
    command = [sys.executable, "-X", "importtime", peer_monitor.__file__, str(tmp_path), "0", JOB, str(dead_pid())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "processes" in imported
    assert not {name.split(".")[0] for name in imported} & {"paddle", "paddleseg"}



def start_rank_and_monitor(tmp_path):
    """A stand-in rank leading its own process group, and its monitor inside that group (as a rank's
    monitor is under paddle.distributed.launch, which stops a rank with SIGTERM to its group)."""
    rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=os.setpgrp)
    monitor = subprocess.Popen([sys.executable, peer_monitor.__file__, str(tmp_path), "0", JOB, str(rank.pid)],
                               stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.setpgid(0, rank.pid))
    time.sleep(1.0)  # the monitor has started and ignores the signals
    return rank, monitor


def stop(*processes):
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_monitor_outlives_a_sigterm_to_its_group_and_exits_with_its_rank(tmp_path):
    rank, monitor = start_rank_and_monitor(tmp_path)
    try:
        os.killpg(rank.pid, signal.SIGTERM)
        rank.wait(timeout=30)
        _, err = monitor.communicate(timeout=30)
    finally:
        stop(rank, monitor)
    assert rank.returncode == -signal.SIGTERM
    assert monitor.returncode == 0, err  # not -SIGTERM: it left on its own, having looked once more


def test_a_peer_lost_just_before_the_group_is_stopped_is_still_named(tmp_path):
    """The launcher's SIGTERM comes right after a peer vanished: the line naming it is still written."""
    rank, monitor = start_rank_and_monitor(tmp_path)
    lost = dead_pid()
    try:
        write(tmp_path / "rank_1.pid", JOB, f"{lost} {namespace()}")
        os.killpg(rank.pid, signal.SIGTERM)
        _, err = monitor.communicate(timeout=30)
    finally:
        stop(rank, monitor)
    assert monitor.returncode == 3, err
    assert f"error: rank 1 (pid {lost}) exited without an error report" in err
