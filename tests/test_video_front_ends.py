"""--video_path end to end, on the synthetic moving-camera clip: tools/infer.py (every deploy backend) and
predict.py (the trained model) keep the frame count, size and rate, and without smoothing give each
frame the labels that predicting it as an image gives. With the released quick-start model, smoothing
with flow cuts the motion-compensated flicker by at least 30% (against the optical flow of the input
frames and against the clip's known motion) while mIoU against the clip's labels falls by at most 1
point."""
import json
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from paddleseg.core.export import export_model
from paddleseg.datasets.synthetic import clip_flow, make_clip, write_synthetic_clip
from paddleseg.deploy.flicker import FlickerMeter
from paddleseg.models import ESPNetV2
from paddleseg.utils.metrics import ConfusionMatrix

from conftest import REPO
from video_helpers import read_video, video_fps

QUICKSTART_CONFIG = REPO / "configs" / "quickstart" / "espnetv2_synthetic.yml"
QUICKSTART_MODEL = REPO / "output" / "quickstart" / "best_model" / "model.pdparams"
FRAMES, WIDTH, HEIGHT = 32, 256, 128


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_synthetic_clip(tmp_path_factory.mktemp("clip") / "clip", FRAMES, WIDTH, HEIGHT, seed=0)


def run(script, *args, timeout=300):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def labels_of(folder, names):
    return [cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED) for name in names]


def frame_names(count):
    return [f"frame_{i:06d}.png" for i in range(count)]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    paddle.seed(5)
    model = ESPNetV2(19, scale=0.5, drop_prob=0.0)
    model.eval()
    folder = tmp_path_factory.mktemp("export")
    export_model(model, folder, transforms=[{"type": "Normalize"}], num_classes=19, output_op="softmax", onnx=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["paddle", "onnxruntime"])
def test_infer_keeps_count_size_and_rate_and_gives_each_frame_its_image_labels(tmp_path, clip, export, backend):
    decoded = read_video(clip / "clip.mp4")  # the frames the video run sees, as images
    (tmp_path / "decoded").mkdir()
    for name, frame in zip(frame_names(FRAMES), decoded):
        cv2.imwrite(str(tmp_path / "decoded" / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    video = run("tools/infer.py", "--model_dir", export, "--backend", backend, "--video_path", clip / "clip.mp4",
                "--save_dir", tmp_path / "out", "--save_labels")
    assert video.returncode == 0, video.stderr[-3000:]
    images = run("tools/infer.py", "--model_dir", export, "--backend", backend, "--image_path", tmp_path / "decoded",
                 "--save_dir", tmp_path / "out", "--save_label")  # the same save_dir: no name is shared
    assert images.returncode == 0, images.stderr[-3000:]
    overlay = read_video(tmp_path / "out" / "clip_overlay.mp4")
    assert len(overlay) == FRAMES and overlay[0].shape == (HEIGHT, WIDTH, 3)
    assert video_fps(tmp_path / "out" / "clip_overlay.mp4") == video_fps(clip / "clip.mp4") == 25.0
    for got, want in zip(labels_of(tmp_path / "out" / "clip", frame_names(FRAMES)),
                         labels_of(tmp_path / "out" / "label", frame_names(FRAMES))):
        np.testing.assert_array_equal(got, want)
    report = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert report["frames"] == FRAMES and report["complete"] and 0 < report["flicker"] < 1


@pytest.mark.slow
def test_predict_gives_each_frame_of_a_frame_folder_its_image_labels(tmp_path, clip):
    common = ["--config", QUICKSTART_CONFIG, "--model_path", QUICKSTART_MODEL, "--save_dir", tmp_path / "out",
              "--device", "cpu"]
    video = run("predict.py", *common, "--video_path", clip / "frames", "--save_labels", "--max_frames", "12")
    assert video.returncode == 0, video.stderr[-3000:]
    images = run("predict.py", *common, "--image_path", clip / "frames", "--save_label")
    assert images.returncode == 0, images.stderr[-3000:]
    assert len(read_video(tmp_path / "out" / "frames_overlay.mp4")) == 12
    got = labels_of(tmp_path / "out" / "frames", frame_names(12))
    want = labels_of(tmp_path / "out" / "label", frame_names(12))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "out" / "frames.json").read_text())["frames"] == 12


@pytest.mark.slow
def test_smoothing_with_flow_cuts_flicker_by_30_percent_at_most_1_point_of_miou(tmp_path, clip):
    from paddleseg.checkpoint import load_entire_model
    from paddleseg.core.predict import build_transforms, predict_video, transform_configs
    from paddleseg.cvlibs import Config
    from paddleseg.deploy.inputs import collect_video
    from paddleseg.deploy.pipeline import VideoSettings
    from paddleseg.deploy.video import open_source
    from paddleseg.utils.visualize import get_palette

    cfg = Config(str(QUICKSTART_CONFIG))
    model = cfg.model
    load_entire_model(model, str(QUICKSTART_MODEL))
    truth = make_clip(FRAMES, WIDTH, HEIGHT, seed=0)
    known = [None] + [clip_flow(truth.cameras[t], truth.cameras[t - 1], HEIGHT, WIDTH) for t in range(1, FRAMES)]
    figures = {}
    for name, smoothing in (("plain", 0.0), ("smoothed", 0.7)):
        settings = VideoSettings(smoothing=smoothing, flow=bool(smoothing), save_labels=True)
        with open_source(collect_video(clip / "clip.mp4")) as source:
            summary = predict_video(model, build_transforms(transform_configs(cfg)), "clip", source, tmp_path / name,
                                    get_palette(19), video=settings)
        labels = labels_of(tmp_path / name / "clip", frame_names(FRAMES))
        matrix, against_motion = ConfusionMatrix(19), FlickerMeter()
        for label, true_label, flow in zip(labels, truth.labels, known):
            matrix.update(label, true_label)
            against_motion.update(label, flow)
        figures[name] = (summary.flicker, against_motion.mean, matrix.miou())
    (plain_flow, plain_known, plain_miou), (smooth_flow, smooth_known, smooth_miou) = figures["plain"], \
        figures["smoothed"]
    assert plain_flow > 0.005 and plain_miou > 0.4, figures  # a model that sees the scene, and flickers
    assert smooth_flow <= 0.7 * plain_flow and smooth_known <= 0.7 * plain_known, figures
    assert smooth_miou >= plain_miou - 0.01, figures
