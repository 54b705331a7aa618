"""Inference speed of ESPNetV2 on CPU: dygraph eval, Paddle Inference (oneDNN on) and ONNX Runtime,
beside upstream PaddleSeg 2.8's dygraph and deployed figures measured in the same run.

    python tools/benchmark_infer.py --upstream-python /tmp/upstream_venv/bin/python [--batch 4]

Upstream runs in its own virtualenv (PyPI ``paddleseg==2.8.0``; never installed beside this package)
through a subprocess; without ``--upstream-python`` only our figures are printed. Weights are random:
speed does not depend on them. A benchmark to read, not a timed test. ``--batch N`` (default 4) adds
rows for Paddle Inference and ONNX Runtime on N images at once; their images/s counts all N.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

CONV_GMACS_S2_512x1024 = 5.65   # the model's convolutions at 1x3x512x1024, scale 2.0
MATMUL_GFLOPS = 165.0           # float32 matrix product on this machine (2 threads)

UPSTREAM_SCRIPT = r"""
import json, sys, tempfile, time
import numpy as np, paddle
from paddle import inference
from paddleseg.models import ESPNetV2
scale, shape, warmup, repeats, threads = json.loads(sys.argv[1])
def timed(fn):
    for _ in range(warmup): fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return out
model = ESPNetV2(num_classes=19, scale=scale, drop_prob=0.0); model.eval()
x = np.random.default_rng(0).standard_normal(shape).astype("float32")
with paddle.no_grad():
    xt = paddle.to_tensor(x)
    dygraph = timed(lambda: model(xt)[0].numpy())
folder = tempfile.mkdtemp()
static = paddle.jit.to_static(model, input_spec=[paddle.static.InputSpec([-1, 3, -1, -1], "float32", "x")])
paddle.jit.save(static, folder + "/model")
config = inference.Config(folder + "/model.json", folder + "/model.pdiparams")
config.disable_gpu(); config.disable_mkldnn()  # upstream's export fails under oneDNN (bilinear_interp)
config.set_cpu_math_library_num_threads(threads); config.disable_glog_info()
predictor = inference.create_predictor(config)
handle = predictor.get_input_handle(predictor.get_input_names()[0])
def run():
    handle.copy_from_cpu(x); predictor.run()
    predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
print("RESULT " + json.dumps({"dygraph": dygraph, "paddle_inference_onednn_off": timed(run)}))
"""


def timed(fn: Callable[[], object], warmup: int, repeats: int) -> List[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def ours(scale: float, shape: Sequence[int], warmup: int, repeats: int, threads: int,
         batch: int) -> Dict[str, Tuple[int, List[float]]]:
    """{path: (images per run, seconds per run)}: dygraph, Paddle Inference and ONNX Runtime on
    ``shape``, and the two deployed paths on ``batch`` copies of it when ``batch`` > 1."""
    import onnxruntime as ort
    import paddle
    from paddle import inference

    from paddleseg.core.export import export_model
    from paddleseg.models import ESPNetV2
    from paddleseg.utils.device import set_device

    set_device("cpu", threads)  # explicitly: paddle may have been imported (OMP_NUM_THREADS=1) before main()
    model = ESPNetV2(19, scale=scale, drop_prob=0.0)
    model.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    results = {}
    with paddle.no_grad():
        xt = paddle.to_tensor(x)
        results["dygraph"] = (len(x), timed(lambda: model(xt)[0].numpy(), warmup, repeats))
    folder = Path(tempfile.mkdtemp())
    export_model(model, folder, transforms=[{"type": "Normalize"}], num_classes=19, output_op="argmax", onnx=True)

    config = inference.Config(str(folder / "model.json"), str(folder / "model.pdiparams"))
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    output = predictor.get_output_handle(predictor.get_output_names()[0])

    def run_paddle(x):
        handle.copy_from_cpu(x)
        predictor.run()
        output.copy_to_cpu()

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    batched = np.concatenate([x] * batch)
    for suffix, inputs in [("", x)] + ([(f" batch {batch}", batched)] if batch > 1 else []):
        results[f"paddle_inference_onednn{suffix}"] = (len(inputs), timed(lambda: run_paddle(inputs), warmup, repeats))
        results[f"onnxruntime{suffix}"] = (len(inputs), timed(lambda: session.run(None, {"x": inputs}), warmup,
                                                              repeats))
    return results


def upstream(python: str, scale: float, shape: Sequence[int], warmup: int, repeats: int,
             threads: int) -> Optional[Dict[str, List[float]]]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([python, "-c", UPSTREAM_SCRIPT, json.dumps([scale, list(shape), warmup, repeats, threads])],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"upstream run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--shape", type=int, nargs=4, default=[1, 3, 512, 1024])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=4, help="images per run of the batched rows (1: no batched rows)")
    p.add_argument("--upstream-python", help="python of a virtualenv with paddleseg==2.8.0")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from prettytable import PrettyTable

    figures = {f"ours: {k}": v for k, v in ours(args.scale, args.shape, args.warmup, args.repeats,
                                                 args.threads, args.batch).items()}
    theirs = None
    if args.upstream_python:
        theirs = upstream(args.upstream_python, args.scale, args.shape, args.warmup, args.repeats, args.threads)
        figures.update({f"upstream 2.8: {k}": (args.shape[0], v) for k, v in (theirs or {}).items()})
    floor = 2 * CONV_GMACS_S2_512x1024 / MATMUL_GFLOPS if args.scale == 2.0 and args.shape == [1, 3, 512, 1024] else None
    table = PrettyTable(["path", "images/run", "median s/run", "p90 s/run", "images/s", "x floor"])
    for name, (images, times) in figures.items():
        med = float(np.median(times))
        table.add_row([name, images, f"{med:.3f}", f"{np.percentile(times, 90):.3f}", f"{images / med:.2f}",
                       f"{med / images / floor:.1f}" if floor else "-"])
    print(f"ESPNetV2 scale {args.scale}, input {args.shape}, {args.threads} threads, "
          f"{args.repeats} runs after {args.warmup} warm-up")
    print(table)
    if floor:
        print(f"compute floor ({CONV_GMACS_S2_512x1024} G MACs at {MATMUL_GFLOPS:.0f} GFLOP/s): {floor:.3f} s")
    if theirs:
        med = {k: float(np.median(v)) for k, (_, v) in figures.items()}
        best = min(med["ours: paddle_inference_onednn"], med["ours: onnxruntime"])
        print(f"best deployed ours / upstream deployed: {best / med['upstream 2.8: paddle_inference_onednn_off']:.3f}"
              f" (target <= 0.333)")
        print(f"dygraph ours / upstream: {med['ours: dygraph'] / med['upstream 2.8: dygraph']:.3f} (target <= 0.9)")
    return 0


if __name__ == "__main__":
    from paddleseg.utils.cli import run

    sys.exit(run(main))
