"""Comparing runtimes' speed on this machine, fairly: runs interleaved, end-to-end rates through the
shared prediction loop, and the CPU they ran on.

    times = interleaved_times({"onnxruntime fp32": lambda: ort.run(x), "openvino bf16": lambda: ov.run(x)}, 3, 20)
    rate = end_to_end_rate(backend, deploy, images, tmp_dir)      # images/s, as tools/infer.py runs them
    costs = stage_costs(deploy, image_file, tmp_dir)              # ms of each step besides the model
    cpu = cpu_summary()          # {"model": "AMD EPYC", "flags": {"avx2": True, "amx": False, ...}}

Other programs share the CPU: timing one runtime after the other lets a busy minute fall on one of
them. :func:`interleaved_times` runs each once per round instead, so the load falls on all alike.
"""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.images import read_rgb
from paddleseg.deploy.outputs import OutputWriter, output_names, overlay, palette_table, save_pseudo_color, save_rgb
from paddleseg.deploy.pipeline import labels_at_image_size, predict_images
from paddleseg.deploy.postprocess import fit_to_image, to_labels
from paddleseg.deploy.preprocess import make_preprocess

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")


def interleaved_times(runs: Mapping[str, Callable[[], object]], warmup: int = 3,
                      repeats: int = 20) -> Dict[str, List[float]]:
    """Seconds per call of each of ``runs``: ``warmup`` calls each, then ``repeats`` rounds that call
    every one once, in turn."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median_p90_ms(times: Sequence[float]) -> Tuple[float, float]:
    t = np.asarray(times, dtype=np.float64) * 1000.0
    return float(np.median(t)), float(np.percentile(t, 90))


def end_to_end_rate(backend, deploy: DeployConfig, images: Sequence[Path], save_dir: Path) -> float:
    """Images per second through :func:`paddleseg.deploy.pipeline.predict_images` (read, preprocess,
    run, label, write the pictures into ``save_dir``), after one warm-up run on the first image."""
    preprocess = make_preprocess(deploy.transforms)
    backend.run(preprocess(read_rgb(images[0])))  # compiles, allocates: not what a folder of images costs
    root = Path(os.path.commonpath([os.path.abspath(p) for p in images])) if len(images) > 1 else Path(images[0]).parent
    plan = list(zip(images, output_names(list(images), root)))
    writer = OutputWriter(save_dir, palette_table(deploy.palette))
    start = time.perf_counter()
    summary = predict_images(plan, backend, preprocess, writer, postprocess=labels_at_image_size(deploy.output_op))
    return summary.done / (time.perf_counter() - start)


def stage_costs(deploy: DeployConfig, image: Path, work: Path, classes: int = 19,
                repeats: int = 20) -> Dict[str, float]:
    """Median milliseconds of each step the pipeline runs for ``image`` besides the model, one after the
    other on the calling thread: the CPU that end-to-end throughput needs beyond the model's (on a
    machine whose cores all run the model, it comes out of the model's share). Labels from scores are
    timed on random (1, ``classes``, h, w) scores when deploy.yaml's model gives scores; the pictures
    are of a label map of regions 32 pixels wide (a prediction's PNG compresses like that, not like
    per-pixel noise)."""
    preprocess, palette = make_preprocess(deploy.transforms), palette_table(deploy.palette)
    rgb = read_rgb(image)
    h, w = preprocess(rgb).shape[2:]
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((1, classes, h, w)).astype(np.float32)
    regions = rng.integers(0, classes, (-(-h // 32), -(-w // 32))).astype(np.uint8)
    label = fit_to_image(np.kron(regions, np.ones((32, 32), np.uint8))[:h, :w], rgb.shape[:2])
    picture = overlay(rgb, label, palette)
    steps: Dict[str, Callable[[], object]] = {
        "read (decode)": lambda: read_rgb(image), "preprocess": lambda: preprocess(rgb)}
    if deploy.output_op != "argmax":
        steps["labels from scores"] = lambda: to_labels(scores, deploy.output_op, 1)
    steps["overlay (colour lookup, blend)"] = lambda: overlay(rgb, label, palette)
    steps["overlay PNG (encode, write)"] = lambda: save_rgb(picture, work / "overlay.png")
    steps["colour-map PNG (encode, write)"] = lambda: save_pseudo_color(label, work / "pseudo.png", palette)
    times = interleaved_times(steps, warmup=2, repeats=repeats)
    return {name: median_p90_ms(t)[0] for name, t in times.items()}


def cpu_summary(cpuinfo: Path = Path("/proc/cpuinfo")) -> Dict:
    """The CPU's model name (as ``lscpu`` gives it) and which of :data:`CPU_FLAGS` it has (``amx``:
    any AMX flag)."""
    model = ""
    if shutil.which("lscpu"):
        done = subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"})
        found = re.search(r"^Model name:\s*(.+)$", done.stdout, re.MULTILINE)
        model = found.group(1).strip() if found else ""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    if not model:
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else "unknown"
    found = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(found.group(1).split()) if found else set()
    flags = {flag: flag in present for flag in CPU_FLAGS}
    flags["amx"] = any(flags[f] for f in ("amx_bf16", "amx_int8", "amx_tile"))
    return {"model": model, "flags": flags}


def cpu_text(cpu: Dict) -> str:
    """One line: the model and its flags, present ones first."""
    shown = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx")
    return f"CPU {cpu['model']}: " + ", ".join(f"{f} {'yes' if cpu['flags'][f] else 'no'}" for f in shown)
