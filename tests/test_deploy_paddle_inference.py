"""paddleseg.deploy.backends.paddle_inference: a GPU run names what is missing (a CPU build, no card, no
TensorRT) instead of running on the CPU; paddle.tensorrt gets the shape range and precision, converts
once (through paddleseg.deploy.tensorrt_cache) and its problems are user errors; on the CPU the
backend runs an export and a broken one is a DeployError, never a crash."""
import re
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from paddleseg.deploy.backends import BackendOptions
from paddleseg.deploy.backends.paddle_inference import (
    PaddleInference,
    check_paddle_gpu,
    convert_with_paddle_tensorrt,
    paddle_trt_key,
)
from paddleseg.deploy.config import load_deploy
from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.tensorrt_cache import cached_trt_program
from paddleseg.deploy.tensorrt_settings import ShapeRange, TensorRT

from test_deploy_model_files import tiny_paddle_export
from test_deploy_tensorrt_cache import FakeConversion


def test_runs_an_export_on_the_cpu_with_and_without_onednn(tmp_path):
    deploy = load_deploy(tiny_paddle_export(tmp_path / "export") / "deploy.yaml")
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    outputs = []
    for mkldnn in (True, False):
        backend = PaddleInference(deploy, BackendOptions(threads=1, mkldnn=mkldnn))
        assert backend.input_name == "x" and backend.described == "paddle on cpu"
        outputs.append(backend.run(x))
    assert outputs[0].shape == (2, 5, 7) and (outputs[0] == outputs[1]).all()


def test_a_program_paddle_cannot_load_is_a_deploy_error(tmp_path):
    """Valid JSON with PIR's magic but not a program Paddle can build: its C++ error as one line."""
    folder = tiny_paddle_export(tmp_path / "export")
    (folder / "model.json").write_text('{"base_code": {"magic": "pir", "trainable": true, "version": 4}, '
                                       '"program": {"regions": []}}')
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["digests"] = None
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    with pytest.raises(DeployError, match="Paddle Inference cannot load model.json"):
        PaddleInference(load_deploy(folder / "deploy.yaml"), BackendOptions(threads=1))


def test_gpu_checks_name_what_is_missing(monkeypatch):
    """A CPU build, a CUDA build without a visible card, one without TensorRT or unable to load it: each
    is one clear error."""
    from paddle import inference

    with pytest.raises(DeployError, match="this PaddlePaddle build has no CUDA support"):
        check_paddle_gpu(use_trt=False)  # the CPU build installed here
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 0)
    with pytest.raises(DeployError, match="no CUDA card is visible to PaddlePaddle"):
        check_paddle_gpu(use_trt=False)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 1)
    check_paddle_gpu(use_trt=False)
    with pytest.raises(DeployError, match="compiled without TensorRT"):
        check_paddle_gpu(use_trt=True)  # get_trt_compile_version() is (0, 0, 0) here
    monkeypatch.setattr(inference, "get_trt_compile_version", lambda: (10, 5, 0))
    with pytest.raises(DeployError, match=re.escape(
            "--use_trt: PaddlePaddle was built with TensorRT 10.5.0 but cannot load it (no TensorRT library found); "
            "install it (pip install tensorrt==10.5.0)")):
        check_paddle_gpu(use_trt=True)  # get_trt_runtime_version() is (0, 0, 0) here

    def unloadable():
        raise RuntimeError("Cannot load libnvinfer.so.10")

    monkeypatch.setattr(inference, "get_trt_runtime_version", unloadable)
    with pytest.raises(DeployError, match=r"cannot load it \(RuntimeError: Cannot load libnvinfer.so.10\)"):
        check_paddle_gpu(use_trt=True)
    monkeypatch.setattr(inference, "get_trt_runtime_version", lambda: (10, 5, 0))
    check_paddle_gpu(use_trt=True)


@pytest.fixture
def fake_paddle_tensorrt(monkeypatch):
    """paddle.tensorrt and the tensorrt package as a GPU build with TensorRT 10.5 would have them; the
    fake convert records what it is given and writes what the real one writes."""
    import types

    from paddle import inference

    seen = {}

    class Input:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class TensorRTConfig:
        def __init__(self, inputs):
            self.inputs = inputs

    def convert(model_path, config):
        seen.update(model_path=model_path, input=config.inputs[0].kwargs, precision=config.precision_mode,
                    save_model_dir=config.save_model_dir, workspace=config.workspace_size,
                    static=not paddle.in_dynamic_mode())
        if seen.get("fail"):
            raise RuntimeError("(Unimplemented) Converter for pd_op.gather not implemented.")
        FakeConversion()(Path(config.save_model_dir))

    export = types.SimpleNamespace(Input=Input, TensorRTConfig=TensorRTConfig, convert=convert,
                                   PrecisionMode=types.SimpleNamespace(FP32="FP32", FP16="FP16"))
    builder = types.SimpleNamespace(platform_has_fast_fp16=True)
    logger = types.SimpleNamespace(ERROR=0)
    logger_class = lambda severity: logger  # noqa: E731  (tensorrt.Logger(tensorrt.Logger.ERROR))
    logger_class.ERROR = 0
    tensorrt = types.SimpleNamespace(__version__="10.5.0", Logger=logger_class, Builder=lambda log: builder)
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt)
    monkeypatch.setitem(sys.modules, "paddle.tensorrt", types.ModuleType("paddle.tensorrt"))
    monkeypatch.setitem(sys.modules, "paddle.tensorrt.export", export)
    monkeypatch.setattr(inference, "get_trt_runtime_version", lambda: (10, 5, 0))
    monkeypatch.setattr(inference, "get_trt_compile_version", lambda: (10, 5, 0))
    monkeypatch.setattr(paddle.device.cuda, "get_device_name", lambda i: "NVIDIA A10", raising=False)
    monkeypatch.setattr(paddle.device.cuda, "get_device_capability", lambda i: (8, 6), raising=False)
    return seen, builder, tensorrt


def trt_run(tmp_path, precision="fp16"):
    """The paddle backend's TensorRT step: the cache key, then the conversion through the cache."""
    model, params = tmp_path / "export" / "model.json", tmp_path / "export" / "model.pdiparams"
    if not model.exists():
        model.parent.mkdir()
        model.write_text("{}")
        params.write_bytes(b"weights")
    trt = TensorRT(ShapeRange((1, 3, 64, 128), (1, 3, 256, 512), (1, 3, 512, 1024)), precision,
                         tmp_path / "cache")
    key = paddle_trt_key(model, params, trt)
    return key, cached_trt_program(trt.cache_dir, key, lambda out: convert_with_paddle_tensorrt(
        model, "x", trt, out))


def test_paddle_tensorrt_conversion_gets_the_shape_range_and_precision(tmp_path, fake_paddle_tensorrt):
    seen, _, _ = fake_paddle_tensorrt
    key, prefix = trt_run(tmp_path)
    assert seen["input"] == {"min_input_shape": (1, 3, 64, 128), "optim_input_shape": (1, 3, 256, 512),
                             "max_input_shape": (1, 3, 512, 1024), "input_data_type": "float32",
                             "input_range": (-1.0, 1.0), "name": "x"}
    assert seen["precision"] == "FP16" and seen["workspace"] == 1 << 30
    assert seen["model_path"] == str(tmp_path / "export" / "model.json")
    assert seen["save_model_dir"] == str(prefix) and prefix.is_absolute()  # engines named by absolute path
    assert seen["static"] and paddle.in_dynamic_mode()  # converted in static mode, dynamic mode restored
    assert key["gpu"] == "NVIDIA A10 sm86" and key["tensorrt"] == "10.5.0" and key["precision"] == "fp16"
    seen.clear()
    assert trt_run(tmp_path)[1] == prefix and seen == {}  # the second run converts nothing
    (tmp_path / "export" / "model.pdiparams").write_bytes(b"retrained")
    assert trt_run(tmp_path)[1] != prefix and seen["static"]  # new weights: a new conversion


def test_paddle_tensorrt_conversion_problems_are_user_errors(tmp_path, fake_paddle_tensorrt):
    seen, builder, tensorrt = fake_paddle_tensorrt
    tensorrt.__version__ = "8.6.1"
    with pytest.raises(DeployError, match=r"the tensorrt Python package is 8.6.1 but Paddle Inference runs "
                                                r"TensorRT 10.5.0; .*pip install tensorrt==10.5.0"):
        trt_run(tmp_path)
    tensorrt.__version__ = "10.5.0"
    builder.platform_has_fast_fp16 = False
    with pytest.raises(DeployError, match="this GPU has no fast fp16"):
        trt_run(tmp_path)
    trt_run(tmp_path, precision="fp32")
    builder.platform_has_fast_fp16 = True
    seen["fail"] = True
    with pytest.raises(DeployError, match=r"TensorRT conversion of .*model.json failed: RuntimeError: "
                                                r"\(Unimplemented\) Converter for pd_op.gather not implemented"):
        trt_run(tmp_path, precision="fp16")
    assert paddle.in_dynamic_mode()
    assert [p.name.split("-")[1] for p in (tmp_path / "cache").iterdir()] == ["fp32"]  # failures left nothing
