"""int8, honestly: post-training quantization of an export with NNCF, kept only where the int8 model is
both accurate and faster than the best fp32/bf16 path on this machine (``tools/quantize.py``).

    result = quantize_export(Path("output/export"), calibration=train_images, samples=val_pairs, num_classes=19)

The export's OpenVINO IR (or its model.onnx) is quantized, calibrated on training images preprocessed
exactly as deploy.yaml says, in the :data:`ATTEMPTS` in turn: NNCF's default (every convolution),
its transformer-style scheme (fewer quantized element-wise ops), and one that leaves the layers this
network is sensitive to in floating point (depthwise convolutions, PReLU, average pooling,
concatenations); where none keeps the accuracy, NNCF's accuracy-control flow, which returns layers to
floating point until the mIoU drop is within the limit. Each candidate's floating-point layers run in
bf16 where the CPU reports BF16, else f32.

Every candidate is scored on the whole val set against the export's OpenVINO fp32 model (mIoU of the
official definition, its drop in points, the share of labels equal), and timed, interleaved, against
every fp32 and bf16 path of this machine that passes the same gate (Paddle Inference, ONNX Runtime,
OpenVINO fp32 and bf16). The accurate candidate fastest against the best of those is written only if
it is at least ``min_speedup`` times as fast (the median over the rounds of the two runs' ratio: each
round runs them back to back, so a busy moment on a shared CPU falls on both): into the export
folder, replaced whole (:func:`paddleseg.utils.atomic.atomic_folder`), as ``model_int8.xml`` + ``.bin``
recorded under ``verified_precisions.openvino.int8`` with its figures and digests, and run once more
from the new folder before it replaces the old one. Otherwise nothing is written and :class:`NoInt8Model` (exit 2)
gives both numbers: the accuracy and the speed found.
"""
import datetime
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from prettytable import PrettyTable

from paddleseg.core.deploy_check import Sample, available_paths, build_path, image_labels, score_paths
from paddleseg.core.export import DEPLOY_FILE, INT8_FILE
from paddleseg.deploy.backends.openvino import CompiledShapes, compile_config, cpu_caps, import_openvino
from paddleseg.deploy.config import DeployConfig, load_deploy
from paddleseg.deploy.errors import DeployError, one_line
from paddleseg.deploy.images import read_rgb
from paddleseg.deploy.model_files import check_onnx_model, check_openvino_model, sha256
from paddleseg.deploy.postprocess import to_labels
from paddleseg.deploy.precision import OV_PRECISION_HINT, AccuracyGate
from paddleseg.deploy.preprocess import make_preprocess
from paddleseg.deploy.speed import cpu_summary, cpu_text, interleaved_times, median_p90_ms
from paddleseg.errors import UserError
from paddleseg.transforms.io import read_label
from paddleseg.utils import yaml_io
from paddleseg.utils.atomic import atomic_folder
from paddleseg.utils.metrics import ConfusionMatrix

logger = logging.getLogger(__name__)

MIN_SPEEDUP = 1.05  # an int8 model must be this much faster than the best fp32/bf16 path: less is noise
SENSITIVE_TYPES = ["GroupConvolution", "PRelu", "AvgPool", "Concat"]  # OpenVINO op types of the layers NNCF
#                                                                       measured most harmful to quantize here


@dataclass(frozen=True)
class Attempt:
    name: str
    what: str
    options: Callable[[], Dict] = dict  # keyword arguments of nncf.quantize, built when nncf is imported


def _transformer() -> Dict:
    import nncf

    return {"model_type": nncf.ModelType.TRANSFORMER}


def _ignore_sensitive() -> Dict:
    import nncf

    return {"ignored_scope": nncf.IgnoredScope(types=SENSITIVE_TYPES, validate=False)}


ATTEMPTS = (Attempt("default", "NNCF's default (PERFORMANCE preset)"),
            Attempt("transformer", "NNCF's transformer scheme (element-wise ops left in floating point)", _transformer),
            Attempt("ignore_sensitive", f"{', '.join(SENSITIVE_TYPES)} left in floating point", _ignore_sensitive))


class NoInt8Model(UserError):
    """No int8 model was both accurate and faster here: nothing was written (exit 2)."""


@dataclass
class Candidate:
    name: str
    what: str
    model: object = None  # the quantized openvino.Model
    miou: float = float("nan")
    miou_drop: float = float("nan")
    labels_equal: float = float("nan")
    problem: Optional[str] = None
    ms: Tuple[float, float] = (float("nan"), float("nan"))
    speedup: float = float("nan")  # against the fastest fp32/bf16 path: the median of the rounds' ratios


@dataclass
class QuantizeResult:
    cpu: Dict
    fp32_miou: float
    candidates: List[Candidate]
    others: Dict[str, Tuple[float, float]]  # the fp32/bf16 paths that pass the gate: name -> (median, p90) ms
    rejected_others: Dict[str, str] = field(default_factory=dict)  # paths outside the gate: name -> why
    written: Optional[Candidate] = None
    float_precision: str = "fp32"
    shape: str = ""

    def table(self) -> str:
        table = PrettyTable(["model", f"ms {self.shape} (median/p90)", "speedup", "mIoU", "drop (points)",
                             "labels = fp32", "gate"])
        for name, (median, p90) in self.others.items():
            table.add_row([name, f"{median:.1f} / {p90:.1f}", "", "", "", "", "passes"])
        for name, problem in self.rejected_others.items():
            table.add_row([name, "-", "", "", "", "", f"FAILS: {problem}"])
        for c in self.candidates:
            timing = f"{c.ms[0]:.1f} / {c.ms[1]:.1f}" if np.isfinite(c.ms[0]) else "-"
            speedup = f"{c.speedup:.2f}x" if np.isfinite(c.speedup) else "-"
            table.add_row([f"int8 {c.name}", timing, speedup, f"{c.miou:.4f}", f"{c.miou_drop:+.2f}",
                           f"{c.labels_equal:.2%}", f"FAILS: {c.problem}" if c.problem else "passes"])
        return (f"{cpu_text(self.cpu)}\nopenvino fp32 mIoU {self.fp32_miou:.4f}; int8 models run their floating-point "
                f"layers in {self.float_precision}\n{table}")


def source_model(deploy: DeployConfig) -> Path:
    """The export's float model OpenVINO reads: its IR, else its ONNX model (each checked)."""
    if deploy.openvino_file is not None:
        check_openvino_model(deploy, deploy.openvino_file)
        return deploy.openvino_file
    if deploy.onnx_file is None:
        raise DeployError(f"{deploy.folder}: exported without --onnx or --openvino: nothing for NNCF to quantize "
                          f"(export again with --openvino)")
    check_onnx_model(deploy)
    return deploy.onnx_file


def _quantize(nncf, model, attempt: Attempt, calibration, count: int) -> object:
    try:
        return nncf.quantize(model.clone(), calibration, subset_size=count, **attempt.options())
    except Exception as e:
        raise UserError(f"NNCF could not quantize the model ({attempt.name}): {one_line(e)}") from e


def _accuracy_control(nncf, model, calibration, count: int, samples: Sequence[Sample], deploy: DeployConfig,
                      num_classes: int, ignore_index: int, max_miou_drop: float) -> object:
    """nncf.quantize_with_accuracy_control with the val set's mIoU as its metric."""
    preprocess = make_preprocess(deploy.transforms)

    def validate(compiled, items) -> Tuple[float, None]:
        matrix = ConfusionMatrix(num_classes, ignore_index)
        for image_path, label_path in items:
            image = read_rgb(image_path)
            output = compiled(preprocess(image))[0]
            matrix.update(image_labels(np.asarray(output), deploy.output_op, image.shape[:2]), read_label(label_path))
        return matrix.miou(), None

    try:
        return nncf.quantize_with_accuracy_control(
            model.clone(), calibration, nncf.Dataset(list(samples)), validate, max_drop=max_miou_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE, subset_size=count)
    except Exception as e:
        raise UserError(f"NNCF's accuracy-control quantization failed: {one_line(e)}") from e


def quantize_export(export_dir: Path, *, calibration_images: Sequence[Path], samples: Sequence[Sample],
                    num_classes: int, ignore_index: int = 255, gate: AccuracyGate = AccuracyGate(),
                    min_speedup: float = MIN_SPEEDUP, threads: int = 2, input_shape: Optional[Sequence[int]] = None,
                    warmup: int = 3, repeats: int = 20, attempts: Sequence[Attempt] = ATTEMPTS,
                    accuracy_control: bool = True, progress: bool = True) -> QuantizeResult:
    """Quantize the export in ``export_dir`` and write the int8 model into it, or raise
    :class:`NoInt8Model` (module docstring)."""
    deploy = load_deploy(export_dir / DEPLOY_FILE)
    if not calibration_images:
        raise UserError("no training images to calibrate int8 on")
    if not samples:
        raise UserError("the val set has no images: nothing to check an int8 model on")
    ov = import_openvino()
    try:
        import nncf
    except ImportError as e:
        raise UserError(f"tools/quantize.py needs NNCF ({one_line(e)}): pip install "
                        f"'paddleseg-espnetv2[openvino]'") from e
    core = ov.Core()
    cpu = cpu_caps(core)
    float_precision = "bf16" if cpu.bf16 else "fp32"
    model = core.read_model(str(source_model(deploy)))
    preprocess = make_preprocess(deploy.transforms)
    calibration = nncf.Dataset(list(calibration_images), lambda path: preprocess(read_rgb(path)))

    def compiled(m, precision: str, label: str) -> CompiledShapes:
        return CompiledShapes(ov, core, m, compile_config(OV_PRECISION_HINT[precision], threads), label)

    fp32 = compiled(model, "fp32", "openvino fp32")
    count = len(calibration_images)
    candidates, runners = [], {}
    for attempt in attempts:
        logger.info("Quantizing: %s (%s) on %d calibration image(s)", attempt.name, attempt.what, count)
        candidates.append(Candidate(attempt.name, attempt.what, _quantize(nncf, model, attempt, calibration, count)))
        runners[attempt.name] = compiled(candidates[-1].model, float_precision, f"int8 {attempt.name}")
    others = {f"{b} {p}": build_path(deploy, b, p, threads) for b, p in available_paths(deploy) if p != "int8"}
    reference, scores = score_paths({**others, **runners}, fp32.run, samples, deploy, num_classes, ignore_index,
                                    deploy.output_op, progress)
    fp32_miou = reference.matrix.miou()
    for c in candidates:
        _score(c, scores[c.name], fp32_miou, gate)
    if accuracy_control and not any(c.problem is None for c in candidates):
        logger.info("No attempt kept the accuracy: NNCF's accuracy-control flow (max drop %.2f points)",
                    gate.max_miou_drop)
        c = Candidate("accuracy_control", "nncf.quantize_with_accuracy_control",
                      _accuracy_control(nncf, model, calibration, count, samples, deploy, num_classes, ignore_index,
                                        gate.max_miou_drop))
        runners[c.name] = compiled(c.model, float_precision, "int8 accuracy_control")
        _, extra = score_paths({c.name: runners[c.name]}, fp32.run, samples, deploy, num_classes, ignore_index,
                               deploy.output_op, progress)
        _score(c, extra[c.name], fp32_miou, gate)
        candidates.append(c)
    rejected = {}
    for name in list(others):
        problem = gate.problem((fp32_miou - scores[name].matrix.miou()) * 100.0, scores[name].labels_equal)
        if problem:
            rejected[name] = problem
            del others[name]
    accurate = [c for c in candidates if c.problem is None]
    x = (np.random.default_rng(0).uniform(-1, 1, tuple(input_shape)).astype(np.float32) if input_shape is not None
         else preprocess(read_rgb(samples[0][0])))
    timed = {**others, **{c.name: runners[c.name] for c in accurate}}
    runs = {name: (lambda r=r: r.run(x)) for name, r in timed.items()}
    times = interleaved_times(runs, warmup, repeats)
    fastest = min(others, key=lambda name: np.median(times[name]), default=None)
    for c in accurate:
        c.ms = median_p90_ms(times[c.name])
        if fastest is not None:  # each round's pair ran back to back: the ratio is robust to a busy moment
            c.speedup = float(np.median(np.asarray(times[fastest]) / np.asarray(times[c.name])))
    result = QuantizeResult(cpu_summary(), fp32_miou, candidates, {n: median_p90_ms(times[n]) for n in others},
                            rejected, float_precision=float_precision, shape="x".join(map(str, x.shape)))
    print(result.table())
    best = max(accurate, key=lambda c: c.speedup if result.others else -c.ms[0], default=None)
    decision = refusal(result, best, gate, min_speedup)
    if decision:
        raise NoInt8Model(f"no int8 model written: {decision}")
    result.written = best
    write_int8(export_dir, deploy, best, result, x, float_precision, len(calibration_images), len(samples))
    return result


def _score(c: Candidate, s, fp32_miou: float, gate: AccuracyGate) -> None:
    c.miou, c.labels_equal = s.matrix.miou(), s.labels_equal
    c.miou_drop = (fp32_miou - c.miou) * 100.0
    c.problem = gate.problem(c.miou_drop, c.labels_equal)


def refusal(result: QuantizeResult, best: Optional[Candidate], gate: AccuracyGate, min_speedup: float) -> Optional[str]:
    """Why no int8 model may be written (both numbers: accuracy and speed), or None."""
    if best is None:
        closest = min(result.candidates, key=lambda c: c.miou_drop)
        return (f"no int8 attempt keeps the accuracy (the best, {closest.name}, drops the mIoU by "
                f"{closest.miou_drop:.2f} points with {closest.labels_equal:.2%} of the labels equal; at most "
                f"{gate.max_miou_drop:g} points and at least {gate.min_labels_equal:.0%} allowed)")
    if not result.others:
        return None
    fastest = min(result.others, key=lambda name: result.others[name][0])
    other_ms = result.others[fastest][0]
    if best.speedup >= min_speedup:
        return None
    return (f"the fastest accurate int8 model ({best.name}: mIoU drop {best.miou_drop:.2f} points, "
            f"{best.labels_equal:.2%} of the labels equal) takes {best.ms[0]:.1f} ms at {result.shape} against "
            f"{other_ms:.1f} ms for {fastest}: {best.speedup:.2f}x as fast (median of the paired rounds), "
            f"{min_speedup:g}x needed")


def write_int8(export_dir: Path, deploy: DeployConfig, best: Candidate, result: QuantizeResult, x: np.ndarray,
               float_precision: str, calibration_count: int, val_count: int) -> None:
    """The export folder replaced whole by a copy with ``model_int8.xml`` + ``.bin`` and its record in
    deploy.yaml; the new folder's int8 model runs once (and must give the candidate's output) before it
    replaces the old one."""
    import openvino as ov

    from paddleseg.deploy.backends import BackendOptions, create_backend
    from paddleseg.deploy.openvino_settings import OpenVINOSettings

    fastest = min(result.others, key=lambda name: result.others[name][0], default=None)
    record = {"model": INT8_FILE, "inference_precision": float_precision, "miou": round(best.miou, 6),
              "miou_drop": round(best.miou_drop, 4), "labels_equal": round(best.labels_equal, 6),
              "latency_ms": round(best.ms[0], 3), "compared_with": "openvino fp32", "attempt": best.name,
              "cpu": result.cpu["model"], "val_images": val_count, "calibration_images": calibration_count,
              "checked": datetime.date.today().isoformat()}
    if fastest is not None:
        record.update(best_other_ms=round(result.others[fastest][0], 3), speedup=round(best.speedup, 3))
    data = yaml_io.load_file(deploy.file)
    section = data["Deploy"]
    with atomic_folder(export_dir) as work:
        for path in sorted(export_dir.iterdir()):
            if path.is_file() and path.name not in (DEPLOY_FILE, INT8_FILE, Path(INT8_FILE).with_suffix(".bin").name):
                shutil.copy2(path, work / path.name)
        ov.save_model(best.model, str(work / INT8_FILE), compress_to_fp16=False)
        weights = work / Path(INT8_FILE).with_suffix(".bin").name
        verified = dict(section.get("verified_precisions") or {})
        verified["openvino"] = {**(verified.get("openvino") or {}), "int8": record}
        digests = {**(section.get("digests") or {}), INT8_FILE: sha256(work / INT8_FILE), weights.name: sha256(weights)}
        new = {**section, "verified_precisions": verified, "digests": digests}
        (work / DEPLOY_FILE).write_text(yaml.safe_dump({**data, "Deploy": new}, sort_keys=False,
                                                       default_flow_style=None), encoding="utf-8")
        written = create_backend("openvino", load_deploy(work / DEPLOY_FILE),
                                 BackendOptions(threads=1, openvino=OpenVINOSettings("int8")))
        candidate = CompiledShapes(ov, ov.Core(), best.model, compile_config(OV_PRECISION_HINT[float_precision], 1),
                                   "int8 candidate")
        got = to_labels(written.run(x), deploy.output_op, len(x))
        expected = to_labels(candidate.run(x), deploy.output_op, len(x))
        if float(np.mean(got == expected)) < 0.999:
            raise UserError(f"the int8 model saved as {INT8_FILE} does not give the candidate's labels "
                            f"({float(np.mean(got == expected)):.2%} equal); nothing was written")
    logger.info("int8 model (%s) written: %s, recorded in %s", best.name, export_dir / INT8_FILE, deploy.file)
