"""Inference speed of ESPNetV2 on the CPU: dygraph eval, Paddle Inference (oneDNN on), ONNX Runtime and
OpenVINO (fp32, bf16 where the CPU reports BF16, int8 where the export records a verified int8 model),
beside upstream PaddleSeg 2.8's dygraph and deployed figures, all interleaved in one run.

    python tools/benchmark_infer.py [--upstream-python /tmp/upstream_venv/bin/python] [--batch 4]
    python tools/benchmark_infer.py --model_dir output/export     # an export (its int8 model too), not random weights

Every round runs each path once, in turn (upstream's too: it runs in its own virtualenv, PyPI
``paddleseg==2.8.0``, never installed beside this package, as a child process that runs one step per
request), so other programs' load falls on all paths alike. Columns: the model alone (median and p90
seconds per run, images/s) and end to end (``--e2e_images`` images of the input size read, run and
written through the shared prediction loop, paddleseg.deploy.pipeline; images/s, median of
``--e2e_rounds`` interleaved rounds). The CPU's model name and flags are printed with the table.
Without ``--model_dir`` the weights are random (speed does not depend on them) and the bf16 row is
not a verified precision: accuracy is tools/deploy_check.py's job. A benchmark to read, not a timed
test. ``--batch N`` (default 4) adds Paddle Inference and ONNX Runtime rows on N images at once.
``--stages`` adds a table of what one image costs besides the model (read, preprocess, labels, overlay,
the two PNGs; milliseconds on one thread): the CPU the end-to-end column needs beyond the model's.
``--json FILE`` writes every figure with the CPU's name and flags. The images are synthetic street scenes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

CONV_GMACS_S2_512x1024 = 5.65   # the model's convolutions at 1x3x512x1024, scale 2.0
MATMUL_GFLOPS = 165.0           # float32 matrix product on this machine (2 threads)

UPSTREAM_SCRIPT = r"""
import json, sys, tempfile, time
import numpy as np, paddle
from paddle import inference
from paddleseg.models import ESPNetV2
scale, shape, warmup, threads = json.loads(sys.argv[1])
model = ESPNetV2(num_classes=19, scale=scale, drop_prob=0.0); model.eval()
x = np.random.default_rng(0).standard_normal(shape).astype("float32")
xt = paddle.to_tensor(x)
def dygraph():
    with paddle.no_grad():
        model(xt)[0].numpy()
folder = tempfile.mkdtemp()
static = paddle.jit.to_static(model, input_spec=[paddle.static.InputSpec([-1, 3, -1, -1], "float32", "x")])
paddle.jit.save(static, folder + "/model")
config = inference.Config(folder + "/model.json", folder + "/model.pdiparams")
config.disable_gpu(); config.disable_mkldnn()  # upstream's export fails under oneDNN (bilinear_interp)
config.set_cpu_math_library_num_threads(threads); config.disable_glog_info()
predictor = inference.create_predictor(config)
handle = predictor.get_input_handle(predictor.get_input_names()[0])
def deployed():
    handle.copy_from_cpu(x); predictor.run()
    predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
runs = {"dygraph": dygraph, "paddle_inference_onednn_off": deployed}
for run in runs.values():
    for _ in range(warmup): run()
print("READY " + json.dumps(list(runs)), flush=True)
for line in sys.stdin:
    start = time.perf_counter(); runs[line.strip()](); print(f"TIME {time.perf_counter() - start}", flush=True)
"""


class Upstream:
    """Upstream PaddleSeg 2.8 in its own Python, one timed step per request (module docstring)."""

    def __init__(self, python: str, scale: float, shape: Sequence[int], warmup: int, threads: int):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen([python, "-c", UPSTREAM_SCRIPT, json.dumps([scale, list(shape), warmup, threads])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=tempfile.gettempdir())
        line = self._line("READY ")
        self.names = json.loads(line) if line is not None else []

    def _line(self, prefix: str) -> Optional[str]:
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix):]
        print(f"upstream run failed (exit {self.proc.wait()})", file=sys.stderr)
        return None

    def timed(self, name: str) -> float:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return float(self._line("TIME ") or "nan")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def random_export(scale: float, folder: Path, threads: int):
    """A random-weights model of ``scale`` and its export (ONNX and, with OpenVINO installed, the IR)."""
    import importlib.util

    from paddleseg.core.export import export_model
    from paddleseg.models import ESPNetV2

    model = ESPNetV2(19, scale=scale, drop_prob=0.0)
    model.eval()
    export_model(model, folder, transforms=[{"type": "Normalize"}], num_classes=19, output_op="argmax", onnx=True,
                 openvino=importlib.util.find_spec("openvino") is not None)
    return model


def deployed_paths(deploy, threads: int) -> Dict[str, object]:
    """Every runtime and precision of this machine for ``deploy``: {name: backend}."""
    from paddleseg.core.deploy_check import available_paths, build_path

    paths = {}
    for backend, precision in available_paths(deploy):
        verified = precision == "fp32" or precision in deploy.verified.get(backend, {})
        paths[f"{backend} {precision}{'' if verified else ' (unverified)'}"] = build_path(deploy, backend, precision,
                                                                                          threads)
    return paths


def interleaved(runs: Dict[str, Callable[[], float]], repeats: int) -> Dict[str, List[float]]:
    """``repeats`` rounds of every run once, each returning its own seconds."""
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return times


def clocked(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def write_images(folder: Path, shape: Sequence[int], count: int) -> List[Path]:
    """``count`` synthetic street scenes of the input's size as PNGs: what they cost to decode and to
    encode as overlays is a photo's, not random noise's (which compresses far worse)."""
    import cv2

    from paddleseg.datasets.synthetic import make_scene, paint, rasterize

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = [folder / f"{i:03d}.png" for i in range(count)]
    height, width = shape[2], shape[3]
    for path in paths:
        objects = make_scene(rng, width, height)
        cv2.imwrite(str(path), cv2.cvtColor(paint(objects, rasterize(objects, width, height), rng), cv2.COLOR_RGB2BGR))
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--shape", type=int, nargs=4, default=[1, 3, 512, 1024])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=4, help="images per run of the batched rows (1: no batched rows)")
    p.add_argument("--model_dir", type=Path, help="an export to time (default: a random-weights model of --scale)")
    p.add_argument("--e2e_images", type=int, default=8, help="images per end-to-end pass (0: no end-to-end column)")
    p.add_argument("--e2e_rounds", type=int, default=3)
    p.add_argument("--upstream-python", help="python of a virtualenv with paddleseg==2.8.0")
    p.add_argument("--stages", action="store_true",
                   help="also time each step besides the model for one image of the input size (ms, one thread)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from paddleseg.utils.device import set_device

    set_device("cpu", args.threads)  # explicitly: paddle may have been imported (OMP_NUM_THREADS=1) before main()
    with tempfile.TemporaryDirectory(prefix="benchmark_infer_") as work:
        return benchmark(args, Path(work))


def benchmark(args: argparse.Namespace, work: Path) -> int:
    import paddle
    from prettytable import PrettyTable

    from paddleseg.deploy.config import load_deploy
    from paddleseg.deploy.speed import cpu_summary, cpu_text, end_to_end_rate, stage_costs

    model = None if args.model_dir else random_export(args.scale, work / "export", args.threads)
    deploy = load_deploy((args.model_dir or work / "export") / "deploy.yaml")
    x = np.random.default_rng(0).standard_normal(args.shape).astype("float32")
    backends = deployed_paths(deploy, args.threads)
    runs: Dict[str, Callable[[], float]] = {}
    images: Dict[str, int] = {}
    if model is not None:
        xt = paddle.to_tensor(x)

        def dygraph():
            with paddle.no_grad():
                model(xt)[0].numpy()
        runs["ours: dygraph"] = clocked(dygraph)
    for name, backend in backends.items():
        runs[f"ours: {name}"] = clocked(lambda b=backend: b.run(x))
    batched = np.concatenate([x] * args.batch)
    for name in ("paddle fp32", "onnxruntime fp32") if args.batch > 1 and deploy.input_shape[0] == -1 else ():
        if name in backends:
            runs[f"ours: {name} batch {args.batch}"] = clocked(lambda b=backends[name]: b.run(batched))
            images[f"ours: {name} batch {args.batch}"] = args.batch
    upstream = None
    if args.upstream_python:
        upstream = Upstream(args.upstream_python, args.scale, args.shape, args.warmup, args.threads)
        for name in upstream.names:
            runs[f"upstream 2.8: {name}"] = lambda n=name: upstream.timed(n)
    for name, run in runs.items():
        if not name.startswith("upstream"):
            for _ in range(args.warmup):
                run()
    times = interleaved(runs, args.repeats)
    if upstream is not None:
        upstream.close()
    rates: Dict[str, List[float]] = {}
    if args.e2e_images > 0:
        files = write_images(work / "images", args.shape, args.e2e_images)
        for _ in range(args.e2e_rounds):
            for name, backend in backends.items():
                rates.setdefault(f"ours: {name}", []).append(end_to_end_rate(backend, deploy, files, work / "out"))
    at_floor_size = args.scale == 2.0 and args.shape == [1, 3, 512, 1024] and not args.model_dir
    floor = 2 * CONV_GMACS_S2_512x1024 / MATMUL_GFLOPS if at_floor_size else None
    med = {name: float(np.median(t)) for name, t in times.items()}
    ort = med.get("ours: onnxruntime fp32")
    table = PrettyTable(["path", "images/run", "model median s/run", "p90 s/run", "model images/s",
                         "end-to-end images/s", "x ONNX Runtime fp32", "x floor"])
    rows = []
    for name, t in times.items():
        n = images.get(name, args.shape[0])
        rows.append({"path": name, "images_per_run": n, "median_s": med[name], "p90_s": float(np.percentile(t, 90)),
                     "end_to_end_images_per_s": float(np.median(rates[name])) if name in rates else None,
                     "vs_onnxruntime_fp32": med[name] / n / ort if ort else None})
        table.add_row([name, n, f"{med[name]:.3f}", f"{np.percentile(t, 90):.3f}", f"{n / med[name]:.2f}",
                       f"{np.median(rates[name]):.2f}" if name in rates else "-",
                       f"{med[name] / n / ort:.2f}" if ort else "-", f"{med[name] / n / floor:.1f}" if floor else "-"])
    costs = {}
    if args.stages:
        costs = stage_costs(deploy, write_images(work / "stage_image", args.shape, 1)[0], work, repeats=args.repeats)
    what = f"export {args.model_dir}" if args.model_dir else f"ESPNetV2 scale {args.scale} (random weights)"
    print(f"{what}, input {args.shape}, {args.threads} threads, {args.repeats} interleaved rounds after "
          f"{args.warmup} warm-up; end to end: {args.e2e_images} images x {args.e2e_rounds} rounds")
    print(cpu_text(cpu_summary()))
    print(table)
    if costs:
        steps = PrettyTable(["step besides the model (one image, one thread)", "median ms"])
        for name, ms in costs.items():
            steps.add_row([name, f"{ms:.2f}"])
        steps.add_row(["total", f"{sum(costs.values()):.2f}"])
        print(steps)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_summary(), "shape": args.shape, "threads": args.threads,
                                         "scale": None if args.model_dir else args.scale, "rows": rows,
                                         "stages_ms": costs}, indent=1) + "\n")
    if floor:
        print(f"compute floor ({CONV_GMACS_S2_512x1024} G MACs at {MATMUL_GFLOPS:.0f} GFLOP/s): {floor:.3f} s")
    if "upstream 2.8: paddle_inference_onednn_off" in med:
        deployed = [v for k, v in med.items() if k.startswith("ours:") and "dygraph" not in k and "batch" not in k]
        theirs = med["upstream 2.8: paddle_inference_onednn_off"]
        print(f"best deployed ours / upstream deployed: {min(deployed) / theirs:.3f} (target <= 0.333)")
        if "ours: dygraph" in med:
            print(f"dygraph ours / upstream: {med['ours: dygraph'] / med['upstream 2.8: dygraph']:.3f} (target <= 0.9)")
    return 0


if __name__ == "__main__":
    from paddleseg.utils.cli import run

    sys.exit(run(main))
