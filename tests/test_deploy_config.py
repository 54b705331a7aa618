"""paddleseg.deploy.config: every deploy.yaml value is checked, each problem a DeployError naming the
file, the key and the value; model files must be regular files inside the export folder; upstream's
deploy.yaml (model, params, transforms only) still reads, with defaults."""
import os

import pytest
import yaml

from paddleseg.deploy.config import Normalize, Resize, load_deploy, parse_deploy
from paddleseg.deploy.errors import DeployError

BASE = {"model": "model.json", "params": "model.pdiparams", "onnx": "model.onnx", "output_op": "argmax",
        "transforms": [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}]}


@pytest.fixture
def folder(tmp_path):
    for name in ("model.json", "model.pdiparams", "model.onnx"):
        (tmp_path / name).write_bytes(b"stand-in")  # only their place and kind are checked here
    return tmp_path


def write(folder, deploy):
    (folder / "deploy.yaml").write_text(yaml.safe_dump({"Deploy": deploy}))
    return folder / "deploy.yaml"


def test_an_export_of_this_project_reads_whole(folder):
    resize = {"type": "Resize", "target_size": [128, 64], "interp": "NEAREST", "keep_ratio": False}
    deploy = load_deploy(write(folder, {**BASE, "input_shape": [-1, 3, 64, 128], "num_classes": 19,
                                        "palette": [[1, 2, 3]], "label_ids": [7, 8], "onnx_opset": 13,
                                        "output_dtype": "int32", "digests": {"model.json": "0" * 64},
                                        "transforms": [resize] + BASE["transforms"]}))
    assert deploy.model_file == folder / "model.json" and deploy.onnx_file == folder / "model.onnx"
    assert deploy.input_shape == (-1, 3, 64, 128) and deploy.output_op == "argmax" and deploy.label_ids == (7, 8)
    assert deploy.transforms == (Resize(128, 64, "NEAREST"), Normalize((0.5,) * 3, (0.5,) * 3))
    assert deploy.resize_hw() == (64, 128) and deploy.palette == ((1, 2, 3),)


def test_upstreams_deploy_yaml_reads_with_defaults(folder, caplog):
    deploy = load_deploy(write(folder, {"model": "model.json", "params": "model.pdiparams",
                                        "transforms": [{"type": "Normalize"}], "future_key": 1}))
    assert deploy.output_op is None and deploy.onnx_file is None and deploy.input_name == "x"
    assert deploy.input_shape == (-1, 3, -1, -1) and deploy.transforms == (Normalize(),)
    assert "Deploy.future_key not used here" in caplog.text


BAD = [
    ({"transforms": [5]}, "Deploy.transforms[0]: expected a mapping such as {type: Normalize}, got 5"),
    ({"transforms": 7}, "Deploy.transforms: expected a list of transforms, got 7"),
    ({"transforms": [{"type": "Normalize", "mean": "abc"}]},
     "Deploy.transforms[0].mean: expected 3 finite numbers, got 'abc'"),
    ({"transforms": [{"type": "Normalize", "std": [1, 0, 1]}]}, "Deploy.transforms[0].std: a standard deviation of 0"),
    ({"transforms": [{"type": "Normalize", "means": [0, 0, 0]}]},
     "Deploy.transforms[0].means: unknown key (did you mean 'mean'?)"),
    ({"transforms": [{"type": "Crop"}]},
     "Deploy.transforms[0].type: transform 'Crop' is not supported here (Normalize, Resize)"),
    ({"transforms": [{"type": "Resize", "target_size": [0, 0]}]},
     "Deploy.transforms[0].target_size: expected an integer from 1 to 16384, got 0"),
    ({"transforms": [{"type": "Resize", "target_size": [60000, 60000]}]},
     "Deploy.transforms[0].target_size: expected an integer from 1 to 16384, got 60000"),
    ({"transforms": [{"type": "Resize", "target_size": 512}]},
     "Deploy.transforms[0].target_size: expected [width, height]"),
    ({"transforms": [{"type": "Resize", "target_size": [8, 8], "keep_ratio": True}]}, "keep_ratio is not supported"),
    ({"transforms": [{"type": "Resize", "target_size": [8, 8], "interp": "RANDOM"}]},
     "Deploy.transforms[0].interp: expected one of NEAREST, LINEAR, CUBIC, AREA, LANCZOS4, got 'RANDOM'"),
    ({"label_ids": list(range(1000))}, "Deploy.label_ids: 1000 entries, at most 256 allowed"),
    ({"label_ids": [300]}, "Deploy.label_ids[0]: expected an integer from 0 to 255, got 300"),
    ({"palette": [[1, 2]]}, "Deploy.palette[0]: expected [r, g, b], got [1, 2]"),
    ({"palette": [[1, 2, 3]] * 300}, "Deploy.palette: expected at most 256 [r, g, b] colours, got 300 colours"),
    ({"palette": [[1, 2, 256]]}, "Deploy.palette[0][2]: expected an integer from 0 to 255, got 256"),
    ({"palette": "red"}, "Deploy.palette: expected at most 256 [r, g, b] colours, got 'red'"),
    ({"output_op": "max"}, "Deploy.output_op: expected one of argmax, softmax, none, got 'max'"),
    ({"input_shape": [1, 1, 8, 8]}, "Deploy.input_shape: expected N 3 H W (positive, or -1 for any), got [1, 1, 8, 8]"),
    ({"input_shape": "any"}, "Deploy.input_shape: expected a list of integers, got 'any'"),
    ({"num_classes": 0}, "Deploy.num_classes: expected an integer from 1 to 256, got 0"),
    ({"input_name": 3}, "Deploy.input_name: expected the model input's name, got 3"),
    ({"digests": {"model.json": "abc"}}, "Deploy.digests: expected file name: SHA-256 (64 hexadecimal digits) pairs"),
    ({"model": "../../etc/passwd"}, "Deploy.model: '../../etc/passwd' is outside the export folder"),
    ({"model": "/etc/passwd"}, "Deploy.model: '/etc/passwd' is outside the export folder"),
    ({"model": 5}, "Deploy.model: expected a file name in"),
    ({"params": "."}, "Deploy.params: . is not a regular file"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_bad_values_are_deploy_errors_naming_file_key_and_value(folder, change, message):
    path = write(folder, {**BASE, **change})
    with pytest.raises(DeployError) as error:
        load_deploy(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)


def test_a_model_file_linked_from_outside_the_folder_is_refused(folder):
    (folder / "model.json").unlink()
    os.symlink("/etc/passwd", folder / "model.json")
    with pytest.raises(DeployError, match="Deploy.model: 'model.json' is outside the export folder"):
        load_deploy(write(folder, BASE))


def test_missing_file_section_and_model_are_named(folder):
    with pytest.raises(DeployError, match="deploy.yaml: not found"):
        load_deploy(folder / "deploy.yaml")
    (folder / "deploy.yaml").write_text("- a list\n")
    with pytest.raises(DeployError, match="no 'Deploy' section"):
        load_deploy(folder / "deploy.yaml")
    (folder / "model.onnx").unlink()
    with pytest.raises(DeployError, match=f"{folder}: incomplete export, missing model.onnx"):
        load_deploy(write(folder, BASE))
    (folder / "deploy.yaml").write_text("Deploy: [")
    with pytest.raises(DeployError, match=r"not an export's deploy.yaml"):
        load_deploy(folder / "deploy.yaml")
    with pytest.raises(DeployError, match="no 'Deploy' section"):
        parse_deploy(folder / "deploy.yaml", None)
