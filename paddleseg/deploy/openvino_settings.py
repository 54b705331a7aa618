"""What ``--backend openvino`` is asked for: the precision, the performance hint and where compiled
models are kept.

    settings = OpenVINOSettings(precision="auto", hint="latency", cache_dir=Path("~/.cache/..."))
    BackendOptions(threads=2, openvino=settings)

``precision`` is resolved against the CPU and the export's record by
:func:`paddleseg.deploy.precision.choose_precision`. ``hint`` is OpenVINO's PERFORMANCE_HINT: latency
(one stream, every thread on one image: the default, and what ``tools/infer.py`` needs) or throughput
(several streams, for several requests in flight). ``cache_dir`` (OpenVINO's CACHE_DIR, checked by
:mod:`paddleseg.deploy.openvino_cache`) keeps compiled models between runs; None compiles every time.
``require_verified=False`` runs bf16 without a record: only the accuracy check itself does that.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

OV_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


@dataclass(frozen=True)
class OpenVINOSettings:
    precision: str = "auto"
    hint: str = "latency"
    cache_dir: Optional[Path] = None
    require_verified: bool = True
