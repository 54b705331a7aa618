"""ONNX Runtime: the exported model.onnx, on the CPU or, with onnxruntime-gpu, through its CUDA (and
TensorRT) execution providers. Needs no PaddlePaddle: a deployment machine installs numpy, OpenCV,
PyYAML, Pillow and onnxruntime only.

``onnxruntime`` is imported when this backend is built, never at import.
"""
import os
from pathlib import Path
from typing import Dict, List

import numpy as np

from paddleseg.deploy.backends.base import Backend, BackendOptions
from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.errors import DeployError, one_line
from paddleseg.deploy.model_files import check_onnx_model, sha256
from paddleseg.deploy.tensorrt_cache import key_digest
from paddleseg.deploy.tensorrt_settings import TRT_WORKSPACE, TensorRT, shape_text

ORT_CUDA, ORT_TENSORRT, ORT_CPU = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"


def check_onnx_providers(use_trt: bool) -> List[str]:
    """The GPU execution providers a ``--device gpu`` run needs, best first; DeployError if this
    onnxruntime lacks one. The CPU package only warns when asked for them and runs on the CPU."""
    import onnxruntime as ort

    wanted = ([ORT_TENSORRT] if use_trt else []) + [ORT_CUDA]
    available = ort.get_available_providers()
    missing = [name for name in wanted if name not in available]
    if missing:
        raise DeployError(f"--device gpu: onnxruntime {ort.__version__} has no {' or '.join(missing)} (it has "
                          f"{', '.join(available)}): this is the CPU package; install onnxruntime-gpu instead, "
                          f"which cannot share an environment with it (pip uninstall -y onnxruntime onnxruntime-gpu, "
                          f"then pip install onnxruntime-gpu; see docs/getting_started.md#gpu), or use --device cpu")
    return wanted


def onnx_trt_options(onnx_file: Path, input_name: str, trt: TensorRT) -> Dict:
    """ONNX Runtime's TensorRT provider options for ``trt``: its engine cache goes to a folder of
    ``trt.cache_dir`` named after the model, the shape range, the precision and the onnxruntime
    version (onnxruntime writes and checks the engine files there itself)."""
    import onnxruntime as ort

    key = {"backend": "onnxruntime", "model": sha256(onnx_file), "precision": trt.precision,
           "shapes": [list(trt.shapes.min), list(trt.shapes.opt), list(trt.shapes.max)], "onnxruntime": ort.__version__}
    cache = Path(os.path.abspath(trt.cache_dir)) / f"onnxruntime-{trt.precision}-{key_digest(key)[:24]}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeployError(f"--trt_cache_dir {trt.cache_dir}: cannot create {cache} ({e.strerror or e})") from e
    return {"trt_fp16_enable": trt.precision == "fp16", "trt_max_workspace_size": TRT_WORKSPACE,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
            "trt_profile_min_shapes": f"{input_name}:{shape_text(trt.shapes.min)}",
            "trt_profile_opt_shapes": f"{input_name}:{shape_text(trt.shapes.opt)}",
            "trt_profile_max_shapes": f"{input_name}:{shape_text(trt.shapes.max)}"}


class OnnxRuntime(Backend):
    """An ONNX Runtime session of the export's model.onnx; the CPU provider last, for what the GPU
    providers cannot run."""

    name = "onnxruntime"

    def __init__(self, deploy: DeployConfig, options: BackendOptions):
        super().__init__(deploy, options)
        check_onnx_model(deploy)
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.intra_op_num_threads = options.threads
        trt = options.trt
        wanted = check_onnx_providers(trt is not None) if options.device == "gpu" else []
        providers = [(name, onnx_trt_options(deploy.onnx_file, deploy.input_name, trt)) if name == ORT_TENSORRT
                     else name for name in wanted] + [ORT_CPU]
        try:
            self.session = ort.InferenceSession(str(deploy.onnx_file), session_options, providers=providers)
        except Exception as e:
            if wanted:
                raise DeployError(f"--device gpu: ONNX Runtime could not start {' and '.join(wanted)}: "
                                  f"{one_line(e)}") from e
            raise DeployError(f"{deploy.onnx_file}: ONNX Runtime cannot load it: {one_line(e)}") from e
        lost = [name for name in wanted if name not in self.session.get_providers()]
        if lost:  # onnxruntime-gpu without the CUDA/cuDNN/TensorRT libraries it needs logs and runs on the CPU
            raise DeployError(f"--device gpu: ONNX Runtime {ort.__version__} could not start {' and '.join(lost)} "
                              f"(it would run on {', '.join(self.session.get_providers())}): the CUDA, cuDNN"
                              f"{' or TensorRT' if trt is not None else ''} libraries it needs are missing or of "
                              f"another version (see its log above)")
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def check_gpu(cls, use_trt: bool) -> None:
        check_onnx_providers(use_trt)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
