"""paddleseg.deploy.speed: runs are interleaved round by round, the CPU's model and flags are read, the
end-to-end rate goes through the shared prediction loop; tools/benchmark_infer.py's upstream child
answers one timed step per request (with a stand-in for upstream's script)."""
import importlib.util
import sys
import textwrap

import numpy as np
import pytest

from paddleseg.deploy import speed

from conftest import REPO


def test_runs_are_interleaved_after_their_warm_up():
    calls = []
    times = speed.interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=2,
                                    repeats=3)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert [len(t) for t in times.values()] == [3, 3] and all(v >= 0 for t in times.values() for v in t)


def test_median_and_p90_in_milliseconds():
    assert speed.median_p90_ms([0.001, 0.002, 0.003, 0.004, 0.010]) == pytest.approx((3.0, 7.6))


def test_cpu_flags_come_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)  # no lscpu: /proc/cpuinfo's name
    cpu = speed.cpu_summary(info)
    assert cpu["model"] == "Test CPU 9000"
    assert cpu["flags"]["avx512_bf16"] and cpu["flags"]["amx"] and not cpu["flags"]["avx512_vnni"]
    assert speed.cpu_text(cpu) == ("CPU Test CPU 9000: avx2 yes, avx512f yes, avx512_bf16 yes, avx512_vnni no, "
                                   "amx yes")


def test_end_to_end_rate_runs_the_prediction_loop(tmp_path):
    import cv2

    from paddleseg.deploy.backends import BackendOptions, create_backend
    from paddleseg.deploy.config import load_deploy

    from test_tools_infer import tiny_onnx_export

    deploy = load_deploy(tiny_onnx_export(tmp_path / "export") / "deploy.yaml")
    images = []
    for i in range(3):
        images.append(tmp_path / "in" / f"{i}.png")
        images[-1].parent.mkdir(exist_ok=True)
        cv2.imwrite(str(images[-1]), np.full((6, 9, 3), 40 * i, np.uint8))
    rate = speed.end_to_end_rate(create_backend("onnxruntime", deploy, BackendOptions(threads=1)), deploy, images,
                                 tmp_path / "out")
    assert rate > 0
    assert sorted(p.name for p in (tmp_path / "out" / "pseudo_color_prediction").iterdir()) == ["0.png", "1.png",
                                                                                                 "2.png"]


def test_the_upstream_child_answers_one_timed_step_per_request(monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_infer", REPO / "tools" / "benchmark_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "UPSTREAM_SCRIPT", textwrap.dedent("""
        import json, sys
        print("noise"); print("READY " + json.dumps(["dygraph", "deployed"]), flush=True)
        for line in sys.stdin:
            print(f"TIME {len(line.strip()) / 1000}", flush=True)
    """))
    upstream = module.Upstream(sys.executable, 2.0, [1, 3, 8, 8], 1, 2)
    assert upstream.names == ["dygraph", "deployed"]
    times = module.interleaved({name: (lambda n=name: upstream.timed(n)) for name in upstream.names}, 2)
    upstream.close()
    assert times == {"dygraph": [0.007, 0.007], "deployed": [0.008, 0.008]}
    assert upstream.proc.returncode == 0


@pytest.mark.parametrize("output_op", ["argmax", "softmax"])
def test_stage_costs_time_every_step_besides_the_model_and_write_only_into_work(tmp_path, output_op):
    import cv2
    import yaml

    from paddleseg.deploy.config import load_deploy

    from test_tools_infer import tiny_onnx_export

    folder = tiny_onnx_export(tmp_path / "export")
    text = yaml.safe_load((folder / "deploy.yaml").read_text())
    text["Deploy"]["output_op"] = output_op
    text["Deploy"]["transforms"].insert(0, {"type": "Resize", "target_size": [16, 8]})  # labels fit back: 21x13
    (folder / "deploy.yaml").write_text(yaml.safe_dump(text))
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (13, 21, 3), np.uint8))
    (tmp_path / "work").mkdir()
    costs = speed.stage_costs(load_deploy(folder / "deploy.yaml"), image, tmp_path / "work", repeats=2)
    expected = ["read (decode)", "preprocess", "overlay (colour lookup, blend)", "overlay PNG (encode, write)",
                "colour-map PNG (encode, write)"]
    if output_op != "argmax":
        expected.insert(2, "labels from scores")
    assert list(costs) == expected and all(ms >= 0 for ms in costs.values())
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["overlay.png", "pseudo.png"]
    assert cv2.imread(str(tmp_path / "work" / "overlay.png")).shape == (13, 21, 3)


def test_benchmark_images_are_street_scenes_of_the_input_size(tmp_path):
    import cv2

    spec = importlib.util.spec_from_file_location("benchmark_infer", REPO / "tools" / "benchmark_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.write_images(tmp_path, [1, 3, 40, 72], 2)
    images = [cv2.imread(str(p)) for p in paths]
    assert [i.shape for i in images] == [(40, 72, 3)] * 2 and not np.array_equal(images[0], images[1])
    assert len(np.unique(images[0].reshape(-1, 3), axis=0)) > 50  # textured, not flat
