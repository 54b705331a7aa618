"""Which precision a CPU runtime runs, decided explicitly: from what was asked, what the CPU reports and
what the export recorded as verified. A runtime's implicit default never decides it (OpenVINO runs
bf16, silently, on a CPU with BF16 unless told otherwise).

    precision, reason = choose_precision("auto", CpuCaps("Xeon", ("FP32", "BF16", "INT8")), deploy.verified["openvino"])
    gate = AccuracyGate(max_miou_drop=0.5, min_labels_equal=0.99)
    gate.problem(miou_drop=0.04, labels_equal=0.996)       # None: within the gate

``auto`` is bf16 where the CPU reports BF16 *and* deploy.yaml records that bf16 passed its accuracy
check (``export.py --check_precisions``, :mod:`paddleseg.core.deploy_check`), fp32 otherwise. bf16 asked
for by name needs both too; int8 needs a recorded, verified int8 model (``tools/quantize.py`` writes
one only when it is accurate and faster). fp16 is refused on the CPU: OpenVINO's f16 overflows in this
network (0% of the labels equal to fp32, measured).

deploy.yaml's record, written inside the export's atomic folder::

    Deploy:
      verified_precisions:
        openvino:
          bf16: {miou: 0.8142, miou_drop: 0.0, labels_equal: 0.9992, cpu: AMD EPYC, val_images: 20}
          int8: {model: model_int8.xml, inference_precision: bf16, miou_drop: 0.07, labels_equal: 0.993, ...}

``miou_drop`` is in points (percent); ``labels_equal`` the share of pixels whose label equals the fp32
model's. Standard library only.
"""
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from paddleseg.deploy.errors import DeployError

CPU_PRECISIONS = ("auto", "fp32", "bf16", "int8")  # what --precision takes for a CPU runtime (OpenVINO)
RECORDED_PRECISIONS = ("fp32", "bf16", "int8")
# OpenVINO's name for each precision's INFERENCE_PRECISION_HINT (int8 models keep their own int8 layers;
# the hint is for the rest, recorded with the model as inference_precision)
OV_PRECISION_HINT = {"fp32": "f32", "bf16": "bf16"}
F16_REASON = ("OpenVINO's f16 on the CPU overflows in this network (0% of the labels equal to fp32, measured): use "
              "fp32, bf16 (on a CPU with BF16) or auto")
REFUSED = {"fp16": F16_REASON, "f16": F16_REASON}
MAX_MIOU_DROP = 0.5  # points: what --max_miou_drop defaults to
MIN_LABELS_EQUAL = 0.99  # share of pixels whose label equals fp32's
RECORD_NUMBERS = ("miou", "miou_drop", "labels_equal", "latency_ms", "best_other_ms", "speedup")
RECORD_COUNTS = ("val_images", "calibration_images")
RECORD_TEXTS = ("model", "inference_precision", "cpu", "checked", "compared_with", "attempt")


@dataclass(frozen=True)
class CpuCaps:
    """What a runtime reports about the CPU: its name and capabilities (OpenVINO's
    OPTIMIZATION_CAPABILITIES: FP32, BF16, INT8, ...)."""
    name: str
    capabilities: Tuple[str, ...]

    @property
    def bf16(self) -> bool:
        return "BF16" in self.capabilities

    @property
    def int8(self) -> bool:
        return "INT8" in self.capabilities


@dataclass(frozen=True)
class VerifiedPrecision:
    """One precision recorded as verified in deploy.yaml: the model file (int8 only), OpenVINO's
    precision for the layers an int8 model keeps in floating point, and the measured figures."""
    model: Optional[str] = None
    inference_precision: Optional[str] = None
    figures: Dict[str, Any] = field(default_factory=dict)


Verified = Mapping[str, VerifiedPrecision]  # precision -> record, for one backend


@dataclass(frozen=True)
class AccuracyGate:
    """When a precision is accurate enough: its mIoU at most ``max_miou_drop`` points below fp32's and
    at least ``min_labels_equal`` of the pixels labelled as fp32 labels them."""
    max_miou_drop: float = MAX_MIOU_DROP
    min_labels_equal: float = MIN_LABELS_EQUAL

    def problem(self, miou_drop: float, labels_equal: float) -> Optional[str]:
        """Why figures fail the gate (None if they pass)."""
        problems = []
        if not miou_drop <= self.max_miou_drop:  # NaN fails too
            problems.append(f"mIoU drop {miou_drop:.2f} points > {self.max_miou_drop:g}")
        if not labels_equal >= self.min_labels_equal:
            problems.append(f"labels equal {labels_equal:.2%} < {self.min_labels_equal:.0%}")
        return "; ".join(problems) or None


def choose_precision(requested: str, cpu: CpuCaps, verified: Verified,
                     require_verified: bool = True) -> Tuple[str, str]:
    """(precision to run, why) for ``requested`` (module docstring); DeployError naming the reason when
    it cannot run here. ``require_verified=False`` (the accuracy check itself) runs bf16 unverified."""
    if requested in REFUSED:
        raise DeployError(f"--precision {requested}: refused: {REFUSED[requested]}")
    if requested not in CPU_PRECISIONS:
        raise DeployError(f"--precision {requested!r}: expected one of {', '.join(CPU_PRECISIONS)}")
    if requested == "fp32":
        return "fp32", "asked for"
    if requested == "auto":
        if not cpu.bf16:
            return "fp32", f"auto: the CPU ({cpu.name}) does not report BF16"
        if "bf16" not in verified:
            return "fp32", ("auto: the CPU reports BF16 but deploy.yaml records no verified bf16 (export.py "
                            "--check_precisions records it)")
        return "bf16", "auto: the CPU reports BF16 and deploy.yaml records bf16 as verified"
    if requested == "bf16":
        if not cpu.bf16:
            raise DeployError(f"--precision bf16: this CPU ({cpu.name}) does not report BF16 (its capabilities: "
                              f"{', '.join(cpu.capabilities) or 'none'}): use fp32 or auto")
        if require_verified and "bf16" not in verified:
            raise DeployError("--precision bf16: deploy.yaml records no verified bf16 for this export: run export.py "
                              "with --check_precisions (it checks bf16's accuracy on the val set), or use fp32 or auto")
        return "bf16", "asked for"
    if not cpu.int8:
        raise DeployError(f"--precision int8: this CPU ({cpu.name}) does not report INT8: use fp32 or auto")
    if "int8" not in verified or not verified["int8"].model:
        raise DeployError("--precision int8: deploy.yaml records no verified int8 model for this export (tools/"
                          "quantize.py writes one only where it is both accurate and faster): use fp32 or auto")
    return "int8", "asked for"


def int8_float_precision(record: VerifiedPrecision, cpu: CpuCaps) -> str:
    """OpenVINO's precision for the floating-point layers of a verified int8 model: what it was
    verified with, or f32 (more precise) where the CPU has no BF16."""
    return "bf16" if record.inference_precision == "bf16" and cpu.bf16 else "fp32"


def cli_precision(backend: str, precision: Optional[str], use_trt: bool) -> str:
    """``--precision`` for ``backend`` as a front end checks it: OpenVINO takes
    :data:`CPU_PRECISIONS` (default auto, fp16 refused with the reason); the other backends fp32, or
    fp16 through TensorRT (default fp32)."""
    if backend == "openvino":
        if use_trt:
            raise DeployError("--use_trt applies to the paddle and onnxruntime backends, not openvino (a CPU runtime)")
        if precision in REFUSED:
            raise DeployError(f"--precision {precision} with --backend openvino: refused: {REFUSED[precision]}")
        return precision or "auto"
    if precision in ("auto", "bf16", "int8"):
        raise DeployError(f"--precision {precision} applies to --backend openvino only ({backend} runs fp32 on the "
                          f"CPU, fp16 through TensorRT)")
    return precision or "fp32"


def _number(file: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DeployError(f"{file}: Deploy.{key}: expected a finite number, got {value!r}")
    return float(value)


def parse_verified(file: Path, value: Any) -> Dict[str, Dict[str, VerifiedPrecision]]:
    """deploy.yaml's ``verified_precisions`` (module docstring) checked: backend -> precision -> record.
    Model file names are checked by the caller (they must sit in the export folder)."""
    if value is None:
        return {}
    key = "verified_precisions"
    if not isinstance(value, dict):
        raise DeployError(f"{file}: Deploy.{key}: expected backend: {{precision: figures}}, got {value!r}")
    verified = {}
    for backend, records in value.items():
        if not isinstance(backend, str) or not isinstance(records, dict):
            raise DeployError(f"{file}: Deploy.{key}.{backend}: expected precision: figures, got {records!r}")
        verified[backend] = {}
        for precision, record in records.items():
            where = f"{key}.{backend}.{precision}"
            if precision not in RECORDED_PRECISIONS:
                raise DeployError(f"{file}: Deploy.{where}: unknown precision (known: "
                                  f"{', '.join(RECORDED_PRECISIONS)})")
            if not isinstance(record, dict):
                raise DeployError(f"{file}: Deploy.{where}: expected a mapping of figures, got {record!r}")
            known = RECORD_NUMBERS + RECORD_COUNTS + RECORD_TEXTS
            unknown = sorted(set(map(str, record)) - set(known))
            if unknown:
                raise DeployError(f"{file}: Deploy.{where}.{unknown[0]}: unknown key (known: {', '.join(known)})")
            figures: Dict[str, Any] = {k: _number(file, f"{where}.{k}", v) for k, v in record.items()
                                       if k in RECORD_NUMBERS}
            for k in RECORD_COUNTS:
                if k in record:
                    v = record[k]
                    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                        raise DeployError(f"{file}: Deploy.{where}.{k}: expected a count, got {v!r}")
                    figures[k] = v
            for k in RECORD_TEXTS:
                if k in record and not isinstance(record[k], str):
                    raise DeployError(f"{file}: Deploy.{where}.{k}: expected a name, got {record[k]!r}")
            hint = record.get("inference_precision")
            if hint is not None and hint not in OV_PRECISION_HINT:
                raise DeployError(f"{file}: Deploy.{where}.inference_precision: expected one of "
                                  f"{', '.join(OV_PRECISION_HINT)}, got {hint!r}")
            if precision == "int8" and not record.get("model"):
                raise DeployError(f"{file}: Deploy.{where}.model: an int8 record names its model file")
            figures.update({k: record[k] for k in RECORD_TEXTS if k in record and k not in ("model",
                                                                                          "inference_precision")})
            verified[backend][precision] = VerifiedPrecision(record.get("model"), hint, figures)
    return verified
