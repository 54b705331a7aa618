"""Runtimes for an exported model, chosen by name (``--backend``): one small class each, the common
interface in :mod:`paddleseg.deploy.backends.base`. A new runtime is a module here and a line in
:data:`BACKENDS`."""
from typing import Dict, Type

from paddleseg.deploy.backends.base import Backend, BackendOptions
from paddleseg.deploy.backends.onnx_runtime import OnnxRuntime
from paddleseg.deploy.backends.openvino import OpenVINO
from paddleseg.deploy.backends.paddle_inference import PaddleInference
from paddleseg.deploy.config import DeployConfig

BACKENDS: Dict[str, Type[Backend]] = {"paddle": PaddleInference, "onnxruntime": OnnxRuntime, "openvino": OpenVINO}


def create_backend(name: str, deploy: DeployConfig, options: BackendOptions) -> Backend:
    """The backend called ``name`` (a key of :data:`BACKENDS`) running ``deploy``'s model."""
    return BACKENDS[name](deploy, options)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "create_backend"]
