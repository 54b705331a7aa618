"""tools/infer.py --backend openvino keeps the contract on bad input: an unknown precision, f16, a
precision the CPU lacks, an export without the verified precision, a changed, missing or foreign
compiled-model cache: one ``error:`` line, exit 2, nothing written in --save_dir. The child runs under
an address-space cap (OpenVINO's imports plus 1 GB). The CPU's capabilities are faked where a test
needs a CPU with or without BF16."""
import pytest
import yaml

from fault_helpers import assert_user_error, memory_limit, run_with_fault

pytest.importorskip("openvino", reason="openvino is not installed (pip install '.[openvino]')")
from test_deploy_openvino import tiny_logits_export  # noqa: E402

pytestmark = pytest.mark.slow
CAP = memory_limit("openvino")


def fake_cpu(*capabilities: str) -> str:
    """Hook: OpenVINO's CPU reports ``capabilities``."""
    return f"""
import paddleseg.deploy.backends.openvino as backend
from paddleseg.deploy.precision import CpuCaps
backend.cpu_caps = lambda core: CpuCaps("Test CPU", {capabilities!r})
"""


@pytest.fixture
def setup(tmp_path):
    import cv2
    import numpy as np

    folder = tiny_logits_export(tmp_path / "export")
    cv2.imwrite(str(tmp_path / "a.png"), np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8))
    return tmp_path, folder


def infer(tmp_path, folder, *extra, hook="", save="out"):
    return run_with_fault(CAP + hook, "tools/infer.py", "--model_dir", folder, "--image_path", tmp_path / "a.png",
                          "--save_dir", tmp_path / save, "--backend", "openvino", *extra, cwd=tmp_path, timeout=60)


def record_bf16(folder):
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["verified_precisions"] = {"openvino": {"bf16": {"miou_drop": 0.0, "labels_equal": 1.0}}}
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))


@pytest.mark.parametrize("extra, hook, fragments", [
    (["--precision", "fp8"], "", ["argument --precision/--trt_precision: invalid choice: 'fp8'"]),
    (["--precision", "fp16"], "", ["--precision fp16 with --backend openvino: refused: OpenVINO's f16 on the CPU "
                                   "overflows in this network"]),
    (["--precision", "bf16"], fake_cpu("FP32", "INT8"), ["--precision bf16: this CPU (Test CPU) does not report BF16"]),
    (["--precision", "bf16"], fake_cpu("FP32", "BF16", "INT8"), ["--precision bf16: deploy.yaml records no verified "
                                                                 "bf16 for this export", "--check_precisions"]),
    (["--precision", "int8"], fake_cpu("FP32", "BF16", "INT8"), ["--precision int8: deploy.yaml records no verified "
                                                                 "int8 model", "tools/quantize.py"]),
    (["--ov_hint", "throughput", "--ov_cache_dir", "a.png"], "", ["--ov_cache_dir", "a.png: cannot create it"]),
])
def test_precisions_and_settings_that_cannot_run(setup, extra, hook, fragments):
    tmp_path, folder = setup
    if extra[-1] == "bf16" and "BF16" not in hook:
        record_bf16(folder)  # recorded, but the CPU lacks it
    assert_user_error(infer(tmp_path, folder, *extra, hook=hook), *fragments)
    assert not (tmp_path / "out").exists()


def test_auto_runs_fp32_on_a_cpu_without_bf16_even_where_bf16_is_recorded(setup):
    tmp_path, folder = setup
    record_bf16(folder)
    done = infer(tmp_path, folder, hook=fake_cpu("FP32", "INT8"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "openvino fp32 on cpu (auto: the CPU (Test CPU) does not report BF16)" in done.stderr
    assert "(f32, 2 thread(s))" in done.stderr  # read back from the compiled model
    assert (tmp_path / "out" / "pseudo_color_prediction" / "a.png").is_file()


@pytest.mark.parametrize("damage, fragment", [
    ("changed", "changed since it was written: it is not loaded; delete that folder"),
    ("missing", "since it was written: it is not loaded"),
    ("foreign", "holds files OpenVINO does not write (notes.txt)"),
])
def test_a_tampered_or_missing_cache_entry_is_refused(setup, damage, fragment):
    tmp_path, folder = setup
    cache = tmp_path / "cache"
    first = infer(tmp_path, folder, "--precision", "fp32", "--ov_cache_dir", cache, save="first")
    assert first.returncode == 0, first.stderr[-2000:]
    (entry,) = cache.iterdir()
    (blob,) = entry.glob("*.blob")
    if damage == "changed":
        data = bytearray(blob.read_bytes())
        data[-100] ^= 0x01
        blob.write_bytes(bytes(data))
    elif damage == "missing":
        blob.unlink()
    else:
        (entry / "notes.txt").write_text("")
    line = assert_user_error(infer(tmp_path, folder, "--precision", "fp32", "--ov_cache_dir", cache), fragment)
    assert str(entry) in line
    assert not (tmp_path / "out").exists()
