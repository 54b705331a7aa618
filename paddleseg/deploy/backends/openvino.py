"""OpenVINO: the export's OpenVINO IR (``model.xml`` + ``model.bin``, ``export.py --openvino``) or its
``model.onnx``, on the CPU, at a precision chosen explicitly.

The precision comes from :func:`paddleseg.deploy.precision.choose_precision` (``--precision auto``
runs bf16 only where the CPU reports BF16 and deploy.yaml records bf16 as verified), and is always
passed as INFERENCE_PRECISION_HINT and read back from the compiled model: OpenVINO's own default on a
CPU with BF16 is bf16, silently. int8 runs the verified int8 IR that ``tools/quantize.py`` recorded.

The model is compiled for each input shape it meets (a static shape: faster than OpenVINO's dynamic
shapes for this network, and closer to fp32 in bf16), the last :data:`MAX_COMPILED_SHAPES` kept;
where the export fixes the size (its input_shape or a Resize) that happens when the backend is built,
so a problem shows before anything is written. ``--ov_cache_dir`` keeps compiled models between runs
(:mod:`paddleseg.deploy.openvino_cache`). ``openvino`` is imported when this backend is built.
"""
import logging
import time
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import numpy as np

from paddleseg.deploy.backends.base import Backend, BackendOptions
from paddleseg.deploy.config import DeployConfig
from paddleseg.deploy.errors import DeployError, one_line
from paddleseg.deploy.model_files import check_onnx_model, check_openvino_model, sha256
from paddleseg.deploy.openvino_cache import CompiledModelCache
from paddleseg.deploy.openvino_settings import OV_HINTS, OpenVINOSettings
from paddleseg.deploy.precision import OV_PRECISION_HINT, CpuCaps, choose_precision, int8_float_precision
from paddleseg.deploy.tensorrt_settings import shape_text

logger = logging.getLogger(__name__)

MAX_COMPILED_SHAPES = 8  # compiled models kept, one per input shape (each ~ the model's size in memory)
INSTALL = "pip install 'paddleseg-espnetv2[openvino]' (or pip install openvino)"


def import_openvino():
    try:
        import openvino
    except ImportError as e:
        raise DeployError(f"--backend openvino needs the openvino package ({one_line(e)}): {INSTALL}") from e
    return openvino


def cpu_caps(core) -> CpuCaps:
    """The CPU as OpenVINO's CPU plugin reports it: name and OPTIMIZATION_CAPABILITIES."""
    return CpuCaps(str(core.get_property("CPU", "FULL_DEVICE_NAME")),
                   tuple(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")))


def fixed_input_shape(deploy: DeployConfig) -> Optional[Tuple[int, int, int, int]]:
    """The one input shape every image gets (batch 1 unless fixed), or None where it varies."""
    n, c, h, w = deploy.input_shape
    size = deploy.resize_hw()
    if size is not None:
        h, w = size
    return None if -1 in (c, h, w) else (1 if n == -1 else n, c, h, w)


class CompiledShapes:
    """An OpenVINO model compiled once per input shape it is run on, the last :data:`MAX_COMPILED_SHAPES`
    kept; every compile with ``config`` (INFERENCE_PRECISION_HINT read back), through ``cache`` if given.
    The backend's engine; tools/quantize.py runs its candidate models with it too."""

    def __init__(self, ov, core, model, config: Dict, label: str, cache: Optional[CompiledModelCache] = None):
        self.ov, self.core, self.model, self.config, self.label, self.cache = ov, core, model, config, label, cache
        self.input_name = model.inputs[0].any_name
        self._requests: "OrderedDict[Tuple[int, ...], object]" = OrderedDict()
        self.compiles = 0

    def request(self, shape: Tuple[int, ...]):
        """The inference request of the model compiled for ``shape`` (compiled now if it is new)."""
        shape = tuple(int(v) for v in shape)
        request = self._requests.get(shape)
        if request is not None:
            self._requests.move_to_end(shape)
            return request
        request = self._requests[shape] = self._compile(shape)
        if len(self._requests) > MAX_COMPILED_SHAPES:
            self._requests.popitem(last=False)
            if self.compiles == MAX_COMPILED_SHAPES + 1:
                logger.warning("OpenVINO compiles the model once per input size and keeps %d: images of many sizes "
                               "compile again and again (export with a fixed size or a Resize, or give --ov_cache_dir)",
                               MAX_COMPILED_SHAPES)
        return request

    def _compile(self, shape: Tuple[int, ...]):
        model = self.model.clone()
        try:
            model.reshape({self.input_name: self.ov.PartialShape(list(shape))})
        except Exception as e:
            raise DeployError(f"{self.label}: OpenVINO cannot give this model an input of {shape_text(shape)}: "
                              f"{one_line(e)}") from e

        def compile_into(cache_folder: Optional[str] = None):
            config = dict(self.config, **({"CACHE_DIR": cache_folder} if cache_folder else {}))
            return self.core.compile_model(model, "CPU", config)

        start = time.perf_counter()
        try:
            compiled = self.cache.compile(compile_into) if self.cache is not None else compile_into()
        except DeployError:
            raise
        except Exception as e:
            raise DeployError(f"{self.label}: OpenVINO cannot compile it for {shape_text(shape)}: {one_line(e)}") from e
        got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        wanted = self.config["INFERENCE_PRECISION_HINT"]
        if got != wanted:  # explicit, and read back: never OpenVINO's default
            raise DeployError(f"OpenVINO compiled {self.label} at {got}, not the {wanted} asked for")
        self.compiles += 1
        logger.info("OpenVINO compiled for %s in %.2f s (%s, %s thread(s))", shape_text(shape),
                    time.perf_counter() - start, got, compiled.get_property("INFERENCE_NUM_THREADS"))
        return compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = self.request(batch.shape)
        output = request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.array(output, copy=True)  # the request's output buffer is reused by the next run


def compile_config(inference_precision: str, threads: int, hint: str = "latency") -> Dict:
    """OpenVINO's CPU settings, each explicit: ``inference_precision`` (f32 or bf16), threads, hint."""
    return {"INFERENCE_PRECISION_HINT": inference_precision, "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": OV_HINTS[hint]}


class OpenVINO(Backend):
    """The export's IR or ONNX model compiled by OpenVINO for the CPU (module docstring)."""

    name = "openvino"

    def __init__(self, deploy: DeployConfig, options: BackendOptions):
        super().__init__(deploy, options)
        if options.device != "cpu":
            raise DeployError("--backend openvino runs on the CPU here: use --device cpu")
        settings = options.openvino or OpenVINOSettings()
        if settings.hint not in OV_HINTS:
            raise DeployError(f"--ov_hint {settings.hint}: expected one of {', '.join(OV_HINTS)}")
        self.ov = import_openvino()
        self.core = self.ov.Core()
        self.cpu = cpu_caps(self.core)
        verified = deploy.verified.get(self.name, {})
        self.precision, reason = choose_precision(settings.precision, self.cpu, verified, settings.require_verified)
        if self.precision == "int8":
            self.model_file = deploy.folder / verified["int8"].model
            float_precision = int8_float_precision(verified["int8"], self.cpu)
        else:
            self.model_file = deploy.openvino_file or deploy.onnx_file
            float_precision = self.precision
        if self.model_file is None:
            raise DeployError(f"{deploy.folder}: exported without --onnx or --openvino (OpenVINO reads model.onnx or "
                              f"model.xml); export again with --openvino")
        if self.model_file.suffix == ".xml":
            check_openvino_model(deploy, self.model_file)
        else:
            check_onnx_model(deploy)
        self.inference_precision = OV_PRECISION_HINT[float_precision]
        try:
            model = self.core.read_model(str(self.model_file))
        except Exception as e:
            raise DeployError(f"{self.model_file}: OpenVINO cannot read it: {one_line(e)}") from e
        cache = (CompiledModelCache(settings.cache_dir, self.cache_key(settings.hint))
                 if settings.cache_dir is not None else None)
        self.compiled = CompiledShapes(self.ov, self.core, model,
                                       compile_config(self.inference_precision, options.threads, settings.hint),
                                       str(self.model_file), cache)
        self.input_name = self.compiled.input_name
        logger.info("OpenVINO %s on %s: %s (%s), %s, %d thread(s), %s hint", self.ov.get_version(), self.cpu.name,
                    self.described, reason, self.model_file.name, options.threads, settings.hint)
        shape = fixed_input_shape(deploy)
        if shape is not None:
            self.compiled.request(shape)

    @property
    def described(self) -> str:
        rest = f" ({self.inference_precision} elsewhere)" if self.precision == "int8" else ""
        return f"openvino {self.precision}{rest} on {self.device}"

    def cache_key(self, hint: str) -> Dict:
        """What a compiled model depends on (:mod:`paddleseg.deploy.openvino_cache`)."""
        files = [self.model_file] + ([self.model_file.with_suffix(".bin")] if self.model_file.suffix == ".xml" else [])
        return {"backend": self.name, "model": [sha256(f) for f in files], "precision": self.precision,
                "inference_precision": self.inference_precision, "threads": self.options.threads, "hint": hint,
                "openvino": self.ov.get_version(), "cpu": f"{self.cpu.name} {' '.join(self.cpu.capabilities)}"}

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.compiled.run(batch)
