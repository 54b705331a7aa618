"""paddleseg.core.deploy_check, tools/deploy_check.py and export.py --check_precisions: every runtime and
precision of this machine measured side by side (latency at two sizes, end-to-end rate, labels equal to
the dygraph model, official mIoU and its drop); an offered precision outside the gate fails the check
(exit 2, the table and JSON still written); export.py records what passes in deploy.yaml, and an export
whose fp32 fails is not written."""
import json
import math
import subprocess
import sys
import textwrap

import pytest
import yaml

from paddleseg.core.deploy_check import DeployCheck, PathResult, failure_message
from paddleseg.deploy.precision import AccuracyGate

from conftest import REPO, write_train_config

CPU = {"model": "Test CPU", "flags": {"avx2": True, "avx512f": True, "avx512_bf16": True, "avx512_vnni": False,
                                      "amx": False}}


def rows():
    return [PathResult("onnxruntime", "fp32", True, 0.80, 0.999, 0.05, None, {"1x3x8x8": (10.0, 12.0)}, 50.0),
            PathResult("openvino", "bf16", False, 0.79, 0.995, 1.05, "mIoU drop 1.05 points > 0.5"),
            PathResult("openvino", "int8", True, 0.78, 0.97, 2.05, "mIoU drop 2.05 points > 0.5; labels equal "
                                                                 "97.00% < 99%")]


def test_only_offered_precisions_outside_the_gate_fail():
    check = DeployCheck(CPU, 0.8005, 4, AccuracyGate(), rows())
    assert [r.name for r in check.failures] == ["openvino int8"]
    assert failure_message(check) == ("openvino int8 fails the accuracy gate (mIoU drop 2.05 points > 0.5; labels "
                                      "equal 97.00% < 99%; mIoU 0.7800 against the dygraph model's 0.8005)")
    data = json.loads(json.dumps(check.as_dict()))
    assert data["failures"] == ["openvino int8"] and data["rows"][0]["model_ms"]["1x3x8x8"] == {"median": 10.0,
                                                                                               "p90": 12.0}
    table = check.table()
    assert "CPU Test CPU: avx2 yes" in table and "model ms 1x3x8x8 (median/p90)" in table and "10.0 / 12.0" in table
    assert "not offered, FAILS: mIoU drop 1.05 points > 0.5" in table


def test_the_record_holds_the_passing_precisions_beyond_fp32():
    passing = rows()[:2]
    passing[1].problem = None
    record = DeployCheck(CPU, 0.8005, 4, AccuracyGate(), passing).verified_record()
    assert list(record) == ["openvino"] and list(record["openvino"]) == ["bf16"]
    entry = record["openvino"]["bf16"]
    assert entry["miou_drop"] == 1.05 and entry["labels_equal"] == 0.995 and entry["cpu"] == "Test CPU"
    assert entry["val_images"] == 4


# ---------------------------------------------------------------------------------------------
# end to end, on the tiny synthetic set with a random-weights model (scale 0.5)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checked_model(tiny_cityscapes, tmp_path_factory):
    import paddle

    from paddleseg.core.export import export_model
    from paddleseg.models import ESPNetV2

    root = tmp_path_factory.mktemp("deploy_check")
    config = write_train_config(root / "config.yml", tiny_cityscapes)
    paddle.seed(5)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    model.eval()
    paddle.save(model.state_dict(), str(root / "model.pdparams"))
    openvino = importlib_find("openvino")
    export_model(model, root / "export", transforms=[{"type": "Normalize"}], num_classes=19, onnx=True,
                 openvino=openvino)
    return root, config, model, openvino


def importlib_find(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.slow
def test_every_path_is_measured_side_by_side(checked_model):
    from paddleseg.core.deploy_check import check_deploy, val_samples
    from paddleseg.cvlibs import Config
    from paddleseg.deploy.config import load_deploy

    root, config, model, openvino = checked_model
    samples, classes, ignore = val_samples(Config(str(config)))
    check = check_deploy(load_deploy(root / "export" / "deploy.yaml"), model, samples, num_classes=classes,
                         ignore_index=ignore, input_shape=[1, 3, 32, 48], warmup=1, repeats=3, e2e_images=2,
                         progress=False)
    names = [r.name for r in check.rows]
    assert names[:2] == ["paddle fp32", "onnxruntime fp32"] and ("openvino fp32" in names) == openvino
    assert check.val_images == 4 and not math.isnan(check.reference_miou)
    for r in check.rows:
        assert set(r.model_ms) == {"1x3x64x128", "1x3x32x48"} and r.images_per_s > 0
        if r.precision == "fp32":  # the same network: a near-tie may flip a pixel
            assert r.labels_equal > 0.999 and abs(r.miou_drop) < 0.1 and r.offered, r
        else:
            assert not r.offered
    assert not check.failures


@pytest.mark.slow
def test_the_tool_exits_2_when_an_offered_precision_fails_and_still_writes_the_json(checked_model, tmp_path):
    root, config, _, _ = checked_model
    hook = textwrap.dedent("""
        import paddleseg.core.deploy_check as dc
        real = dc.check_deploy
        def failing(*args, **kwargs):  # as if the last path were recorded and had lost 9 points
            result = real(*args, **kwargs)
            result.rows[-1].offered, result.rows[-1].problem = True, "mIoU drop 9.00 points > 0.5"
            return result
        dc.check_deploy = failing
    """)
    boot = f"import runpy, sys\nsys.argv = sys.argv[:1] + sys.argv[1:]\n{hook}\n" \
           f"runpy.run_path({str(REPO / 'tools' / 'deploy_check.py')!r}, run_name='__main__')\n"
    done = subprocess.run([sys.executable, "-c", boot, "--model_dir", root / "export", "--config", config,
                           "--model_path", root / "model.pdparams", "--repeats", "1", "--warmup", "0", "--e2e_images",
                           "1", "--input_shape", "1", "3", "32", "48", "--json", tmp_path / "check.json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "fails the accuracy gate (mIoU drop 9.00 points > 0.5" in errors[0]
    data = json.loads((tmp_path / "check.json").read_text())
    assert data["failures"] == [data["rows"][-1]["backend"] + " " + data["rows"][-1]["precision"]]
    assert "labels = dygraph" in done.stdout


@pytest.mark.slow
def test_export_records_the_precisions_that_pass_and_refuses_a_failing_fp32(checked_model, tmp_path):
    root, config, _, openvino = checked_model
    common = ["--config", config, "--model_path", root / "model.pdparams", "--onnx"] + ["--openvino"] * openvino

    def export(save_dir, *extra):
        return subprocess.run([sys.executable, str(REPO / "export.py"), *map(str, common), "--save_dir", save_dir,
                               "--check_precisions", *extra], capture_output=True, text=True, timeout=300, cwd=tmp_path)

    done = export(tmp_path / "export", "--min_labels_equal", "0.5", "--max_miou_drop", "100")
    assert done.returncode == 0, done.stderr[-3000:]
    deploy = yaml.safe_load((tmp_path / "export" / "deploy.yaml").read_text())["Deploy"]
    from paddleseg.deploy.config import load_deploy

    verified = load_deploy(tmp_path / "export" / "deploy.yaml").verified
    if openvino and "openvino bf16" in done.stderr:  # the CPU has BF16
        assert deploy["verified_precisions"]["openvino"]["bf16"]["val_images"] == 4
        assert verified["openvino"]["bf16"].figures["labels_equal"] >= 0.5
    else:
        assert "verified_precisions" not in deploy and verified == {}
    failed = export(tmp_path / "failed", "--min_labels_equal", "1.01")
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert failed.returncode == 2 and len(errors) == 1, failed.stderr[-3000:]
    assert "--check_precisions: paddle fp32 fails the accuracy gate" in errors[0] and "nothing was written" in errors[0]
    assert not (tmp_path / "failed").exists()
