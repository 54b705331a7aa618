"""Video throughput: frames per second end to end (decode, preprocess, model, label, overlay, MP4 encode)
against the model alone, for every deploy backend that runs here, and the peak resident memory at two
video lengths (it should not grow with the length: the pipeline's queues are bounded).

    python tools/benchmark_video.py --model_dir output/export_softmax [--frames 120 480] [--size 256 128] \\
        [--backends paddle onnxruntime openvino] [--temporal_smoothing 0.7 --flow] [--rounds 2] [--json out.json]

The video is the synthetic moving-camera clip (paddleseg.datasets.synthetic, as clip.mp4) at ``--size``,
repeated to each length. Each (backend, length, round) runs in a fresh process, so its peak RSS is its
own: the model alone on one preprocessed frame, in a thread as the pipeline runs it (the median of
``--repeats`` timed runs, taken before and after, averaged: the machine's load drifts), then the whole
video through ``paddleseg.deploy.pipeline.predict_video`` (frames/s after the first batch). Rounds alternate the
backends, so that the background load of a shared machine hits all of them alike; the table gives the
median over rounds. Prints the CPU's model and flags (lscpu), a table, and with ``--json`` writes the
figures. A benchmark to read, not a timed test.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cpu_description() -> Dict[str, str]:
    """lscpu's model name and flags (the CPU's, for docs/performance.md)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"model": fields.get("Model name", "?").strip(), "cpus": fields.get("CPU(s)", "?").strip(),
            "flags": fields.get("Flags", "?").strip()}


def write_video(folder: Path, frames: int, size: Sequence[int]) -> Path:
    """The synthetic clip at ``size`` repeated (forth and back, so that the motion stays smooth) to
    ``frames`` frames, as an MP4."""
    import cv2

    from paddleseg.datasets.synthetic import CLIP_FPS, make_clip

    clip = make_clip(48, int(size[0]), int(size[1]), seed=0)
    order = list(range(48)) + list(range(47, -1, -1))
    path = folder / f"clip_{frames}.mp4"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, tuple(size))
    for i in range(frames):
        writer.write(cv2.cvtColor(clip.frames[order[i % len(order)]], cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def child(job: Dict) -> Dict:
    """One measurement in this process (module docstring)."""
    import logging

    from paddleseg.deploy.backends import BackendOptions, create_backend
    from paddleseg.deploy.config import load_deploy
    from paddleseg.deploy.inputs import collect_video
    from paddleseg.deploy.outputs import palette_table
    from paddleseg.deploy.pipeline import VideoSettings, labels_at_image_size, predict_video
    from paddleseg.deploy.preprocess import make_preprocess
    from paddleseg.deploy.video import open_source

    logging.basicConfig(level=logging.WARNING)
    deploy = load_deploy(Path(job["model_dir"]) / "deploy.yaml")
    backend = create_backend(job["backend"], deploy, BackendOptions(threads=job["threads"]))
    preprocess = make_preprocess(deploy.transforms)
    video = collect_video(job["video"])

    def model_alone() -> float:
        """Frames/s of the model on one frame, in a thread of its own as the pipeline runs it (Paddle
        Inference was measured slower from the main thread)."""
        with open_source(video) as source:
            x = preprocess(next(source.frames())[1])
        times: List[float] = []

        def timed() -> None:
            for _ in range(job["warmup"]):
                backend.run(x)
            for _ in range(job["repeats"]):
                start = time.perf_counter()
                backend.run(x)
                times.append(time.perf_counter() - start)

        thread = threading.Thread(target=timed)
        thread.start()
        thread.join()
        return 1.0 / float(np.median(times))

    before = model_alone()
    settings = VideoSettings(smoothing=job["smoothing"], flow=job["flow"])
    with open_source(video) as source:
        summary = predict_video("clip", source, backend, preprocess, Path(job["out"]), palette_table(deploy.palette),
                                postprocess=labels_at_image_size(deploy.output_op), output_op=deploy.output_op,
                                settings=settings)
    after = model_alone()
    return {"backend": job["backend"], "described": backend.described, "frames": summary.done,
            "model_fps": (before + after) / 2, "end_to_end_fps": summary.end_to_end_rate(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(job: Dict) -> Optional[Dict]:
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]))
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                          env=env, cwd=tempfile.gettempdir())
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        print(f"{job['backend']}: failed (exit {done.returncode}): {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT "):])


def table(results: List[Dict]) -> str:
    from prettytable import PrettyTable

    rows = PrettyTable(["backend", "frames", "model alone, frames/s", "end to end, frames/s", "end to end / model",
                        "peak RSS, MB"])
    keys = sorted({(r["backend"], r["frames"]) for r in results}, key=lambda k: (k[0], k[1]))
    for backend, frames in keys:
        runs = [r for r in results if (r["backend"], r["frames"]) == (backend, frames)]
        model = float(np.median([r["model_fps"] for r in runs]))
        e2e = float(np.median([r["end_to_end_fps"] for r in runs]))
        ratio = float(np.median([r["end_to_end_fps"] / r["model_fps"] for r in runs]))
        rows.add_row([backend, frames, f"{model:.1f}", f"{e2e:.1f}", f"{ratio:.2f}",
                      f"{np.median([r['peak_rss_mb'] for r in runs]):.0f}"])
    return str(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", type=Path, help="an export (with model.onnx for onnxruntime and openvino)")
    p.add_argument("--backends", nargs="+", help="default: every backend of paddleseg.deploy.backends")
    p.add_argument("--frames", type=int, nargs="+", default=[120, 480], help="video lengths")
    p.add_argument("--size", type=int, nargs=2, default=[256, 128], metavar=("W", "H"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--temporal_smoothing", type=float, default=0.0)
    p.add_argument("--flow", action="store_true")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if args.model_dir is None:
        p.error("--model_dir is required")
    from paddleseg.deploy.backends import BACKENDS

    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({cpu['cpus']} CPUs)\nflags: {cpu['flags']}")
    backends = args.backends or sorted(BACKENDS)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = {n: write_video(Path(tmp), n, args.size) for n in args.frames}
        for _ in range(args.rounds):
            for frames in args.frames:
                for backend in backends:
                    job = {"backend": backend, "model_dir": str(args.model_dir.resolve()), "video": str(videos[frames]),
                           "out": str(Path(tmp) / "out"), "threads": args.threads, "warmup": args.warmup,
                           "repeats": args.repeats, "smoothing": args.temporal_smoothing, "flow": args.flow}
                    result = measure(job)
                    if result is not None:
                        results.append(result)
                        print(f"  {backend}, {frames} frames: model {result['model_fps']:.1f} frames/s, end to end "
                              f"{result['end_to_end_fps']:.1f} frames/s, peak RSS {result['peak_rss_mb']:.0f} MB",
                              flush=True)
    smoothing = f", --temporal_smoothing {args.temporal_smoothing}{' --flow' if args.flow else ''}" \
        if args.temporal_smoothing else ""
    print(f"{args.size[0]}x{args.size[1]} frames, {args.threads} threads{smoothing}, median of {args.rounds} round(s)")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "size": args.size, "threads": args.threads,
                                         "temporal_smoothing": args.temporal_smoothing, "flow": args.flow,
                                         "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
