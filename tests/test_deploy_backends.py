"""paddleseg.deploy.backends: a backend is chosen by name from one table, each implements the common
interface, and importing the deployment package loads no runtime (a machine without Paddle runs the
ONNX Runtime backend)."""
import subprocess
import sys

import numpy as np
import pytest

from paddleseg.deploy.backends import BACKENDS, Backend, BackendOptions, create_backend
from paddleseg.deploy.backends.base import Backend as BaseBackend
from paddleseg.deploy.config import load_deploy
from paddleseg.deploy.tensorrt_settings import ShapeRange, TensorRT

from test_tools_infer import tiny_onnx_export

DEPLOY_MODULES = ["paddleseg.deploy", "paddleseg.deploy.errors", "paddleseg.deploy.config", "paddleseg.deploy.inputs",
                  "paddleseg.deploy.images", "paddleseg.deploy.preprocess", "paddleseg.deploy.postprocess",
                  "paddleseg.deploy.outputs", "paddleseg.deploy.model_files", "paddleseg.deploy.pipeline",
                  "paddleseg.deploy.benchmark", "paddleseg.deploy.tensorrt_settings", "paddleseg.deploy.tensorrt_cache",
                  "paddleseg.deploy.backends", "paddleseg.deploy.backends.base",
                  "paddleseg.deploy.backends.paddle_inference", "paddleseg.deploy.backends.onnx_runtime"]
DEPLOY_MODULES += ["paddleseg.deploy.video", "paddleseg.deploy.video_args", "paddleseg.deploy.flicker",
                   "paddleseg.deploy.smoothing"]  # videos (issue 24)
DEPLOY_MODULES += ["paddleseg.deploy.backends.openvino", "paddleseg.deploy.openvino_settings",  # issue 22
                   "paddleseg.deploy.openvino_cache", "paddleseg.deploy.precision", "paddleseg.deploy.speed"]


def test_importing_every_deploy_module_loads_no_runtime():
    code = (f"import {', '.join(DEPLOY_MODULES)}; import sys; "
            f"assert not {{'paddle', 'onnxruntime', 'openvino'}} & set(sys.modules), "
            f"sorted(m for m in sys.modules if m.split('.')[0] in ('paddle', 'onnxruntime', 'openvino'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_deploy_module_is_in_the_import_test():
    from conftest import REPO

    found = {".".join(p.relative_to(REPO).with_suffix("").parts).replace(".__init__", "")
             for p in (REPO / "paddleseg" / "deploy").rglob("*.py")}
    assert found == set(DEPLOY_MODULES)


def test_backends_are_named_in_one_table_and_share_the_interface():
    assert sorted(BACKENDS) == ["onnxruntime", "openvino", "paddle"] and Backend is BaseBackend
    for name, cls in BACKENDS.items():
        assert issubclass(cls, Backend) and cls.name == name
        assert callable(cls.check_gpu) and callable(cls.run)


def test_create_backend_and_the_tensorrt_input_range(tmp_path):
    deploy = load_deploy(tiny_onnx_export(tmp_path) / "deploy.yaml")
    backend = create_backend("onnxruntime", deploy, BackendOptions(threads=1))
    assert backend.input_problem((1, 3, 4000, 4000)) is None and backend.input_shape == (-1, 3, -1, -1)
    assert backend.run(np.zeros((1, 3, 2, 2), np.float32)).shape == (1, 2, 2)
    with pytest.raises(KeyError):
        create_backend("tensorrt", deploy, BackendOptions())


class Echo(Backend):
    """The smallest backend: what the base class gives every runtime."""

    name = "echo"

    def run(self, batch):
        return batch


def test_the_base_class_describes_the_run_and_checks_the_tensorrt_range(tmp_path):
    deploy = load_deploy(tiny_onnx_export(tmp_path) / "deploy.yaml")
    trt = TensorRT(ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 16, 16)), "fp32", tmp_path)
    ranged = Echo(deploy, BackendOptions(device="gpu", trt=trt))
    assert ranged.input_problem((1, 3, 12, 12)) is None
    assert ranged.input_problem((1, 3, 20, 8)) == ("its input 1x3x20x8 is outside the TensorRT shape range 1x3x8x8 "
                                                   "to 1x3x16x16 (best at 1x3x8x8) (widen --trt_min_shape or "
                                                   "--trt_max_shape)")
    assert ranged.described == "echo + TensorRT fp32 on gpu" and Echo.check_gpu(use_trt=True) is None
