"""paddleseg.deploy.backends.openvino and paddleseg.deploy.openvino_cache: OpenVINO runs the export's
model.onnx or IR at the precision decided explicitly (read back from the compiled model), equal to ONNX
Runtime in fp32; bf16 keeps the labels of a trained model; compiled models kept in --ov_cache_dir are
reused, and an entry changed since it was written is refused. (The command line's refusals:
tests/faults/test_openvino_faults.py; the decision table: tests/test_deploy_precision.py.)"""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("openvino", reason="openvino is not installed (pip install '.[openvino]')")

from paddleseg.deploy.backends import BackendOptions, create_backend  # noqa: E402
from paddleseg.deploy.backends.openvino import cpu_caps, import_openvino  # noqa: E402
from paddleseg.deploy.config import load_deploy  # noqa: E402
from paddleseg.deploy.errors import DeployError  # noqa: E402
from paddleseg.deploy.openvino_cache import MANIFEST  # noqa: E402
from paddleseg.deploy.openvino_settings import OpenVINOSettings  # noqa: E402

# fp32 against ONNX Runtime: both sum in float32 in their own orders (measured ~2e-7 on these models);
# a wrong precision (bf16 keeps 8 bits of mantissa) or a wrong graph is off by 1e-3 and more
PARITY_RTOL = 1e-4
CPU_HAS_BF16 = cpu_caps(import_openvino().Core()).bf16


def tiny_logits_export(folder: Path, bf16_verified: bool = False) -> Path:
    """An export folder whose model.onnx is a small network giving logits (conv, PReLU, conv: 4 classes,
    output_op none), with random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in
               (("w1", (8, 3, 3, 3)), ("slope", (8, 1, 1)), ("w2", (4, 8, 1, 1)), ("b2", (4,)))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1]),
         helper.make_node("PRelu", ["h", "slope"], ["a"]),
         helper.make_node("Conv", ["a", "w2", "b2"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 4, None, None])], initializer=weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
              str(folder / "model.onnx"))
    deploy = {"model": "model.json", "params": "model.pdiparams", "onnx": "model.onnx", "output_op": "none",
              "num_classes": 4, "transforms": [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}],
              "palette": [[128, 64, 128], [244, 35, 232], [70, 70, 70], [0, 0, 142]]}
    if bf16_verified:
        deploy["verified_precisions"] = {"openvino": {"bf16": {"miou_drop": 0.0, "labels_equal": 1.0}}}
    (folder / "deploy.yaml").write_text(yaml.safe_dump({"Deploy": deploy}))
    for unused in ("model.json", "model.pdiparams"):  # an export always has the Paddle model too
        (folder / unused).write_bytes(b"")
    return folder


def openvino(folder: Path, threads: int = 1, **settings):
    return create_backend("openvino", load_deploy(folder / "deploy.yaml"),
                          BackendOptions(threads=threads, openvino=OpenVINOSettings(**settings)))


def onnxruntime(folder: Path):
    return create_backend("onnxruntime", load_deploy(folder / "deploy.yaml"), BackendOptions(threads=1))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture
def x():
    return np.random.default_rng(1).uniform(-1, 1, (1, 3, 21, 34)).astype(np.float32)


def test_fp32_equals_onnx_runtime_and_is_read_back_as_f32(tmp_path, x):
    folder = tiny_logits_export(tmp_path / "export")
    backend = openvino(folder, precision="fp32")
    out = backend.run(x)
    assert out.shape == (1, 4, 21, 34)
    assert relative_error(out, onnxruntime(folder).run(x)) < PARITY_RTOL
    compiled = backend.compiled
    assert compiled.config["INFERENCE_PRECISION_HINT"] == "f32" and compiled.compiles == 1
    assert backend.described == "openvino fp32 on cpu"


def test_each_input_shape_is_compiled_once_and_outputs_are_copies(tmp_path, x):
    backend = openvino(tiny_logits_export(tmp_path / "export"), precision="fp32")
    first = backend.run(x)
    kept = first.copy()
    other = backend.run(np.zeros((2, 3, 8, 8), np.float32))
    again = backend.run(x)
    assert backend.compiled.compiles == 2 and other.shape == (2, 4, 8, 8)
    np.testing.assert_array_equal(first, kept)  # a later run did not overwrite an earlier result
    np.testing.assert_array_equal(again, kept)


def test_auto_is_fp32_without_a_record_even_on_a_bf16_cpu(tmp_path, x):
    backend = openvino(tiny_logits_export(tmp_path / "export"))
    assert backend.precision == "fp32" and backend.inference_precision == "f32"


@pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU does not report BF16 to OpenVINO")
def test_auto_runs_bf16_where_recorded_and_the_compiled_model_says_so(tmp_path, x, caplog):
    folder = tiny_logits_export(tmp_path / "export", bf16_verified=True)
    with caplog.at_level(logging.INFO, logger="paddleseg.deploy.backends.openvino"):
        backend = openvino(folder)
        out = backend.run(x)
    assert backend.precision == "bf16" and "compiled for 1x3x21x34" in caplog.text and "(bf16," in caplog.text
    error = relative_error(out, onnxruntime(folder).run(x))
    assert PARITY_RTOL < error < 0.05  # bf16 really ran (8-bit mantissa), and it is still the same model


def test_a_changed_model_file_is_refused_before_openvino_reads_it(tmp_path):
    folder = tiny_logits_export(tmp_path / "export")
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["digests"] = {"model.onnx": "0" * 64}
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    with pytest.raises(DeployError, match="model.onnx: changed since the export"):
        openvino(folder, precision="fp32")


def test_an_export_without_onnx_or_ir_is_a_deploy_error(tmp_path):
    folder = tiny_logits_export(tmp_path / "export")
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["onnx"] = None
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    with pytest.raises(DeployError, match="exported without --onnx or --openvino"):
        openvino(folder, precision="fp32")


def test_a_truncated_ir_is_refused(tmp_path):
    import openvino as ov

    folder = tiny_logits_export(tmp_path / "export")
    ov.save_model(ov.convert_model(str(folder / "model.onnx")), str(folder / "model.xml"), compress_to_fp16=False)
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["openvino"] = "model.xml"
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    assert openvino(folder, precision="fp32").model_file.name == "model.xml"  # the IR is preferred
    text = (folder / "model.xml").read_bytes()
    (folder / "model.xml").write_bytes(text[:len(text) // 2])
    with pytest.raises(DeployError, match="model.xml: not an OpenVINO IR"):
        openvino(folder, precision="fp32")
    (folder / "model.xml").write_bytes(text)
    (folder / "model.bin").unlink()
    with pytest.raises(DeployError, match="incomplete export, missing model.bin"):
        openvino(folder, precision="fp32")


# ---------------------------------------------------------------------------------------------
# --ov_cache_dir
# ---------------------------------------------------------------------------------------------
def cached_entry(tmp_path, x):
    folder = tiny_logits_export(tmp_path / "export")
    cache = tmp_path / "cache"
    out = openvino(folder, precision="fp32", cache_dir=cache).run(x)
    (entry,) = cache.iterdir()
    return folder, cache, entry, out


def test_the_cache_is_reused_and_its_manifest_lists_every_blob(tmp_path, x, caplog):
    folder, cache, entry, out = cached_entry(tmp_path, x)
    manifest = json.loads((entry / MANIFEST).read_text())
    blobs = sorted(p.name for p in entry.glob("*.blob"))
    assert len(blobs) == 1 and sorted(manifest["files"]) == blobs and manifest["entry"] == str(entry)
    assert manifest["key"]["precision"] == "fp32" and manifest["key"]["threads"] == 1
    with caplog.at_level(logging.INFO, logger="paddleseg.deploy.openvino_cache"):
        again = openvino(folder, precision="fp32", cache_dir=cache).run(x)
    assert "loaded from" in caplog.text
    np.testing.assert_array_equal(again, out)
    assert sorted(p.name for p in entry.glob("*.blob")) == blobs
    openvino(folder, precision="fp32", cache_dir=cache, threads=2).run(x)  # other settings: another entry
    assert len(list(cache.iterdir())) == 2


def test_a_changed_blob_is_refused_and_kept(tmp_path, x):
    folder, cache, entry, _ = cached_entry(tmp_path, x)
    (blob,) = entry.glob("*.blob")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DeployError, match=f"cache entry {entry} has {blob.name} changed since it was written: it is "
                                          f"not loaded; delete that folder"):
        openvino(folder, precision="fp32", cache_dir=cache)
    assert blob.read_bytes() == bytes(data)  # the evidence stays


@pytest.mark.parametrize("damage, message", [
    (lambda entry: next(entry.glob("*.blob")).unlink(), "lost .*\\.blob since it was written"),
    (lambda entry: (entry / "run.sh").write_text("echo"), "holds files OpenVINO does not write \\(run.sh\\)"),
    (lambda entry: (entry / MANIFEST).write_text("{"), "has an unreadable manifest.json"),
])
def test_a_damaged_or_foreign_entry_is_refused(tmp_path, x, damage, message):
    folder, cache, entry, _ = cached_entry(tmp_path, x)
    damage(entry)
    with pytest.raises(DeployError, match=message):
        openvino(folder, precision="fp32", cache_dir=cache)


def test_an_interrupted_compile_is_compiled_again(tmp_path, x, caplog):
    folder, cache, entry, out = cached_entry(tmp_path, x)
    (entry / MANIFEST).unlink()  # a run killed between OpenVINO's blob and the manifest
    (entry / "123.blob").write_bytes(b"half")
    with caplog.at_level(logging.WARNING):
        again = openvino(folder, precision="fp32", cache_dir=cache).run(x)
    assert "is incomplete (a compile was interrupted): compiling again" in caplog.text
    assert not (entry / "123.blob").exists() and (entry / MANIFEST).is_file()
    np.testing.assert_array_equal(again, out)


def test_an_unrecorded_blob_is_deleted_not_loaded(tmp_path, x, caplog):
    folder, cache, entry, _ = cached_entry(tmp_path, x)
    (entry / "999.blob").write_bytes(b"not recorded")
    with caplog.at_level(logging.WARNING):
        openvino(folder, precision="fp32", cache_dir=cache)
    assert "999.blob is not in its manifest (an interrupted compile): deleted" in caplog.text
    assert not (entry / "999.blob").exists()


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "cache").write_text("")
    with pytest.raises(DeployError, match="--ov_cache_dir .*cache: cannot create it"):
        openvino(tiny_logits_export(tmp_path / "export"), precision="fp32", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------
# ESPNetV2 exports (export.py --openvino; the released quick-start model)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def espnet_logits_export(tmp_path_factory):
    import paddle

    from paddleseg.core.export import export_model
    from paddleseg.models import ESPNetV2

    paddle.seed(3)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    folder = tmp_path_factory.mktemp("espnet") / "export"
    export_model(model, folder, transforms=[{"type": "Normalize"}], num_classes=19, output_op="none", openvino=True)
    return folder


@pytest.mark.slow
def test_export_writes_and_records_an_ir_equal_to_onnx_runtime(espnet_logits_export):
    folder = espnet_logits_export
    deploy = load_deploy(folder / "deploy.yaml")
    assert deploy.openvino_file == folder / "model.xml" and deploy.onnx_file == folder / "model.onnx"
    assert {"model.xml", "model.bin", "model.onnx"} <= set(deploy.digests)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 67, 131)).astype(np.float32)
    ir = create_backend("openvino", deploy, BackendOptions(threads=2, openvino=OpenVINOSettings("fp32")))
    assert ir.model_file.name == "model.xml"
    assert relative_error(ir.run(x), onnxruntime(folder).run(x)) < PARITY_RTOL


@pytest.mark.slow
def test_a_failed_openvino_conversion_leaves_the_previous_export(monkeypatch, espnet_logits_export):
    import hashlib

    import paddle

    import paddleseg.core.export as export
    from paddleseg.errors import UserError
    from paddleseg.models import ESPNetV2

    def contents(folder: Path):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    def fail(onnx_file, xml_file):
        raise UserError("OpenVINO cannot convert model.onnx: ValueError: injected")

    before = contents(espnet_logits_export)
    monkeypatch.setattr(export, "export_openvino", fail)
    paddle.seed(4)
    with pytest.raises(UserError, match="injected; the previous export in .* is unchanged"):
        export.export_model(ESPNetV2(19, scale=0.5, drop_prob=0.0), espnet_logits_export,
                            transforms=[{"type": "Normalize"}], num_classes=19, output_op="none", openvino=True)
    assert contents(espnet_logits_export) == before
    assert sorted(p.name for p in espnet_logits_export.parent.iterdir()) == ["export"]  # no work folder left


@pytest.mark.slow
@pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU does not report BF16 to OpenVINO")
def test_bf16_keeps_99_percent_of_a_trained_models_labels(tmp_path):
    """The released quick-start model (scale 1.0, trained on the synthetic scenes) on 4 new scenes."""
    import paddle

    from paddleseg.checkpoint import load_entire_model
    from paddleseg.core.export import export_model
    from paddleseg.datasets.synthetic import write_synthetic_cityscapes
    from paddleseg.deploy.images import read_rgb
    from paddleseg.deploy.preprocess import make_preprocess
    from paddleseg.models import ESPNetV2

    from conftest import REPO

    weights = REPO / "output" / "quickstart" / "best_model" / "model.pdparams"
    if not weights.is_file():
        pytest.skip(f"{weights} not found")
    paddle.seed(0)
    model = ESPNetV2(19, scale=1.0, drop_prob=0.0)
    load_entire_model(model, str(weights))
    export_model(model, tmp_path / "export", transforms=[{"type": "Normalize"}], num_classes=19, onnx=True)
    data = write_synthetic_cityscapes(tmp_path / "data", train=0, val=4, width=512, height=256, seed=11, workers=1,
                                      progress=False)
    deploy = load_deploy(tmp_path / "export" / "deploy.yaml")
    fp32 = create_backend("openvino", deploy, BackendOptions(threads=2, openvino=OpenVINOSettings("fp32")))
    bf16 = create_backend("openvino", deploy, BackendOptions(threads=2, openvino=OpenVINOSettings(
        "bf16", require_verified=False)))
    preprocess = make_preprocess(deploy.transforms)
    equal = [np.mean(fp32.run(x) == bf16.run(x)) for x in
             (preprocess(read_rgb(p)) for p in sorted(Path(data).glob("leftImg8bit/val/*/*.png")))]
    assert len(equal) == 4 and np.mean(equal) >= 0.99, equal
