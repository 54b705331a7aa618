"""The synthetic moving-camera clip (paddleseg.datasets.synthetic): frames and train-id labels move with
the known camera, which carries each frame's labels onto the next almost exactly (raw frame-to-frame
change does not); it is written as PNGs, an MP4 and the cameras, also by the command-line tool."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from paddleseg.datasets.synthetic import clip_flow, make_clip, write_synthetic_clip
from paddleseg.deploy.flicker import carry_labels, changed_fraction

from conftest import REPO
from video_helpers import read_video


@pytest.fixture(scope="module")
def clip():
    return make_clip(12, 128, 64, seed=3)


def test_frames_and_labels_have_the_size_asked_and_train_ids(clip):
    assert len(clip.frames) == len(clip.labels) == len(clip.cameras) == 12
    assert clip.frames[0].shape == (64, 128, 3) and clip.labels[0].shape == (64, 128)
    values = np.unique(np.concatenate([label.ravel() for label in clip.labels]))
    assert set(values.tolist()) <= set(range(19)) | {255} and len(values) >= 6


def test_the_known_motion_carries_labels_and_pixels_onto_the_next_frame(clip):
    for t in range(1, 12):
        flow = clip_flow(clip.cameras[t], clip.cameras[t - 1], 64, 128)
        raw = changed_fraction(clip.labels[t], clip.labels[t - 1], np.zeros_like(flow), ignore_index=255)
        carried = changed_fraction(clip.labels[t], clip.labels[t - 1], flow, ignore_index=255)
        assert raw > 0.04 and carried < 0.3 * raw, (t, raw, carried)
        moved, inside = carry_labels(clip.frames[t - 1][..., 1], flow)  # the green channel, as labels are carried
        error = np.abs(moved.astype(float) - clip.frames[t][..., 1])[inside].mean()
        still = np.abs(clip.frames[t - 1][..., 1].astype(float) - clip.frames[t][..., 1]).mean()
        assert error < 0.5 * still, (t, error, still)


def test_the_flow_between_two_cameras_is_the_affine_between_them():
    a = np.array([[1.5, 0, 10.0], [0, 1.5, 4.0]])
    b = np.array([[1.6, 0, 30.0], [0, 1.6, 2.0]])
    flow = clip_flow(b, a, 4, 6)
    x, y = 5, 3
    scene = b @ [x, y, 1]
    np.testing.assert_allclose([x, y] + flow[y, x], np.linalg.solve(a[:, :2], scene - a[:, 2]), atol=1e-4)


def test_the_clip_is_written_as_frames_labels_an_mp4_and_cameras(tmp_path):
    root = write_synthetic_clip(tmp_path / "clip", frames=5, width=96, height=48, seed=1, fps=12.0)
    frames = sorted((root / "frames").iterdir())
    labels = sorted((root / "labels").iterdir())
    assert [p.name for p in frames] == [p.name for p in labels] == [f"frame_{i:06d}.png" for i in range(5)]
    clip = make_clip(5, 96, 48, seed=1)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(frames[2])), cv2.COLOR_BGR2RGB), clip.frames[2])
    np.testing.assert_array_equal(cv2.imread(str(labels[2]), cv2.IMREAD_UNCHANGED), clip.labels[2])
    decoded = read_video(root / "clip.mp4")
    assert len(decoded) == 5 and decoded[0].shape == (48, 96, 3) and cv2.PSNR(decoded[2], clip.frames[2]) > 22
    cameras = json.loads((root / "cameras.json").read_text())
    assert cameras["fps"] == 12.0 and np.allclose(cameras["cameras"], clip.cameras, atol=1e-6)


@pytest.mark.slow
def test_the_tool_writes_the_clip_alone(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_cityscapes.py"), "--out",
                           str(tmp_path), "--clip", "3", "--clip_size", "64", "32", "--clip_only"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]
    assert len(list((tmp_path / "clip" / "frames").iterdir())) == 3
    bad = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_cityscapes.py"), "--out",
                          str(tmp_path), "--clip_only"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--clip_only needs --clip" in bad.stderr
