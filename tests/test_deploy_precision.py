"""paddleseg.deploy.precision: the precision a CPU runtime runs is decided explicitly from what was
asked, what the CPU reports and what deploy.yaml records as verified (the decision table); fp16 is
refused with its reason; the accuracy gate; deploy.yaml's verified_precisions checked key by key."""
from pathlib import Path

import pytest

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.precision import (
    AccuracyGate,
    CpuCaps,
    VerifiedPrecision,
    choose_precision,
    cli_precision,
    int8_float_precision,
    parse_verified,
)

WITH_BF16 = CpuCaps("Xeon with AMX", ("WINOGRAD", "FP32", "BF16", "INT8", "BIN"))
WITHOUT_BF16 = CpuCaps("Core i7 (AVX2)", ("WINOGRAD", "FP32", "INT8", "BIN"))
BF16_RECORD = {"bf16": VerifiedPrecision(figures={"miou_drop": 0.04, "labels_equal": 0.996})}
INT8_RECORD = {"int8": VerifiedPrecision(model="model_int8.xml", inference_precision="bf16")}


@pytest.mark.parametrize("cpu, verified, expected", [
    (WITH_BF16, BF16_RECORD, "bf16"),
    (WITH_BF16, {}, "fp32"),                     # the CPU has it, but bf16 was never checked on this model
    (WITH_BF16, INT8_RECORD, "fp32"),            # auto never picks int8
    (WITHOUT_BF16, BF16_RECORD, "fp32"),         # recorded, but this CPU would emulate it
    (WITHOUT_BF16, {}, "fp32"),
])
def test_auto_runs_bf16_only_with_a_bf16_cpu_and_a_verified_record(cpu, verified, expected):
    precision, reason = choose_precision("auto", cpu, verified)
    assert precision == expected
    assert reason.startswith("auto: ")


@pytest.mark.parametrize("cpu", [WITH_BF16, WITHOUT_BF16])
@pytest.mark.parametrize("verified", [{}, BF16_RECORD, INT8_RECORD])
def test_fp32_is_fp32_everywhere(cpu, verified):
    assert choose_precision("fp32", cpu, verified) == ("fp32", "asked for")


@pytest.mark.parametrize("requested, cpu, verified, message", [
    ("bf16", WITHOUT_BF16, BF16_RECORD, "--precision bf16: this CPU (Core i7 (AVX2)) does not report BF16 (its "
                                        "capabilities: WINOGRAD, FP32, INT8, BIN)"),
    ("bf16", WITH_BF16, {}, "--precision bf16: deploy.yaml records no verified bf16 for this export"),
    ("int8", WITH_BF16, BF16_RECORD, "--precision int8: deploy.yaml records no verified int8 model"),
    ("int8", CpuCaps("old", ("FP32",)), INT8_RECORD, "--precision int8: this CPU (old) does not report INT8"),
    ("fp16", WITH_BF16, BF16_RECORD, "--precision fp16: refused: OpenVINO's f16 on the CPU overflows"),
    ("f16", WITH_BF16, BF16_RECORD, "--precision f16: refused: OpenVINO's f16 on the CPU overflows"),
    ("fp8", WITH_BF16, BF16_RECORD, "--precision 'fp8': expected one of auto, fp32, bf16, int8"),
])
def test_precisions_that_cannot_run_are_refused_with_the_reason(requested, cpu, verified, message):
    with pytest.raises(DeployError) as error:
        choose_precision(requested, cpu, verified)
    assert str(error.value).startswith(message), error.value


def test_bf16_and_int8_run_when_the_cpu_has_them_and_they_are_recorded():
    assert choose_precision("bf16", WITH_BF16, BF16_RECORD)[0] == "bf16"
    assert choose_precision("int8", WITHOUT_BF16, INT8_RECORD)[0] == "int8"
    # the accuracy check itself measures bf16 before anything is recorded
    assert choose_precision("bf16", WITH_BF16, {}, require_verified=False)[0] == "bf16"


def test_an_int8_models_float_layers_run_as_verified_or_more_precisely():
    assert int8_float_precision(INT8_RECORD["int8"], WITH_BF16) == "bf16"
    assert int8_float_precision(INT8_RECORD["int8"], WITHOUT_BF16) == "fp32"
    assert int8_float_precision(VerifiedPrecision(model="m.xml", inference_precision="fp32"), WITH_BF16) == "fp32"


@pytest.mark.parametrize("drop, equal, problem", [
    (0.5, 0.99, None),
    (-1.0, 1.0, None),
    (0.51, 0.995, "mIoU drop 0.51 points > 0.5"),
    (0.1, 0.989, "labels equal 98.90% < 99%"),
    (float("nan"), 0.999, "mIoU drop nan points > 0.5"),
])
def test_accuracy_gate(drop, equal, problem):
    assert AccuracyGate(0.5, 0.99).problem(drop, equal) == problem


@pytest.mark.parametrize("backend, precision, use_trt, expected", [
    ("openvino", None, False, "auto"),
    ("openvino", "bf16", False, "bf16"),
    ("onnxruntime", None, False, "fp32"),
    ("paddle", "fp16", True, "fp16"),  # TensorRT's
])
def test_cli_precision_defaults_per_backend(backend, precision, use_trt, expected):
    assert cli_precision(backend, precision, use_trt) == expected


@pytest.mark.parametrize("backend, precision, use_trt, message", [
    ("openvino", "fp16", False, "--precision fp16 with --backend openvino: refused: OpenVINO's f16"),
    ("openvino", "fp32", True, "--use_trt applies to the paddle and onnxruntime backends, not openvino"),
    ("onnxruntime", "bf16", False, "--precision bf16 applies to --backend openvino only"),
    ("paddle", "auto", False, "--precision auto applies to --backend openvino only"),
])
def test_cli_precision_refusals(backend, precision, use_trt, message):
    with pytest.raises(DeployError, match=f"^{message}"):
        cli_precision(backend, precision, use_trt)


def test_verified_precisions_are_read_with_their_figures():
    text = {"openvino": {"bf16": {"miou": 0.81, "miou_drop": 0.02, "labels_equal": 0.999, "cpu": "AMD EPYC",
                                  "val_images": 20, "checked": "2026-12-03"},
                         "int8": {"model": "model_int8.xml", "inference_precision": "bf16", "miou_drop": 0.08,
                                  "speedup": 1.3, "calibration_images": 60}}}
    verified = parse_verified(Path("deploy.yaml"), text)
    assert verified["openvino"]["int8"].model == "model_int8.xml"
    assert verified["openvino"]["int8"].inference_precision == "bf16"
    assert verified["openvino"]["bf16"].figures["labels_equal"] == 0.999
    assert verified["openvino"]["bf16"].figures == text["openvino"]["bf16"]
    assert verified["openvino"]["int8"].figures == {"miou_drop": 0.08, "speedup": 1.3, "calibration_images": 60}
    assert parse_verified(Path("deploy.yaml"), None) == {}


@pytest.mark.parametrize("value, message", [
    ([1, 2], "Deploy.verified_precisions: expected backend: {precision: figures}"),
    ({"openvino": {"fp16": {}}}, "Deploy.verified_precisions.openvino.fp16: unknown precision"),
    ({"openvino": {"bf16": {"miou_drop": "small"}}}, "Deploy.verified_precisions.openvino.bf16.miou_drop: expected a "
                                                     "finite number, got 'small'"),
    ({"openvino": {"bf16": {"miou_drop": float("nan")}}}, "bf16.miou_drop: expected a finite number"),
    ({"openvino": {"bf16": {"mIoU": 0.8}}}, "Deploy.verified_precisions.openvino.bf16.mIoU: unknown key"),
    ({"openvino": {"int8": {"miou_drop": 0.1}}}, "Deploy.verified_precisions.openvino.int8.model: an int8 record names "
                                                 "its model file"),
    ({"openvino": {"int8": {"model": "m.xml", "inference_precision": "f16"}}}, "int8.inference_precision: expected one "
                                                                               "of fp32, bf16, got 'f16'"),
    ({"openvino": {"bf16": {"val_images": -1}}}, "bf16.val_images: expected a count, got -1"),
])
def test_bad_verified_precisions_name_the_key(value, message):
    with pytest.raises(DeployError) as error:
        parse_verified(Path("out/deploy.yaml"), value)
    assert str(error.value).startswith("out/deploy.yaml: ") and message in str(error.value), error.value
