"""tools/benchmark_train.py: the table and the JSON summary of a tiny run of our training step, its
percentile, and its errors. No timing is asserted: the machine's load decides those."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

SCRIPT = REPO / "tools" / "benchmark_train.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("benchmark_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_tiny_run_prints_the_table_and_writes_the_json_summary(tmp_path):
    out = tmp_path / "bench.json"
    done = run_tool("--scale", "0.5", "--height", "64", "--width", "96", "--warmup", "0", "--iters", "2",
                    "--rounds", "2", "--json", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ESPNetV2 scale 0.5, batch 2x3x64x96")
    assert any(line.split("|")[1].strip() == "ours" for line in lines if line.startswith("|")), done.stdout
    assert "upstream" not in done.stdout
    printed = json.loads(lines[-1])
    assert printed == json.loads(out.read_text())
    ours = printed["results"]["ours"]
    assert set(printed["results"]) == {"ours"} and "time_ratio" not in printed
    assert ours["iterations"] == 4 and len(ours["times"]) == 4 and ours["processes"] == 2
    assert all(t > 0 for t in ours["times"])
    assert ours["median_s"] == pytest.approx(float(np.median(ours["times"])))
    assert min(ours["times"]) <= ours["median_s"] <= ours["p90_s"] <= max(ours["times"])
    assert 100 < ours["peak_rss_mb"] < 100_000


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], list(np.linspace(0, 1, 11) ** 2)])
def test_percentile_matches_numpy(values):
    tool = load_tool()
    for q in (0, 50, 90, 100):
        assert tool.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_a_missing_upstream_python_is_a_user_error():
    done = run_tool("--upstream-python", "/nonexistent/bin/python", "--iters", "1")
    assert done.returncode == 2
    assert "--upstream-python /nonexistent/bin/python: no such file" in done.stderr


@pytest.mark.slow
def test_profile_prints_every_op_class_and_their_shares_add_up():
    """``--profile`` on a tiny step (our framework only): the time table and the roofline table name
    every op class, the shares of the classes and of the time outside ops add up to the profiled
    step, and the work behind each floor is there. Op-name classification: tests/test_op_profile.py."""
    done = run_tool("--scale", "0.5", "--batch-size", "1", "--height", "64", "--width", "128", "--warmup", "0",
                    "--iters", "1", "--threads", "2", "--profile", "--profile-iters", "1")
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("|")}
    for name in ("matrix-bound", "memory-bound", "optimizer", "other", "outside ops", "profiled step"):
        assert name in rows, done.stdout
    for cls in ("matrix-bound", "memory-bound"):  # and each has top ops, named with their class
        assert any(name.endswith(f" ({cls})") for name in rows), done.stdout
    assert any(line.startswith("ours: 1 profiled step(s)") and "GFLOP/s" in line and "GB/s" in line
               and "MKL_DEBUG_CPU_TYPE=" in line for line in done.stdout.splitlines()), done.stdout
    profile = json.loads(done.stdout.splitlines()[-1])["profile"]["ours"]
    classes = profile["classes"]
    assert set(classes) == {"matrix-bound", "memory-bound", "optimizer", "other", "outside ops"}
    assert sum(c["share"] for c in classes.values()) == pytest.approx(1.0)
    assert sum(c["ms"] for c in classes.values()) == pytest.approx(profile["step_ms"])
    for name in ("matrix-bound", "memory-bound", "optimizer"):
        assert classes[name]["ms"] > 0 and classes[name]["floor_ms"] > 0, (name, classes[name])
        assert classes[name]["x_floor"] == pytest.approx(classes[name]["ms"] / classes[name]["floor_ms"])
    assert classes["matrix-bound"]["flops"] > 1e6 and classes["memory-bound"]["bytes"] > 1e6
    assert profile["peaks"]["gemm_gflops"] > 0.1 and profile["peaks"]["bandwidth_gbs"] > 0.1
    assert {"matrix-bound", "memory-bound"} <= {o["class"] for o in profile["top_ops"]}


@pytest.mark.slow
def test_recompute_adds_ours_recomputing_beside_ours_and_reports_their_ratios():
    """``--recompute``: a third process, our model recomputing (train.py's set-up) stepped in turn with
    ours without it; the header, the table and the JSON summary say so, with the paired ratios."""
    tool = load_tool()
    _, model = tool.ours(0.5, 10, recompute=True)
    assert model.backbone.level2.recompute and model.backbone.level4[6].recompute  # train.py's set: the backbone
    assert not tool.ours(0.5, 10)[1].recompute and tool.FRAMEWORKS["ours-recompute"](0.5, 10)[1].recompute_refine
    assert "recompute" not in tool.upstream.__code__.co_varnames
    done = run_tool("--scale", "0.5", "--height", "64", "--width", "96", "--warmup", "0", "--iters", "2",
                    "--recompute")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("; ours-recompute: train.py --recompute")
    rows = {line.split("|")[1].strip() for line in lines if line.startswith("|")}
    assert {"ours", "ours-recompute"} <= rows and "upstream" not in rows
    summary = json.loads(lines[-1])
    assert summary["recompute"] is True and set(summary["results"]) == {"ours", "ours-recompute"}
    plain, recomputing = summary["results"]["ours"], summary["results"]["ours-recompute"]
    assert summary["recompute_memory_ratio"] == pytest.approx(recomputing["peak_rss_mb"] / plain["peak_rss_mb"])
    expected = float(np.median([r / o for o, r in zip(plain["times"], recomputing["times"])]))
    assert summary["recompute_time_ratio"] == pytest.approx(expected)
    assert any(line.startswith("ours-recompute / ours: time ") for line in lines)
