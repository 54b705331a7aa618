"""The common shape of a runtime that runs an exported model.

    backend = BACKENDS["onnxruntime"](deploy, BackendOptions(device="cpu", threads=2))
    output = backend.run(batch)             # (N, 3, H, W) float32 -> the model's output, (N, H, W) or (N, C, H, W)
    backend.name, backend.device, backend.input_name, backend.input_shape, backend.described

A backend is built from the export (:class:`~paddleseg.deploy.config.DeployConfig`) and the options;
it imports its runtime only then, so choosing one backend never loads another's. Before a GPU run
the front end calls the class's :meth:`Backend.check_gpu`, which names what is missing (a CPU build,
no card, no TensorRT) instead of letting the runtime fall back to the CPU under a GPU label.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.openvino_settings import OpenVINOSettings
from paddleseg.deploy.tensorrt_settings import TRT_SHAPE_FLAGS, TensorRT, shape_text


@dataclass(frozen=True)
class BackendOptions:
    """How to run: ``device`` (cpu, gpu), CPU ``threads``, TensorRT settings (GPU only), Paddle
    Inference's oneDNN switch and config summary, and OpenVINO's settings (precision, hint, cache)."""
    device: str = "cpu"
    threads: int = 2
    trt: Optional[TensorRT] = None
    mkldnn: bool = True
    print_detail: bool = False
    openvino: Optional[OpenVINOSettings] = None  # None: OpenVINOSettings() (auto precision, latency, no cache)


class Backend(ABC):
    """One runtime running one exported model (module docstring)."""

    name: str = ""

    def __init__(self, deploy: DeployConfig, options: BackendOptions):
        self.deploy = deploy
        self.options = options
        self.device = options.device
        self.input_name = deploy.input_name
        self.input_shape: Tuple[int, ...] = tuple(deploy.input_shape)

    @classmethod
    def check_gpu(cls, use_trt: bool) -> None:
        """DeployError unless this runtime can run on a CUDA card (and TensorRT with ``use_trt``)."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's output for ``batch`` (N, 3, H, W) float32."""

    @property
    def described(self) -> str:
        trt = self.options.trt
        return f"{self.name}{f' + TensorRT {trt.precision}' if trt else ''} on {self.device}"

    def input_problem(self, shape: Sequence[int]) -> Optional[str]:
        """Why an input of ``shape`` cannot run here (None if it can): outside a TensorRT range."""
        trt = self.options.trt
        if trt is not None and not trt.shapes.contains(shape):
            return (f"its input {shape_text(shape)} is outside the TensorRT shape range {trt.shapes} "
                    f"(widen {TRT_SHAPE_FLAGS[0]} or {TRT_SHAPE_FLAGS[2]})")
        return None
