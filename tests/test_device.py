import paddle
import pytest

from paddleseg.errors import UserError
from paddleseg.utils import device


def test_cpu_threads_default_to_all_cores_and_can_be_set(monkeypatch):
    calls = []
    monkeypatch.setattr(paddle.base.core, "set_num_threads", calls.append)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    device.set_device("cpu")
    device.set_device("cpu", cpu_threads=1)
    assert calls == [4, 1]
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda: 2)
    assert device.default_cpu_threads() == 2  # shared among the ranks


@pytest.mark.parametrize("args, message", [
    (("tpu",), "--device must be cpu or gpu"),
    (("cpu", 0), "--cpu_threads must be at least 1"),
])
def test_bad_device_arguments_are_user_errors(args, message):
    with pytest.raises(UserError, match=message):
        device.set_device(*args)


def test_gpu_without_cuda_and_fp16_on_cpu_are_user_errors():
    if not paddle.device.is_compiled_with_cuda():
        with pytest.raises(UserError, match="no CUDA support"):
            device.set_device("gpu")
    with pytest.raises(UserError, match="needs a GPU"):
        device.check_precision("fp16", "cpu")
    device.check_precision("fp32", "cpu")
