"""Every runtime and precision this machine offers for an export, side by side: speed and accuracy
(``tools/deploy_check.py``; ``export.py --check_precisions`` records what passes in deploy.yaml).

    check = check_deploy(deploy, model, samples, num_classes=19, gate=AccuracyGate(0.5, 0.99))
    print(check.table()); check.as_dict()        # JSON
    check.failures                                 # offered precisions outside the gate: exit 2

For each path (Paddle Inference fp32, ONNX Runtime fp32, OpenVINO fp32, bf16 where the CPU reports
BF16, the recorded int8 model): the model-only latency (median, p90) at the val images' size and at
``input_shape``, interleaved (:func:`paddleseg.deploy.speed.interleaved_times`); the end-to-end rate
through the shared prediction loop (read, preprocess, run, write pictures); and on the whole val set,
preprocessed as deploy.yaml says, the share of pixels labelled as the dygraph model labels them and
the mIoU of the official definition (:class:`paddleseg.utils.metrics.ConfusionMatrix`: one matrix over
the set), with its drop against the dygraph model's in points.

A path is *offered* by the export when it is fp32 or deploy.yaml records its precision as verified;
an offered path outside the gate (``max_miou_drop`` points, ``min_labels_equal``) is a failure. A
precision that is not recorded is measured and shown, and is what ``--check_precisions`` records
when it passes.
"""
import datetime
import importlib.util
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from prettytable import PrettyTable
from tqdm import tqdm

from paddleseg.core.predict import DygraphModel
from paddleseg.deploy.backends import BackendOptions, create_backend
from paddleseg.deploy.config import DeployConfig, load_deploy
from paddleseg.deploy.images import read_rgb
from paddleseg.deploy.openvino_settings import OpenVINOSettings
from paddleseg.deploy.postprocess import fit_to_image, to_labels
from paddleseg.deploy.precision import AccuracyGate
from paddleseg.deploy.preprocess import make_preprocess
from paddleseg.deploy.speed import cpu_summary, cpu_text, end_to_end_rate, interleaved_times, median_p90_ms
from paddleseg.errors import UserError
from paddleseg.transforms.io import read_label
from paddleseg.utils.metrics import ConfusionMatrix

logger = logging.getLogger(__name__)

Sample = Tuple[Path, Path]  # (image, train-id label)


class PrecisionCheckFailed(UserError):
    """An offered precision is outside the accuracy gate (exit 2)."""


def available_paths(deploy: DeployConfig) -> List[Tuple[str, str]]:
    """(backend, precision) of every path this machine can run for ``deploy``."""
    paths = [("paddle", "fp32")]
    if deploy.onnx_file is not None and importlib.util.find_spec("onnxruntime"):
        paths.append(("onnxruntime", "fp32"))
    if (deploy.onnx_file or deploy.openvino_file) and importlib.util.find_spec("openvino"):
        from paddleseg.deploy.backends.openvino import cpu_caps, import_openvino

        cpu = cpu_caps(import_openvino().Core())
        paths.append(("openvino", "fp32"))
        if cpu.bf16:
            paths.append(("openvino", "bf16"))
        if cpu.int8 and "int8" in deploy.verified.get("openvino", {}):
            paths.append(("openvino", "int8"))
    return paths


def build_path(deploy: DeployConfig, backend: str, precision: str, threads: int):
    """The backend for one path; OpenVINO at ``precision`` whether or not deploy.yaml records it."""
    settings = OpenVINOSettings(precision, require_verified=False) if backend == "openvino" else None
    return create_backend(backend, deploy, BackendOptions(threads=threads, openvino=settings))


@dataclass
class Scores:
    """Accuracy of one path over the val set."""
    matrix: ConfusionMatrix
    equal: int = 0
    pixels: int = 0

    def add(self, label: np.ndarray, truth: np.ndarray, reference: np.ndarray) -> None:
        self.matrix.update(label, truth)
        self.equal += int((label == reference).sum())
        self.pixels += label.size

    @property
    def labels_equal(self) -> float:
        return self.equal / self.pixels if self.pixels else float("nan")


@dataclass
class PathResult:
    backend: str
    precision: str
    offered: bool
    miou: float = float("nan")
    labels_equal: float = float("nan")
    miou_drop: float = float("nan")  # points below the dygraph model's mIoU
    problem: Optional[str] = None  # outside the gate: why
    model_ms: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # shape text -> (median, p90)
    images_per_s: Optional[float] = None

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass
class DeployCheck:
    cpu: Dict
    reference_miou: float
    val_images: int
    gate: AccuracyGate
    rows: List[PathResult]

    @property
    def failures(self) -> List[PathResult]:
        return [r for r in self.rows if r.offered and r.problem]

    def table(self) -> str:
        shapes = list(dict.fromkeys(s for r in self.rows for s in r.model_ms))
        rates = any(r.images_per_s for r in self.rows)
        table = PrettyTable(["path", *[f"model ms {s} (median/p90)" for s in shapes],
                             *["end-to-end img/s"] * rates, "labels = dygraph", "mIoU", "drop (points)", "status"])
        for r in self.rows:
            timing = [f"{r.model_ms[s][0]:.1f} / {r.model_ms[s][1]:.1f}" if s in r.model_ms else "-" for s in shapes]
            rate = [f"{r.images_per_s:.2f}" if r.images_per_s else "-"] * rates
            verdict = f"FAILS: {r.problem}" if r.problem else "passes"
            status = ("offered, " if r.offered else "not offered, ") + verdict
            table.add_row([r.name, *timing, *rate, f"{r.labels_equal:.2%}", f"{r.miou:.4f}", f"{r.miou_drop:+.2f}",
                           status])
        return (f"{cpu_text(self.cpu)}\ndygraph fp32 mIoU {self.reference_miou:.4f} on {self.val_images} val "
                f"image(s); gate: drop <= {self.gate.max_miou_drop:g} points and labels equal >= "
                f"{self.gate.min_labels_equal:.0%}\n{table}")

    def as_dict(self) -> Dict:
        return {"cpu": self.cpu, "reference_miou": self.reference_miou, "val_images": self.val_images,
                "gate": {"max_miou_drop": self.gate.max_miou_drop, "min_labels_equal": self.gate.min_labels_equal},
                "rows": [{"backend": r.backend, "precision": r.precision, "offered": r.offered, "miou": r.miou,
                          "labels_equal": r.labels_equal, "miou_drop": r.miou_drop, "problem": r.problem,
                          "model_ms": {s: {"median": m, "p90": p} for s, (m, p) in r.model_ms.items()},
                          "images_per_s": r.images_per_s} for r in self.rows],
                "failures": [r.name for r in self.failures]}

    def verified_record(self) -> Dict[str, Dict[str, Dict]]:
        """deploy.yaml's ``verified_precisions`` for the paths beyond fp32 that pass the gate."""
        record: Dict[str, Dict[str, Dict]] = {}
        for r in self.rows:
            if r.precision != "fp32" and r.problem is None:
                record.setdefault(r.backend, {})[r.precision] = {
                    "miou": round(r.miou, 6), "miou_drop": round(r.miou_drop, 4),
                    "labels_equal": round(r.labels_equal, 6), "cpu": self.cpu["model"], "val_images": self.val_images,
                    "checked": datetime.date.today().isoformat()}
        return record


def image_labels(output: np.ndarray, output_op: Optional[str], hw: Tuple[int, int]) -> np.ndarray:
    """The labels of a one-image ``output`` (read with ``output_op``) at the image's size ``hw``."""
    return fit_to_image(to_labels(output, output_op, 1)[0], hw)


def score_paths(backends: Dict[str, object], reference: Callable[[np.ndarray], np.ndarray], samples: Sequence[Sample],
                deploy: DeployConfig, num_classes: int, ignore_index: int, reference_op: Optional[str] = "none",
                progress: bool = True) -> Tuple[Scores, Dict[str, Scores]]:
    """The ``reference``'s scores (its output read with ``reference_op``: the dygraph model gives
    logits) and each backend's over ``samples`` (module docstring): one image at a time, every path on
    it in turn, so nothing is kept per image."""
    preprocess = make_preprocess(deploy.transforms)
    ref_scores = Scores(ConfusionMatrix(num_classes, ignore_index))
    scores = {name: Scores(ConfusionMatrix(num_classes, ignore_index)) for name in backends}
    for image_path, label_path in tqdm(samples, desc="accuracy", unit="img", disable=not progress, leave=False):
        image, truth = read_rgb(image_path), read_label(label_path)
        x = preprocess(image)
        ref = image_labels(reference(x), reference_op, image.shape[:2])
        ref_scores.add(ref, truth, ref)
        for name, backend in backends.items():
            scores[name].add(image_labels(backend.run(x), deploy.output_op, image.shape[:2]), truth, ref)
    return ref_scores, scores


def model_times(runs: Dict[str, object], x: np.ndarray, warmup: int, repeats: int) -> Dict[str, Tuple[float, float]]:
    """(median, p90) ms of each ``runs[name].run(x)``, interleaved."""
    times = interleaved_times({name: (lambda r=r: r.run(x)) for name, r in runs.items()}, warmup, repeats)
    return {name: median_p90_ms(t) for name, t in times.items()}


def check_deploy(deploy: DeployConfig, model: paddle.nn.Layer, samples: Sequence[Sample], *, num_classes: int,
                 ignore_index: int = 255, gate: AccuracyGate = AccuracyGate(), threads: int = 2,
                 input_shape: Optional[Sequence[int]] = None, warmup: int = 3, repeats: int = 20,
                 e2e_images: int = 20, paths: Optional[Sequence[Tuple[str, str]]] = None,
                 progress: bool = True) -> DeployCheck:
    """Measure every path of ``deploy`` (module docstring) against ``model`` (the dygraph network)
    on ``samples``. ``repeats=0`` skips the latencies, ``e2e_images=0`` the end-to-end rates."""
    if not samples:
        raise UserError("the val set has no images: nothing to check the precisions on")
    paths = list(paths or available_paths(deploy))
    backends = {f"{b} {p}": build_path(deploy, b, p, threads) for b, p in paths}
    logger.info("Checking %s on %d val image(s)", ", ".join(backends), len(samples))
    dygraph = DygraphModel(model)
    ref, scores = score_paths(backends, dygraph.run, samples, deploy, num_classes, ignore_index, progress=progress)
    reference_miou = ref.matrix.miou()
    rows = []
    for (backend, precision), name in zip(paths, backends):
        s = scores[name]
        offered = precision == "fp32" or precision in deploy.verified.get(backend, {})
        drop = (reference_miou - s.matrix.miou()) * 100.0
        rows.append(PathResult(backend, precision, offered, s.matrix.miou(), s.labels_equal, drop,
                               gate.problem(drop, s.labels_equal)))
    preprocess = make_preprocess(deploy.transforms)
    inputs = [preprocess(read_rgb(samples[0][0]))]
    if input_shape is not None and tuple(input_shape) != inputs[0].shape:
        inputs.append(np.random.default_rng(0).uniform(-1, 1, tuple(input_shape)).astype(np.float32))
    for x in inputs if repeats > 0 else []:
        times = model_times(backends, x, warmup, repeats)
        for row, name in zip(rows, backends):
            row.model_ms["x".join(map(str, x.shape))] = times[name]
    if e2e_images > 0:
        images = [image for image, _ in samples[:e2e_images]]
        for row, backend in zip(rows, backends.values()):
            with tempfile.TemporaryDirectory(prefix="deploy_check_") as tmp:
                row.images_per_s = end_to_end_rate(backend, deploy, images, Path(tmp))
    return DeployCheck(cpu_summary(), reference_miou, len(samples), gate, rows)


def val_samples(cfg) -> Tuple[List[Sample], int, int]:
    """The val set of config ``cfg``: (image, label) pairs, the class count and the ignore index."""
    dataset = cfg.val_dataset
    samples = [(Path(image), Path(label)) for image, label in dataset.file_list if label is not None]
    return samples, dataset.num_classes, dataset.ignore_index


def failure_message(check: DeployCheck) -> str:
    return "; ".join(f"{r.name} fails the accuracy gate ({r.problem}; mIoU {r.miou:.4f} against the dygraph "
                     f"model's {check.reference_miou:.4f})" for r in check.failures)


def export_precision_check(cfg, model: paddle.nn.Layer, gate: AccuracyGate, threads: int = 2,
                           progress: bool = True) -> Callable[[Path], Optional[Dict]]:
    """For :func:`paddleseg.core.export.export_model`'s ``precision_check``: checks the export written
    in a folder on ``cfg``'s val set and returns the precisions to record; UserError if an fp32 path
    fails the gate (the export is then not written)."""
    samples, num_classes, ignore_index = val_samples(cfg)

    def check(folder: Path) -> Optional[Dict]:
        deploy = load_deploy(folder / "deploy.yaml")
        result = check_deploy(deploy, model, samples, num_classes=num_classes, ignore_index=ignore_index, gate=gate,
                              threads=threads, repeats=0, e2e_images=0, progress=progress)
        logger.info("Precision check:\n%s", result.table())
        if result.failures:
            raise PrecisionCheckFailed(f"--check_precisions: {failure_message(result)}")
        for r in result.rows:
            if r.problem:
                logger.warning("%s not recorded as verified: %s", r.name, r.problem)
        if all(r.precision == "fp32" for r in result.rows):
            logger.warning("--check_precisions: no precision beyond fp32 to check on this machine (OpenVINO's bf16 "
                           "needs the export's --onnx or --openvino, the openvino package and a CPU with BF16)")
        return result.verified_record() or None

    return check
