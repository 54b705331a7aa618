"""GPU runs of tools/infer.py on machines that cannot honour them: exit 2 with one ``error:`` line
naming what is missing, before anything is written, instead of running on the CPU under a GPU label.

Seen on this CPU machine as a user sees it (the CPU onnxruntime package, the CPU PaddlePaddle build)
and, through a hook that makes Paddle or onnxruntime report what a GPU machine would, for a CUDA
build without a card, one without TensorRT, an onnxruntime-gpu whose CUDA libraries do not load,
and a working GPU onnxruntime given a TensorRT shape range (it runs on the CPU here)."""
import json

import cv2
import numpy as np
import pytest

from fault_helpers import assert_user_error, run_script, run_with_fault, snapshot
from test_tools_infer import tiny_onnx_export

RANGE = ["--trt_min_shape", "1", "3", "8", "8", "--trt_opt_shape", "1", "3", "20", "30",
         "--trt_max_shape", "1", "3", "32", "32"]


@pytest.fixture
def setup(tmp_path):
    """An export whose model is an ONNX argmax (dynamic input), a 20x30 and a 40x60 image."""
    model_dir = tiny_onnx_export(tmp_path / "export")
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "in" / "a.png"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "in" / "b.png"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    return model_dir, tmp_path / "in"


def run(tmp_path, setup, *extra, hook=None):
    """tools/infer.py on the setup's images; converted TensorRT programs would go to tmp_path/cache."""
    model_dir, images = setup
    args = ["--model_dir", model_dir, "--image_path", images, "--save_dir", tmp_path / "out", *extra]
    if "--use_trt" in extra:
        args += ["--trt_cache_dir", tmp_path / "cache"]
    if hook is None:
        return run_script("tools/infer.py", *args, cwd=tmp_path, timeout=120)
    return run_with_fault(QUIET + hook, "tools/infer.py", *args, cwd=tmp_path, timeout=120)


QUIET = """
import warnings
warnings.filterwarnings("ignore", message="No ccache found")
"""


@pytest.mark.parametrize("extra, missing", [
    ([], "has no CUDAExecutionProvider"),
    (["--use_trt"] + RANGE, "has no TensorrtExecutionProvider or CUDAExecutionProvider"),
])
def test_cpu_onnxruntime_package_refuses_the_gpu(tmp_path, setup, extra, missing):
    """The CPU package only warns when asked for CUDA and runs on the CPU (exit 0, a 'gpu' benchmark
    label on CPU numbers): now it is an error naming onnxruntime-gpu and the package conflict."""
    before = snapshot(tmp_path)
    done = run(tmp_path, setup, "--backend", "onnxruntime", "--device", "gpu", "--benchmark", *extra)
    error = assert_user_error(done, missing, "install onnxruntime-gpu instead",
                              "pip uninstall -y onnxruntime onnxruntime-gpu, then pip install onnxruntime-gpu")
    assert "CPUExecutionProvider" in error and "median" not in done.stdout
    assert snapshot(tmp_path) == before  # no outputs, no cache folder


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--use_trt"], ["--use_trt", "--precision", "fp16"] + RANGE])
def test_cpu_paddle_build_refuses_the_gpu(tmp_path, setup, extra):
    """Paddle's enable_use_gpu on a CPU build logs and runs on the CPU: now it is an error, with or
    without TensorRT (which is never skipped silently), before any shape range is asked for."""
    before = snapshot(tmp_path)
    done = run(tmp_path, setup, "--backend", "paddle", "--device", "gpu", *extra)
    assert_user_error(done, "error: --device gpu: this PaddlePaddle build has no CUDA support (install "
                            "paddlepaddle-gpu")
    assert snapshot(tmp_path) == before


FAKE_CUDA_BUILD = """
import paddle
from paddle import inference
paddle.device.is_compiled_with_cuda = lambda: True
paddle.device.cuda.device_count = lambda: {cards}
inference.get_trt_compile_version = lambda: {trt}
inference.get_trt_runtime_version = lambda: {trt}
"""


@pytest.mark.parametrize("cards, trt, message", [
    (0, (0, 0, 0), "--device gpu: no CUDA card is visible to PaddlePaddle (check nvidia-smi and CUDA_VISIBLE_DEVICES)"),
    (1, (0, 0, 0), "--use_trt: this PaddlePaddle build was compiled without TensorRT"),
])
@pytest.mark.slow
def test_cuda_build_without_a_card_or_tensorrt_is_refused(tmp_path, setup, cards, trt, message):
    before = snapshot(tmp_path)
    done = run(tmp_path, setup, "--backend", "paddle", "--device", "gpu", "--use_trt", *RANGE,
               hook=FAKE_CUDA_BUILD.format(cards=cards, trt=trt))
    assert_user_error(done, message)
    assert snapshot(tmp_path) == before


def test_tensorrt_without_a_shape_range_for_a_dynamic_export_is_refused(tmp_path, setup):
    """A CUDA build with TensorRT and a card passes the checks; the export takes any size, so the
    range must be given (and is asked for before any conversion starts)."""
    done = run(tmp_path, setup, "--backend", "paddle", "--device", "gpu", "--use_trt",
               hook=FAKE_CUDA_BUILD.format(cards=1, trt=(10, 5, 0)))
    assert_user_error(done, "this export takes any input size (input_shape [-1, 3, -1, -1] in deploy.yaml), so "
                            "TensorRT needs the range of sizes to build for: give --trt_min_shape, --trt_opt_shape, "
                            "--trt_max_shape (N C H W each)")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


# onnxruntime-gpu installed, but the CUDA libraries it needs do not load: it logs and runs on the
# CPU. The CPU package behaves the same when told CUDA is there, which is what this hook does.
ORT_GPU_WITHOUT_CUDA = """
import onnxruntime
onnxruntime.get_available_providers = lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
"""


def test_onnxruntime_gpu_falling_back_to_the_cpu_is_refused(tmp_path, setup):
    before = snapshot(tmp_path)
    done = run(tmp_path, setup, "--backend", "onnxruntime", "--device", "gpu", hook=ORT_GPU_WITHOUT_CUDA)
    assert_user_error(done, "could not start CUDAExecutionProvider (it would run on CPUExecutionProvider): the "
                            "CUDA, cuDNN libraries it needs are missing")
    assert snapshot(tmp_path) == before


# A working onnxruntime-gpu, as far as tools/infer.py can tell: the providers it asks for are
# reported as running (the session runs on the CPU here) and printed for the test to read.
ORT_GPU = """
import json
import onnxruntime
Session = onnxruntime.InferenceSession
onnxruntime.get_available_providers = lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                               "CPUExecutionProvider"]

class GpuSession(Session):
    def __init__(self, path, options=None, providers=None):
        print("PROVIDERS " + json.dumps(providers), flush=True)
        super().__init__(path, options, providers=["CPUExecutionProvider"])
        self.asked = [p if isinstance(p, str) else p[0] for p in providers]

    def get_providers(self):
        return self.asked

onnxruntime.InferenceSession = GpuSession
"""


def test_onnxruntime_tensorrt_gets_the_shape_range_and_images_outside_it_are_skipped(tmp_path, setup):
    done = run(tmp_path, setup, "--backend", "onnxruntime", "--device", "gpu", "--use_trt", "--precision", "fp16",
               *RANGE, "--save_label", "--benchmark", "--repeats", "1", "--warmup", "0", hook=ORT_GPU)
    assert done.returncode == 3, done.stderr[-3000:]
    line = next(row for row in done.stdout.splitlines() if row.startswith("PROVIDERS "))
    tensorrt, cuda, cpu = json.loads(line[len("PROVIDERS "):])
    assert [tensorrt[0], cuda, cpu] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    options = tensorrt[1]
    assert (options["trt_profile_min_shapes"], options["trt_profile_opt_shapes"], options["trt_profile_max_shapes"]) \
        == ("x:1x3x8x8", "x:1x3x20x30", "x:1x3x32x32")
    assert options["trt_fp16_enable"] is True and options["trt_engine_cache_enable"] is True
    cache = options["trt_engine_cache_path"]
    assert cache.startswith(str(tmp_path / "cache" / "onnxruntime-fp16-")) and (tmp_path / "cache").is_dir()
    assert "onnxruntime + TensorRT fp16 on gpu, input [1, 3, 20, 30]" in done.stdout
    assert ("b.png: its input 1x3x40x60 is outside the TensorRT shape range 1x3x8x8 to 1x3x32x32 (best at "
            "1x3x20x30) (widen --trt_min_shape or --trt_max_shape)") in done.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "label").iterdir()) == ["a.png"]
