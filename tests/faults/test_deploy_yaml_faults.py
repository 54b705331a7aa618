"""An export folder that is not what its deploy.yaml says, through tools/infer.py: each problem is exit 2
with one ``error:`` line naming the file and the key or the model file, before anything is written and
before a runtime reads a file (Paddle Inference crashes the process on a program that is another
file); never a traceback, a crash or a KeyError after inference. Each run's address space is capped
(a normal run needs 1.6 GB with Paddle, 0.8 GB with ONNX Runtime) and limited to 60 s.

An upstream-style deploy.yaml without output_op runs (labels from the argmax), as upstream's does."""
import resource
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO
from fault_helpers import assert_user_error, snapshot
from test_deploy_model_files import tiny_paddle_export

CAP = {"paddle": 2_600_000_000, "onnxruntime": 1_800_000_000}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return tiny_paddle_export(tmp_path_factory.mktemp("export") / "export")


@pytest.fixture
def case(export, tmp_path):
    """A copy of the export and an image to predict."""
    shutil.copytree(export, tmp_path / "export")
    cv2.imwrite(str(tmp_path / "a.png"), np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    return tmp_path / "export"


def edit(folder, **changes):
    deploy = yaml.safe_load((folder / "deploy.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            deploy["Deploy"].pop(key, None)
        else:
            deploy["Deploy"][key] = value
    (folder / "deploy.yaml").write_text(yaml.safe_dump(deploy))


def infer(folder, backend):
    out = folder.parent / "out"
    return subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), "--model_dir", str(folder), "--image_path",
                           str(folder.parent / "a.png"), "--save_dir", str(out), "--backend", backend,
                           "--cpu_threads", "1"], cwd=folder.parent, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (CAP[backend], CAP[backend])))


def normalize(**values):
    return [{"type": "Normalize", **values}]


VALUES = {
    "transforms_not_mappings": ({"transforms": [5]}, "Deploy.transforms[0]: expected a mapping"),
    "transforms_not_a_list": ({"transforms": 7}, "Deploy.transforms: expected a list of transforms, got 7"),
    "mean_not_numbers": ({"transforms": normalize(mean="abc")}, "Deploy.transforms[0].mean: expected 3 finite numbers"),
    "label_ids_1000": ({"label_ids": list(range(1000))}, "Deploy.label_ids: 1000 entries, at most 256 allowed"),
    "palette_2_wide": ({"palette": [[1, 2]] * 3}, "Deploy.palette[0]: expected [r, g, b], got [1, 2]"),
    "palette_300": ({"palette": [[1, 2, 3]] * 300}, "Deploy.palette: expected at most 256 [r, g, b] colours, got 300"),
    "resize_0x0": ({"transforms": [{"type": "Resize", "target_size": [0, 0]}]},
                   "Deploy.transforms[0].target_size: expected an integer from 1 to 16384, got 0"),
    "resize_60000": ({"transforms": [{"type": "Resize", "target_size": [60000, 60000]}]},
                     "Deploy.transforms[0].target_size: expected an integer from 1 to 16384, got 60000"),
    "model_outside": ({"model": "../../etc/passwd"}, "Deploy.model: '../../etc/passwd' is outside the export folder"),
    "output_op_unknown": ({"output_op": "max"}, "Deploy.output_op: expected one of argmax, softmax, none"),
}


@pytest.mark.parametrize("name", VALUES)
def test_a_bad_deploy_yaml_value_is_one_error_line_naming_file_and_key(case, name):
    changes, message = VALUES[name]
    edit(case, **changes)
    before = snapshot(case.parent)
    done = infer(case, "paddle" if name == "model_outside" else "onnxruntime")
    assert_user_error(done, f"{case / 'deploy.yaml'}: {message}")
    assert snapshot(case.parent) == before


FILES = {  # file, the share of it kept, backend, the error with digests in deploy.yaml, and without
    "model.json": (0.5, "paddle", "model.json: not a PIR program, or truncated"),
    "model.pdiparams": (0.7, "paddle", "model.pdiparams: not Paddle parameters, or truncated"),
    "model.onnx": (0.5, "onnxruntime", "model.onnx: not an ONNX model, or truncated"),
}


@pytest.mark.parametrize("digests", [True, False], ids=["digests", "no_digests"])
@pytest.mark.parametrize("name", FILES)
def test_a_truncated_model_file_is_named_before_the_runtime_reads_it(case, name, digests):
    keep, backend, message = FILES[name]
    data = (case / name).read_bytes()
    (case / name).write_bytes(data[:int(len(data) * keep)])
    if not digests:
        edit(case, digests=None)
    done = infer(case, backend)
    assert_user_error(done, f"{case / name}: changed since the export" if digests else message)
    assert not (case.parent / "out").exists()


@pytest.mark.parametrize("content, message", [
    ("json", "model.pdmodel: not a Paddle program (ProgramDesc), or truncated"),
    ("passwd", "model.pdmodel: not a Paddle program (ProgramDesc)"),
])
def test_a_pdmodel_that_is_another_file_is_refused_before_paddle_reads_it(case, content, message):
    """Paddle Inference ends the process with a segmentation fault on either file."""
    data = (case / "model.json").read_bytes() if content == "json" else b"root:x:0:0:root:/root:/bin/bash\n" * 3
    (case / "model.pdmodel").write_bytes(data)
    edit(case, model="model.pdmodel", digests=None)
    done = infer(case, "paddle")
    assert_user_error(done, message)
    assert not (case.parent / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["paddle", "onnxruntime"])
def test_an_upstream_deploy_yaml_without_output_op_runs(case, backend):
    edit(case, output_op=None, digests=None, input_shape=None, palette=None, input_name=None)
    done = infer(case, backend)
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(case.parent / "out" / "pseudo_color_prediction" / "a.png") as im:
        assert im.size == (30, 20) and np.asarray(im).max() < 4
