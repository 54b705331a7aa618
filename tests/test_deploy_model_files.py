"""paddleseg.deploy.model_files: a model file that is not what it claims (truncated, another format, a
JSON renamed .pdmodel) or that changed since the export is named before a runtime reads it (Paddle
Inference crashes the process on such files)."""
import json
import re

import pytest
import yaml

from paddleseg.deploy import model_files
from paddleseg.deploy.config import load_deploy
from paddleseg.deploy.errors import DeployError

from test_tools_infer import tiny_onnx_export


def tiny_paddle_export(folder):
    """tiny_onnx_export's folder with a real Paddle program (model.json + model.pdiparams): a 1x1
    convolution and an argmax, as paddle.jit.save writes it, and their digests in deploy.yaml."""
    import paddle

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 1)

        def forward(self, x):
            return paddle.argmax(self.conv(x), axis=1, dtype="int32")

    tiny_onnx_export(folder)
    paddle.seed(0)
    spec = [paddle.static.InputSpec([-1, 3, -1, -1], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(Net(), input_spec=spec, full_graph=True), str(folder / "model"))
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    deploy["Deploy"]["digests"] = {n: model_files.sha256(folder / n) for n in ("model.json", "model.pdiparams",
                                                                               "model.onnx")}
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    return folder


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return tiny_paddle_export(tmp_path_factory.mktemp("export"))


@pytest.fixture
def copy(export, tmp_path):
    for p in export.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    return tmp_path


def without_digests(folder):
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    del deploy["Deploy"]["digests"]
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    return load_deploy(folder / "deploy.yaml")


def test_a_real_export_passes(export):
    deploy = load_deploy(export / "deploy.yaml")
    model_files.check_paddle_model(deploy)
    model_files.check_onnx_model(deploy)


@pytest.mark.parametrize("name, keep, message", [
    ("model.json", 0.5, "model.json: not a PIR program, or truncated (not JSON"),
    ("model.pdiparams", 0.9, "model.pdiparams: not Paddle parameters, or truncated"),
    ("model.pdiparams", 0.0, "model.pdiparams: empty (no parameters)"),
    ("model.onnx", 0.6, "model.onnx: not an ONNX model, or truncated"),
])
def test_truncated_files_are_named(copy, name, keep, message):
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[:int(len(data) * keep)])
    deploy = without_digests(copy)  # the format check alone
    check = model_files.check_onnx_model if name.endswith("onnx") else model_files.check_paddle_model
    with pytest.raises(DeployError, match=re.escape(message)):
        check(deploy)


def test_a_changed_file_is_named_by_its_digest(copy):
    data = bytearray((copy / "model.pdiparams").read_bytes())
    data[-1] ^= 1  # same size and structure, another weight
    (copy / "model.pdiparams").write_bytes(bytes(data))
    with pytest.raises(DeployError, match="model.pdiparams: changed since the export"):
        model_files.check_paddle_model(load_deploy(copy / "deploy.yaml"))


@pytest.mark.parametrize("content, message", [
    (json.dumps({"base_code": {"magic": "pir"}, "program": {}}).encode(), "not a Paddle program (ProgramDesc)"),
    (b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n", "not a Paddle program"),
    (b"", "not a Paddle program (ProgramDesc) (no field 1)"),
])
def test_a_pdmodel_that_is_not_a_program_is_named(copy, content, message):
    (copy / "model.pdmodel").write_bytes(content)
    deploy = yaml.safe_load((copy / "deploy.yaml").read_text())
    deploy["Deploy"].update(model="model.pdmodel", digests=None)
    (copy / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    with pytest.raises(DeployError, match=re.escape(f"model.pdmodel: {message}")):
        model_files.check_paddle_model(load_deploy(copy / "deploy.yaml"))


def test_json_that_is_not_a_pir_program_and_an_unknown_suffix_are_named(copy):
    (copy / "model.json").write_text('{"layers": []}')
    with pytest.raises(DeployError, match="model.json: JSON, but not a PIR program"):
        model_files.check_pir_program(copy / "model.json")
    (copy / "model.bin").write_bytes(b"x")
    deploy = yaml.safe_load((copy / "deploy.yaml").read_text())
    deploy["Deploy"].update(model="model.bin", digests=None)
    (copy / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    with pytest.raises(DeployError, match=r"Deploy.model: model.bin is neither a PIR program \(.json\)"):
        model_files.check_paddle_model(load_deploy(copy / "deploy.yaml"))


def test_protobuf_fields_walks_the_top_level():
    message = bytes([0x08, 0x07, 0x3A, 0x02, 0xAA, 0xBB])  # field 1 = 7 (varint), field 7 = 2 bytes
    assert [(n, w) for n, w, _, _ in model_files.protobuf_fields(message)] == [(1, 0), (7, 2)]
    with pytest.raises(ValueError, match="runs past the end"):
        list(model_files.protobuf_fields(message[:-1]))
