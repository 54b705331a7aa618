"""paddleseg.utils.quiet: Paddle's four known-harmless notices are filtered, every other warning stays."""
import importlib.util
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import paddle
import pytest

from paddleseg.checkpoint import load_entire_model
from paddleseg.utils import quiet

from conftest import REPO

NOTICES = ("No ccache found", "we now always track global mean and variance", "Skip loading for",
           "interface for pir graph mode")


def test_each_filtered_message_is_still_what_paddle_emits():
    """Fails loudly when a Paddle upgrade rewords a notice or moves it to another module (the filter
    would then silently stop matching, or match nothing)."""
    for message, module in quiet.HARMLESS_WARNINGS:
        source = importlib.util.find_spec(module).origin
        text = open(source, encoding="utf-8").read()
        assert re.search(message, text), f"{module} ({source}) no longer says {message!r}"
        assert "warnings.warn" in text


def test_a_filter_matches_its_message_from_its_module_only():
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # only our filters; anything they let through gets the default action
        quiet.install()
        quiet.install()  # idempotent
        assert len(warnings.filters) == len(quiet.HARMLESS_WARNINGS)
        place = "Tensor do not have 'place' interface for pir graph mode, try not to use it. None will be returned."
        warnings.warn_explicit(place, UserWarning, "math_op_patch.py", 241, module="paddle.pir.math_op_patch")
        warnings.warn_explicit(place, UserWarning, "other.py", 1, module="paddle.pir.math_op_patch_other")
        warnings.warn_explicit(place, UserWarning, "mine.py", 1, module="mine")
        warnings.warn_explicit("Skip loading for x.", DeprecationWarning, "layers.py", 1, module="paddle.nn.layer.layers")
    shown = [(str(w.message)[:20], w.filename) for w in caught]
    assert shown == [(place[:20], "other.py"), (place[:20], "mine.py"), ("Skip loading for x.", "layers.py")]


def _weights_without(tmp_path, missing: str):
    model = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    state = {k: v.numpy() for k, v in model.state_dict().items() if k != missing}
    paddle.save(state, str(tmp_path / "w.pdparams"))
    return model, tmp_path / "w.pdparams"


def _paddle_warnings(run, install: bool):
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        if install:
            quiet.install()
        else:
            warnings.simplefilter("always")
        run()
        warnings.warn("an unrelated warning", UserWarning)
    return [str(w.message) for w in caught]


def test_loads_and_training_passes_show_no_paddle_notice_but_other_warnings(tmp_path):
    (tmp_path / "partial").mkdir()
    (tmp_path / "full").mkdir()
    model, partial = _weights_without(tmp_path / "partial", "1.weight")
    complete, full = _weights_without(tmp_path / "full", "")

    def run():
        load_entire_model(model, partial, strict=False)  # 1.weight missing: Paddle says "Skip loading for …"
        load_entire_model(complete, full)  # strict
        model.train()
        model(paddle.to_tensor(np.ones((2, 3, 8, 8), np.float32)))  # BatchNorm's training notice

    unfiltered = _paddle_warnings(run, install=False)
    assert any(m.startswith("Skip loading for 1.weight") for m in unfiltered)  # the test can fail
    assert any("always track global mean and variance" in m for m in unfiltered)
    filtered = _paddle_warnings(run, install=True)
    assert "an unrelated warning" in filtered
    assert not [m for m in filtered if any(n in m for n in NOTICES)], filtered


_FAST_PATHS = """
import warnings
import paddleseg, paddle
bn = paddle.nn.BatchNorm2D(3)
bn.train()
bn(paddle.ones([2, 3, 4, 4]))
paddle.nn.Linear(2, 2).set_state_dict({})
warnings.warn("an unrelated warning")
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", [["train.py", "--help"], ["val.py", "--help"], ["predict.py", "--help"],
                                     ["export.py", "--help"], ["-c", _FAST_PATHS]])
def test_scripts_print_no_paddle_notice(command):
    if command[0].endswith(".py"):
        command = [str(REPO / command[0])] + command[1:]
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [n for n in NOTICES if n in done.stderr], done.stderr[-2000:]
    if command[0] == "-c":
        assert "UserWarning: an unrelated warning" in done.stderr


@pytest.mark.slow
def test_the_users_own_warning_settings_win():
    """The filters come after the interpreter's: ``-W`` (or PYTHONWARNINGS) still shows everything."""
    if shutil.which("ccache"):
        pytest.skip("ccache is installed here, so Paddle has no ccache notice to show")
    done = subprocess.run([sys.executable, "-W", "always::UserWarning", "-c", "import paddleseg, paddle"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0 and "No ccache found" in done.stderr


def test_the_deployment_script_imports_the_package_first():
    """tools/infer.py imports the package (which installs the filters) before a backend imports Paddle."""
    text = (REPO / "tools" / "infer.py").read_text(encoding="utf-8")
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    first_ours = next(i for i, line in enumerate(imports) if "paddleseg" in line)
    assert imports[first_ours].startswith("import paddleseg  # noqa: F401  (first: it filters Paddle's harmless")
    assert not any(line.split()[1].split(".")[0] in ("paddle", "onnxruntime") for line in imports)
