"""paddleseg.core.quantize (tools/quantize.py): an int8 model is written only when it is both accurate and
faster than the best fp32/bf16 path, else nothing is written and the refusal gives both numbers; the
written model is recorded in deploy.yaml with its digests and runs with --precision int8."""
import hashlib
import shutil

import pytest

from paddleseg.core.quantize import Candidate, QuantizeResult, refusal
from paddleseg.deploy.precision import AccuracyGate

CPU = {"model": "Test CPU", "flags": {}}


def result(*candidates, others=None):
    others = others if others is not None else {"openvino bf16": (20.0, 22.0)}
    return QuantizeResult(CPU, 0.80, list(candidates), others, shape="1x3x64x128")


def test_nothing_accurate_is_refused_with_the_closest_drop():
    bad = Candidate("default", "", miou_drop=3.21, labels_equal=0.91, problem="mIoU drop 3.21 points > 0.5")
    worse = Candidate("transformer", "", miou_drop=5.0, labels_equal=0.9, problem="mIoU drop 5.00 points > 0.5")
    assert refusal(result(bad, worse), None, AccuracyGate(), 1.05) == (
        "no int8 attempt keeps the accuracy (the best, default, drops the mIoU by 3.21 points with 91.00% of the "
        "labels equal; at most 0.5 points and at least 99% allowed)")


def test_accurate_but_not_faster_is_refused_with_both_times():
    good = Candidate("transformer", "", miou_drop=0.08, labels_equal=0.996, ms=(19.5, 21.0), speedup=1.03)
    assert refusal(result(good), good, AccuracyGate(), 1.05) == (
        "the fastest accurate int8 model (transformer: mIoU drop 0.08 points, 99.60% of the labels equal) takes "
        "19.5 ms at 1x3x64x128 against 20.0 ms for openvino bf16: 1.03x as fast (median of the paired rounds), "
        "1.05x needed")


def test_accurate_and_faster_is_accepted():
    good = Candidate("default", "", miou_drop=0.1, labels_equal=0.995, ms=(15.0, 16.0), speedup=1.3)
    assert refusal(result(good), good, AccuracyGate(), 1.05) is None


@pytest.fixture(scope="module")
def export_and_data(tiny_cityscapes, tmp_path_factory):
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install '.[openvino]')")
    import paddle

    from paddleseg.core.deploy_check import val_samples
    from paddleseg.core.export import export_model
    from paddleseg.cvlibs import Config
    from paddleseg.models import ESPNetV2

    from conftest import write_train_config

    root = tmp_path_factory.mktemp("quantize")
    paddle.seed(6)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    export_model(model, root / "export", transforms=[{"type": "Normalize"}], num_classes=19, openvino=True)
    cfg = Config(str(write_train_config(root / "config.yml", tiny_cityscapes)))
    samples, classes, ignore = val_samples(cfg)
    train = [image for image, _ in cfg.train_dataset.file_list]
    return root / "export", train, samples, classes, ignore


def contents(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def check_quantization(source, train, samples, classes, ignore, tmp_path):
    """The checks of the test below, run in a child interpreter: NNCF and OpenVINO's quantization stay out
    of the test process (beside Paddle in one process, a later test crashed in native code)."""
    from paddleseg.core.quantize import ATTEMPTS, NoInt8Model, quantize_export
    from paddleseg.deploy.backends import BackendOptions, create_backend
    from paddleseg.deploy.config import load_deploy
    from paddleseg.deploy.openvino_settings import OpenVINOSettings

    folder = tmp_path / "export"
    shutil.copytree(source, folder)
    before = contents(folder)
    options = dict(calibration_images=train[:4], samples=samples, num_classes=classes, ignore_index=ignore,
                   gate=AccuracyGate(100.0, 0.0), warmup=1, repeats=3, attempts=ATTEMPTS[:1], accuracy_control=False,
                   progress=False)
    refused = r"^no int8 model written: the fastest accurate int8 model \(default: .* against .* ms for .*x as fast "
    with pytest.raises(NoInt8Model, match=refused + r"\(median of the paired rounds\), 1000x needed$"):
        quantize_export(folder, min_speedup=1000.0, **options)
    assert contents(folder) == before  # nothing written
    done = quantize_export(folder, min_speedup=1e-6, **options)
    assert done.written is not None and done.written.name == "default"
    deploy = load_deploy(folder / "deploy.yaml")
    record = deploy.verified["openvino"]["int8"]
    assert record.model == "model_int8.xml" and record.figures["calibration_images"] == 4
    assert record.figures["val_images"] == 4 and "speedup" in record.figures
    assert {"model_int8.xml", "model_int8.bin"} <= set(deploy.digests)
    assert {k: v for k, v in contents(folder).items() if k in before and k != "deploy.yaml"} == {
        k: v for k, v in before.items() if k != "deploy.yaml"}  # the rest of the export as it was
    backend = create_backend("openvino", deploy, BackendOptions(threads=1, openvino=OpenVINOSettings("int8")))
    assert backend.model_file.name == "model_int8.xml" and backend.described.startswith("openvino int8")
    return True


@pytest.mark.slow
def test_an_int8_model_is_written_only_when_fast_enough(export_and_data, tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        assert child.submit(check_quantization, *export_and_data, tmp_path).result(timeout=900)
