"""SIGTERM while tools/infer.py writes its outputs (a job scheduler's stop): exit 143 with one line, the
image being written finished (both its pictures or neither), nothing after it, no temporary file left."""
import signal

import cv2
import numpy as np
from PIL import Image

from fault_helpers import run_with_fault
from test_tools_infer import tiny_onnx_export

# SIGTERM arrives when the second image's first picture is in its temporary file, before the rename
HOOK = """
import os, signal
real = os.replace
calls = []
def replace(*args, **kwargs):
    calls.append(args[1])
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
os.replace = replace
"""


def test_sigterm_ends_the_run_with_143_and_whole_outputs(tmp_path):
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / "in" / name), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    done = run_with_fault(HOOK, "tools/infer.py", "--model_dir", tiny_onnx_export(tmp_path / "export"),
                          "--image_path", tmp_path / "in", "--save_dir", tmp_path / "out", "--backend", "onnxruntime",
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "terminated" and "Traceback" not in done.stderr
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    # b.png's second picture is written too (an image's outputs are one unit), c.png is not started, and no
    # temporary file is left (one would be listed here)
    assert files == ["added_prediction/a.png", "added_prediction/b.png", "pseudo_color_prediction/a.png",
                     "pseudo_color_prediction/b.png"]
    for name in files:
        Image.open(tmp_path / "out" / name).load()  # whole
