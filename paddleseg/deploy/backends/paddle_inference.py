"""Paddle Inference: the exported PIR program (model.json + model.pdiparams), on the CPU with oneDNN
or on a CUDA card, optionally through TensorRT (``paddle.tensorrt`` converts the program once per
shape range and precision; :mod:`paddleseg.deploy.tensorrt_cache` keeps the result).

``paddle`` is imported when this backend is built, never at import.
"""
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from paddleseg.deploy.backends.base import Backend, BackendOptions
from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.errors import DeployError, one_line
from paddleseg.deploy.model_files import check_paddle_model, sha256
from paddleseg.deploy.tensorrt_cache import cached_trt_program
from paddleseg.deploy.tensorrt_settings import TRT_WORKSPACE, TensorRT

GPU_MEMORY_MB = 256  # Paddle Inference's initial GPU memory pool


def check_paddle_gpu(use_trt: bool) -> None:
    """DeployError unless Paddle Inference can run on a CUDA card (and build TensorRT engines with
    ``use_trt``). Paddle's ``enable_use_gpu`` on a CPU build only logs and runs on the CPU."""
    import paddle
    from paddle import inference

    if not paddle.device.is_compiled_with_cuda():
        raise DeployError("--device gpu: this PaddlePaddle build has no CUDA support (install paddlepaddle-gpu "
                          "from Paddle's package index, see docs/getting_started.md#gpu), or use --device cpu")
    if paddle.device.cuda.device_count() == 0:
        raise DeployError("--device gpu: no CUDA card is visible to PaddlePaddle (check nvidia-smi and "
                          "CUDA_VISIBLE_DEVICES), or use --device cpu")
    if not use_trt:
        return
    compiled = tuple(inference.get_trt_compile_version())
    if not any(compiled):
        raise DeployError("--use_trt: this PaddlePaddle build was compiled without TensorRT (install a "
                          "paddlepaddle-gpu build with TensorRT, see docs/getting_started.md#gpu), or leave out --use_trt")
    try:
        runtime = tuple(inference.get_trt_runtime_version())
    except Exception as e:  # the TensorRT libraries are loaded on demand: missing ones fail here
        runtime, reason = (0, 0, 0), one_line(e)
    else:
        reason = "no TensorRT library found"
    if not any(runtime):
        wanted = ".".join(map(str, compiled))
        raise DeployError(f"--use_trt: PaddlePaddle was built with TensorRT {wanted} but cannot load it ({reason}); "
                          f"install it (pip install tensorrt=={wanted}), or leave out --use_trt")


def paddle_trt_key(model_file: Path, params_file: Path, trt: TensorRT) -> Dict:
    """Everything a converted program depends on: engines are specific to the model, the shape range,
    the precision, the TensorRT and Paddle versions and the GPU model."""
    import paddle
    from paddle import inference

    major, minor = paddle.device.cuda.get_device_capability(0)
    return {"backend": "paddle", "model": sha256(model_file), "params": sha256(params_file),
            "shapes": [list(trt.shapes.min), list(trt.shapes.opt), list(trt.shapes.max)],
            "precision": trt.precision, "workspace": TRT_WORKSPACE,
            "paddle": f"{paddle.__version__} {paddle.version.commit}",
            "tensorrt": ".".join(map(str, inference.get_trt_runtime_version())),
            "gpu": f"{paddle.device.cuda.get_device_name(0)} sm{major}{minor}"}


def convert_with_paddle_tensorrt(model_file: Path, input_name: Optional[str], trt: TensorRT, prefix: Path) -> None:
    """Convert the PIR model ``model_file`` with ``paddle.tensorrt.convert`` for ``trt.shapes`` and
    ``trt.precision``, writing ``prefix``.json/.pdiparams and the engines in the folder ``prefix``."""
    import logging

    import paddle
    from paddle import inference

    try:
        import tensorrt
        from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert
    except ImportError as e:
        wanted = ".".join(map(str, inference.get_trt_compile_version()))
        raise DeployError(f"--use_trt: paddle.tensorrt cannot be loaded ({one_line(e)}); it builds the engines with "
                          f"the TensorRT Python package: pip install tensorrt=={wanted}") from e
    runtime = tuple(inference.get_trt_runtime_version())
    python_side = tuple(int(v) for v in tensorrt.__version__.split(".")[:2])
    if python_side != runtime[:2]:
        raise DeployError(f"--use_trt: the tensorrt Python package is {tensorrt.__version__} but Paddle Inference "
                          f"runs TensorRT {'.'.join(map(str, runtime))}; an engine built by one does not load in the "
                          f"other: pip install tensorrt=={'.'.join(map(str, runtime))}")
    if trt.precision == "fp16" and not tensorrt.Builder(tensorrt.Logger(tensorrt.Logger.ERROR)).platform_has_fast_fp16:
        raise DeployError("--precision fp16: this GPU has no fast fp16, so TensorRT would build fp32 engines; "
                          "use --precision fp32")
    spec = Input(min_input_shape=trt.shapes.min, optim_input_shape=trt.shapes.opt, max_input_shape=trt.shapes.max,
                 input_data_type="float32", input_range=(-1.0, 1.0), name=input_name)
    config = TensorRTConfig(inputs=[spec])
    config.precision_mode = PrecisionMode.FP16 if trt.precision == "fp16" else PrecisionMode.FP32
    config.save_model_dir = str(prefix)  # a prefix: <prefix>.json, <prefix>.pdiparams, engines in <prefix>/
    config.workspace_size = TRT_WORKSPACE
    logging.getLogger(__name__).info("Converting %s to TensorRT (%s, inputs %s); this takes a while once, later "
                                     "runs reuse it", model_file, trt.precision, trt.shapes)
    paddle.enable_static()  # paddle.tensorrt.convert loads the model with the static-graph API
    try:
        convert(str(model_file), config)
    except Exception as e:  # an operator TensorRT cannot take, a failed engine build, out of GPU memory
        raise DeployError(f"TensorRT conversion of {model_file} failed: {one_line(e)} (--debug shows the "
                          f"traceback; without --use_trt the model runs in Paddle Inference on the GPU)") from e
    finally:
        paddle.disable_static()


class PaddleInference(Backend):
    """Paddle Inference on ``options.device``; on the CPU with oneDNN unless ``options.mkldnn`` is off.
    ``options.print_detail`` keeps Paddle's own log (its passes and kernels) and prints the config."""

    name = "paddle"

    def __init__(self, deploy: DeployConfig, options: BackendOptions):
        super().__init__(deploy, options)
        check_paddle_model(deploy)  # before Paddle sees the files: a wrong one crashes the process
        from paddle import inference

        model_file, params_file, trt = deploy.model_file, deploy.params_file, options.trt
        if options.device == "gpu":
            check_paddle_gpu(trt is not None)
        if trt is not None:
            if params_file.name != f"{model_file.stem}.pdiparams":  # paddle.tensorrt.convert takes a prefix
                raise DeployError(f"--use_trt: {params_file.name} must be named {model_file.stem}.pdiparams, after "
                                  f"{model_file.name}, for paddle.tensorrt")
            key = paddle_trt_key(model_file, params_file, trt)
            prefix = cached_trt_program(trt.cache_dir, key, lambda out: convert_with_paddle_tensorrt(
                model_file, deploy.input_name, trt, out))
            model_file, params_file = prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams")
        config = inference.Config(str(model_file), str(params_file))
        if options.device == "gpu":
            config.enable_use_gpu(GPU_MEMORY_MB, 0)  # card 0 of CUDA_VISIBLE_DEVICES, as paddle.tensorrt.convert uses
        else:
            config.disable_gpu()
            if options.mkldnn:
                config.enable_mkldnn()  # oneDNN: the fast CPU path (exports of this project support it)
            else:
                config.disable_mkldnn()
            config.set_cpu_math_library_num_threads(options.threads)
        config.switch_ir_optim(True)
        if options.print_detail:
            print(config.summary())
        else:
            config.disable_glog_info()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as e:  # a program or parameters Paddle cannot load: the export's problem
            raise DeployError(f"{deploy.folder}: Paddle Inference cannot load {model_file.name} + "
                              f"{params_file.name}: {one_line(e)}") from e
        self.input_name = self.predictor.get_input_names()[0]
        self._input = self.predictor.get_input_handle(self.input_name)
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    @classmethod
    def check_gpu(cls, use_trt: bool) -> None:
        check_paddle_gpu(use_trt)

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._input.copy_from_cpu(batch)
        self.predictor.run()
        return self._output.copy_to_cpu()
