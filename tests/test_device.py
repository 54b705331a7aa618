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
    (("tpu",), "--device must be one of auto, cpu, gpu"),
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


def test_auto_picks_the_gpu_only_when_cuda_and_a_card_are_there(monkeypatch, caplog):
    monkeypatch.setattr(device, "visible_gpus", lambda: 0)
    with caplog.at_level("INFO"):
        assert device.resolve_device("auto") == "cpu"
    assert "--device auto: using the CPU" in caplog.text
    monkeypatch.setattr(device, "visible_gpus", lambda: 4)
    assert device.resolve_device("auto") == "gpu"
    assert device.resolve_device("cpu") == "cpu"
    assert device.visible_gpus.__module__  # the real function is still importable


def test_the_real_build_is_resolved_without_a_gpu():
    expected = "gpu" if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() else "cpu"
    assert device.resolve_device("auto") == expected


def test_cpu_on_several_ranks_forces_gloo_even_on_a_cuda_build(monkeypatch):
    monkeypatch.setattr(paddle.base.core, "set_num_threads", lambda n: None)
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda: 2)
    monkeypatch.setenv("PADDLE_DISTRI_BACKEND", "auto")
    assert device.set_device("cpu") == "cpu"
    import os
    assert os.environ["PADDLE_DISTRI_BACKEND"] == "gloo"


def test_deterministic_flags_are_set_and_read_back_and_a_missing_one_is_a_loud_error():
    flag = "FLAGS_check_nan_inf"  # a flag every build has: stands in for the GPU ones on a CPU build
    before = paddle.get_flags([flag])[flag]
    try:
        device.set_flags({flag: not before}, "--deterministic")
        assert paddle.get_flags([flag])[flag] == (not before)
    finally:
        paddle.set_flags({flag: before})
    with pytest.raises(UserError, match="has no flag FLAGS_no_such_flag"):
        device.set_flags({"FLAGS_no_such_flag": True}, "--deterministic")


def test_deterministic_is_a_logged_no_op_on_the_cpu_and_sets_the_gpu_flags_or_names_the_missing_one(caplog):
    with caplog.at_level("INFO"):
        assert device.set_deterministic("cpu") == {}
    assert "nothing to set on the CPU" in caplog.text
    assert set(device.GPU_DETERMINISM_FLAGS) >= {"FLAGS_cudnn_deterministic", "FLAGS_allow_tf32_cudnn",
                                                 "FLAGS_allow_tf32_cublas"}
    if not paddle.device.is_compiled_with_cuda():  # the CPU build has none of them: an error, not a silent skip
        with pytest.raises(UserError, match="has no flag FLAGS_cudnn_deterministic"):
            device.set_deterministic("gpu")
    else:
        assert device.set_deterministic("gpu") == device.GPU_DETERMINISM_FLAGS
        for name, value in device.GPU_DETERMINISM_FLAGS.items():
            assert paddle.get_flags([name])[name] == value


def test_loader_workers_default_to_none_on_the_cpu_and_a_few_per_rank_on_the_gpu(monkeypatch, caplog):
    monkeypatch.setattr(device, "default_cpu_threads", lambda: 2)
    with caplog.at_level("INFO"):
        assert device.loader_workers("cpu", None, None) == (0, 0)
        assert device.loader_workers("gpu", None, None) == (2, 2)
        assert device.loader_workers("gpu", 1, 3) == (1, 3)
    assert "default on the GPU" in caplog.text
    monkeypatch.setattr(device, "default_cpu_threads", lambda: 16)
    assert device.default_num_workers("gpu") == 4


def test_cpu_vendor_is_read_from_cpuinfo_and_unknown_without_it(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\nprocessor\t: 1\n"
                       "vendor_id\t: AuthenticAMD\n")
    assert device.cpu_vendor(cpuinfo) == "AuthenticAMD"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: something\n")
    assert device.cpu_vendor(cpuinfo) is None
    assert device.cpu_vendor(tmp_path / "missing") is None


@pytest.mark.parametrize("vendor, environ, expected", [
    ("AuthenticAMD", {}, "5"),
    ("GenuineIntel", {}, None),  # MKL's own dispatch is right on Intel (AVX-512 where present)
    ("", {}, None),  # unknown vendor
    ("AuthenticAMD", {"MKL_DEBUG_CPU_TYPE": "0"}, None),  # the user's value, also an opt-out, is kept
])
def test_mkl_is_pointed_at_its_avx2_kernels_only_on_amd_and_never_over_the_users_value(vendor, environ, expected):
    before = dict(environ)
    assert device.choose_mkl_code_path(environ, vendor=vendor) == expected
    if expected is None:
        assert environ == before
    else:
        assert environ == {**before, "MKL_DEBUG_CPU_TYPE": expected}


def test_the_cpu_device_chooses_the_mkl_code_path_before_any_model_runs(monkeypatch):
    environ = {}
    monkeypatch.setattr(device.os, "environ", environ)
    monkeypatch.setattr(device, "cpu_vendor", lambda: "AuthenticAMD")
    monkeypatch.setattr(device, "set_cpu_threads", lambda n: None)
    device.set_device("cpu", 1)
    assert environ["MKL_DEBUG_CPU_TYPE"] == "5"
