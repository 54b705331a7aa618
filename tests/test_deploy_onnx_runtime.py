"""paddleseg.deploy.backends.onnx_runtime: runs model.onnx on the CPU; a GPU run without the CUDA
provider is a user error naming onnxruntime-gpu; a model ONNX Runtime cannot load is a DeployError.
(Through tools/infer.py, with the GPU providers faked: tests/faults/test_gpu_arguments.py.)"""
import numpy as np
import pytest
import yaml

from paddleseg.deploy.backends import BackendOptions
from paddleseg.deploy.backends.onnx_runtime import OnnxRuntime, check_onnx_providers
from paddleseg.deploy.config import load_deploy
from paddleseg.deploy.errors import DeployError

from test_tools_infer import tiny_onnx_export


def test_runs_the_onnx_model_on_the_cpu(tmp_path):
    backend = OnnxRuntime(load_deploy(tiny_onnx_export(tmp_path) / "deploy.yaml"), BackendOptions(threads=1))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(backend.run(x), x.argmax(axis=1))
    assert backend.input_name == "x" and backend.described == "onnxruntime on cpu"


def test_the_cpu_package_refuses_the_gpu():
    with pytest.raises(DeployError, match="has no TensorrtExecutionProvider or CUDAExecutionProvider .* install "
                                          "onnxruntime-gpu instead"):
        check_onnx_providers(use_trt=True)


def test_an_export_without_onnx_and_a_model_onnx_runtime_rejects_are_deploy_errors(tmp_path):
    folder = tiny_onnx_export(tmp_path)
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["onnx"] = None
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    with pytest.raises(DeployError, match="exported without --onnx"):
        OnnxRuntime(load_deploy(folder / "deploy.yaml"), BackendOptions())
    deploy["Deploy"]["onnx"] = "model.onnx"
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    (folder / "model.onnx").write_bytes(bytes([0x08, 0x07, 0x3A, 0x02, 0x0A, 0x00]))  # a graph of nothing
    with pytest.raises(DeployError, match="model.onnx: ONNX Runtime cannot load it: "):
        OnnxRuntime(load_deploy(folder / "deploy.yaml"), BackendOptions())
