"""--video_path keeps the error contract. A truncated video: the frames read are written, the MP4 plays,
exit 3 with one line saying how many frames were read. Ctrl-C and SIGTERM: a playable MP4 of the frames
so far, exit 130 / 143, no temporary file. A path that is not a video, a cut MP4 (its index is written
last), a camera that cannot be opened, oversized frames, smoothing an export that gives labels only and
flags that do not go together: exit 2 with one line naming it, nothing written. Memory does not grow
with the video's length."""
import importlib.util
import json
import signal

import cv2
import numpy as np
import pytest

from paddleseg.errors import UserError
from paddleseg.utils.cli import run

from conftest import REPO
from fault_helpers import hidden, memory_limit, peak_rss, run_with_fault
from video_helpers import moving_frames, read_video, tiny_export, write_video


@pytest.fixture(scope="module")
def infer():
    spec = importlib.util.spec_from_file_location("video_faults_infer", REPO / "tools" / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("export") / "softmax")


def one_error(capsys, code: int, *fragments: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_inputs_that_are_no_video_are_exit_2_before_anything_is_written(tmp_path, infer, export, capsys):
    data = write_video(tmp_path / "whole.mp4", moving_frames(20), fourcc="mp4v").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 2])
    (tmp_path / "notes.mov").write_text("not a video\n" * 50)
    (tmp_path / "photo.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    out = tmp_path / "out"
    cases = [(tmp_path / "cut.mp4", "not a video OpenCV's FFmpeg backend can read", "a cut MP4"),
             (tmp_path / "notes.mov", "not a video OpenCV's FFmpeg backend can read"),
             (tmp_path / "photo.png", "an image, not a video (use --image_path"),
             ("63", "camera 63 cannot be opened"),
             (tmp_path / "missing.avi", "no such file or folder")]
    for path, *fragments in cases:
        code = run(infer.main, ["--model_dir", str(export), "--backend", "onnxruntime", "--video_path", str(path),
                                "--save_dir", str(out)])
        one_error(capsys, code, f"--video_path {path}", *fragments)
    assert not out.exists()


def test_oversized_frames_and_smoothing_an_argmax_export_are_exit_2(tmp_path, infer, capsys):
    video = write_video(tmp_path / "a.avi", moving_frames(4, 64, 48))
    code = run(infer.main, ["--model_dir", str(tiny_export(tmp_path / "softmax")), "--backend", "onnxruntime",
                            "--video_path", str(video), "--save_dir", str(tmp_path / "out"), "--max_pixels", "3000"])
    one_error(capsys, code, "frames of 64x48 = 3072 pixels are above the limit of 3000 pixels", "not decoded")
    code = run(infer.main, ["--model_dir", str(tiny_export(tmp_path / "argmax", "argmax")), "--backend",
                            "onnxruntime", "--video_path", str(video), "--save_dir", str(tmp_path / "out"),
                            "--temporal_smoothing", "0.5"])
    one_error(capsys, code, "--temporal_smoothing needs class scores", "--output_op softmax")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--video_path", "a.avi", "--flow"], "--flow carries the past probabilities of --temporal_smoothing"),
    (["--video_path", "a.avi", "--temporal_smoothing", "1"], "expected a number from 0 (off) to below 1"),
    (["--video_path", "a.avi", "--image_path", "b"], "not allowed with argument"),
    (["--image_path", "b", "--max_frames", "3"], "--max_frames apply to --video_path only"),
    (["--image_path", "b", "--temporal_smoothing", "0.5", "--flow"], "--temporal_smoothing, --flow apply to"),
    (["--video_path", "a.avi", "--max_frames", "0"], "--max_frames: must be a positive integer"),
    (["--video_path", "a.avi", "--label_ids"], "--label_ids applies to images only"),
])
def test_video_flags_that_do_not_go_together_are_exit_2(tmp_path, infer, capsys, args, message):
    code = run(infer.main, ["--model_dir", str(tmp_path), *args])
    one_error(capsys, code, message)


@pytest.mark.slow
def test_a_truncated_video_writes_the_frames_read_plays_and_exits_3(tmp_path, export):
    path = write_video(tmp_path / "drive.avi", moving_frames(40, 64, 48))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    done = run_with_fault("", "tools/infer.py", "--model_dir", export, "--backend", "onnxruntime", "--video_path",
                          path, "--save_dir", tmp_path / "out", "--save_labels", cwd=tmp_path, timeout=60)
    assert done.returncode == 3, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "truncated or unreadable" in line]
    read = len(read_video(tmp_path / "out" / "drive_overlay.mp4"))
    assert 5 < read < 40 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].endswith(f"drive.avi: truncated or unreadable after frame {read - 1}: read {read} of the 40 "
                             f"frames its header claims; the {read} are written")
    assert len(list((tmp_path / "out" / "drive").iterdir())) == read and hidden(tmp_path / "out") == []
    assert json.loads((tmp_path / "out" / "drive.json").read_text())["complete"] is False


# the signal comes while the 6th frame's overlay is written, or while the model runs on the 20th frame (the
# bounded queues keep the writer at most a few frames behind)
WHILE_WRITING = """
import os, signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # even when the tests run in a background job
from paddleseg.deploy.video import Mp4Writer
real = Mp4Writer.write
def write(self, rgb):
    real(self, rgb)
    if self.frames == 6:
        os.kill(os.getpid(), signal.{signal})
Mp4Writer.write = write
"""
WHILE_MODELLING = """
import os, signal
signal.signal(signal.SIGINT, signal.default_int_handler)
from paddleseg.deploy.backends.onnx_runtime import OnnxRuntime
real, runs = OnnxRuntime.run, []
def run(self, batch):
    runs.append(1)
    if len(runs) == 20:
        os.kill(os.getpid(), signal.{signal})
    return real(self, batch)
OnnxRuntime.run = run
"""


@pytest.mark.slow
@pytest.mark.parametrize("hook, signum", [(WHILE_WRITING, signal.SIGINT), (WHILE_MODELLING, signal.SIGINT),
                                          (WHILE_WRITING, signal.SIGTERM)])
def test_ctrl_c_and_sigterm_leave_a_playable_mp4_of_the_frames_so_far(tmp_path, export, hook, signum):
    path = write_video(tmp_path / "drive.avi", moving_frames(200, 64, 48))
    done = run_with_fault(hook.format(signal=signal.Signals(signum).name), "tools/infer.py", "--model_dir", export,
                          "--backend", "onnxruntime", "--video_path", path, "--save_dir", tmp_path / "out",
                          "--save_labels", cwd=tmp_path, timeout=60)
    assert done.returncode == 128 + signum, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == ("terminated" if signum == signal.SIGTERM else "interrupted")
    assert "Traceback" not in done.stderr
    frames = len(read_video(tmp_path / "out" / "drive_overlay.mp4"))
    labels = len(list((tmp_path / "out" / "drive").iterdir()))
    assert labels == frames, (frames, labels)  # every frame in the MP4 has its label PNG, and no other
    assert frames == 6 if hook is WHILE_WRITING else 10 <= frames < 20, frames
    report = json.loads((tmp_path / "out" / "drive.json").read_text())
    assert report["complete"] is False and report["frames"] == frames
    assert hidden(tmp_path / "out") == []


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_video(tmp_path, export):
    frames = moving_frames(24, 640, 360, step=4)
    rss = {}
    for count in (30, 120):  # 4x the frames: kept frames would cost ~3.5 MB each (image + input)
        video = write_video(tmp_path / f"v{count}.avi", [frames[i % 24] for i in range(count)])
        done = run_with_fault(memory_limit("cv2, onnxruntime, paddleseg.deploy.pipeline"), "tools/infer.py",
                              "--model_dir", export, "--backend", "onnxruntime", "--video_path", video, "--save_dir",
                              tmp_path / "out", "--save_labels", "--temporal_smoothing", "0.5", "--flow",
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(read_video(tmp_path / "out" / f"v{count}_overlay.mp4")) == count
        rss[count] = peak_rss(done.stderr)
    assert rss[120] - rss[30] < 100 << 20, {k: v >> 20 for k, v in rss.items()}


def test_predict_takes_the_same_video_flags(tmp_path):
    spec = importlib.util.spec_from_file_location("video_faults_predict", REPO / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    common = ["--config", "c.yml", "--model_path", "m.pdparams"]
    args = module.parse_args(common + ["--video_path", "a.mp4", "--temporal_smoothing", "0.7", "--flow",
                                       "--save_labels", "--max_frames", "9"])
    video = args.video
    assert (video.smoothing, video.flow, video.save_labels, video.max_frames) == (0.7, True, True, 9)
    with pytest.raises(UserError, match="--flow carries the past"):
        module.parse_args(common + ["--video_path", "a.mp4", "--flow"])
    with pytest.raises(UserError, match="one of the arguments --image_path --video_path is required"):
        module.parse_args(common)
