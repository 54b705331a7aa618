"""paddleseg.deploy.pipeline: frames of the same input size run together, a batch gives the labels of
one-at-a-time runs, and an input that cannot be used is named and skipped while the others are written.
The stages run in threads, in order, with bounded queues; an error in one reaches the caller and every
thread ends. A video gives an overlay of each frame and, unsmoothed, each frame's own labels; smoothing
needs scores; a truncated file is a problem once the frames read are written."""
import json
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from paddleseg.deploy.benchmark import Benchmark
from paddleseg.deploy.errors import DeployError, ImageError
from paddleseg.deploy.outputs import OutputWriter, overlay, palette_table
from paddleseg.deploy.pipeline import (
    Frame,
    Stages,
    VideoSettings,
    labels_at_image_size,
    predict_images,
    predict_video,
    same_size_batches,
)
from paddleseg.deploy.preprocess import make_preprocess
from paddleseg.deploy.video import open_video_file

from video_helpers import PALETTE3, moving_frames, read_video, video_fps, write_video


class Argmax:
    """A backend whose model is the argmax over RGB; it counts its runs and refuses wide inputs."""

    def __init__(self):
        self.batches = []

    def input_problem(self, shape):
        return "wider than 100" if shape[3] > 100 else None

    def run(self, batch):
        self.batches.append(len(batch))
        return batch.argmax(axis=1)


def test_same_size_batches_group_by_input_shape():
    def frame(i, h):
        return Frame(Path(str(i)), Path(str(i)), np.zeros((h, 4, 3), np.uint8), np.zeros((1, 3, h, 4)))

    frames = [frame(0, 8), frame(1, 16), frame(2, 8), frame(3, 8), frame(4, 16), frame(5, 32)]
    batches = [[int(str(f.source)) for f in b] for b in same_size_batches(iter(frames), 2)]
    assert batches == [[0, 2], [1, 4], [3], [5]]
    assert [len(b) for b in same_size_batches(iter(frames), 1)] == [1] * 6


def write_inputs(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (10, 20), "b.png": (10, 20), "c.png": (12, 20), "wide.png": (10, 120)}.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    os.mkfifo(folder / "fifo.png")
    names = ["a.png", "broken.png", "b.png", "fifo.png", "c.png", "wide.png"]
    return [(folder / n, Path(n)) for n in names]


def test_batches_give_the_labels_of_batch_one_and_unusable_inputs_are_skipped(tmp_path, caplog):
    caplog.set_level("INFO", logger="paddleseg.deploy.pipeline")
    plan = write_inputs(tmp_path / "in")
    labels = {}
    for batch_size in (1, 2):
        backend, out = Argmax(), tmp_path / f"out{batch_size}"
        bench = Benchmark(warmup=1, repeats=2)
        writer = OutputWriter(out, palette_table(), save_label=True)
        summary = predict_images(plan, backend, make_preprocess([]), writer,
                                 postprocess=labels_at_image_size("argmax"), batch_size=batch_size, benchmark=bench)
        assert summary.done == 3 and [p.name for p, _ in summary.skipped] == ["broken.png", "fifo.png", "wide.png"]
        assert backend.batches[3:] == ([1, 1, 1] if batch_size == 1 else [2, 1])  # after 1 warm-up and 2 timed
        assert len(bench.model_times) == 2 and bench.shape == (batch_size, 3, 10, 20)
        labels[batch_size] = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (out / "label").iterdir()}
    assert labels[1].keys() == labels[2].keys() == {"a.png", "b.png", "c.png"}
    for name, label in labels[1].items():
        np.testing.assert_array_equal(labels[2][name], label)
        rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "in" / name)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(label, rgb.argmax(axis=2))
    assert "fifo.png: is a FIFO (named pipe), not a regular file" in caplog.text
    assert "wide.png: wider than 100" in caplog.text and "Predicted 3 image(s); 3 skipped" in caplog.text


def test_labels_are_fit_to_the_image_after_a_resize(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((9, 13, 3), np.uint8))
    from paddleseg.deploy.config import Resize

    out = tmp_path / "out"
    predict_images([(tmp_path / "a.png", Path("a.png"))], Argmax(), make_preprocess([Resize(4, 4)]),
                   OutputWriter(out, palette_table(), save_label=True), postprocess=labels_at_image_size(None))
    assert cv2.imread(str(out / "label" / "a.png"), cv2.IMREAD_UNCHANGED).shape == (9, 13)


# ------------------------------------------------------------------------------------------------
# the stages in threads
# ------------------------------------------------------------------------------------------------
def test_stages_run_in_their_own_threads_and_keep_the_order():
    seen = {}

    def stage(name):
        def run(items):
            for item in items:
                seen.setdefault(name, set()).add(threading.current_thread().name)
                yield item * 10 if name == "b" else item + 1
        run.__name__ = name
        return run

    with Stages(range(50), [stage("a"), stage("b"), stage("c")]) as results:
        assert list(results) == [(i + 1) * 10 + 1 for i in range(50)]
    assert len({name for names in seen.values() for name in names} | {threading.current_thread().name}) == 4


def test_an_error_in_a_stage_reaches_the_caller_and_every_thread_ends():
    def fails(items):
        for item in items:
            if item == 3:
                raise ImageError("item 3: broken")
            yield item

    got = []
    with pytest.raises(ImageError, match="item 3: broken"):
        with Stages(range(10), [fails, lambda items: (i for i in items)]) as results:
            for item in results:
                got.append(item)
    assert got == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


def test_the_queues_bound_how_far_reading_runs_ahead_and_leaving_early_stops_it():
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    with Stages(source(), [lambda items: (i for i in items), lambda items: (i for i in items)],
                queue_size=2) as results:
        for item in results:
            time.sleep(0.2)  # a slow writer: the readers fill their queues and wait
            break
        ahead = len(produced)
    assert ahead <= 2 + 2 + 3  # two queues of two, and one item in each stage's hands
    time.sleep(0.3)
    assert len(produced) == ahead  # stopped, not reading on
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


# ------------------------------------------------------------------------------------------------
# videos
# ------------------------------------------------------------------------------------------------
class Scores(Argmax):
    """A backend whose output is the normalised RGB as three class scores (logits)."""

    def run(self, batch):
        self.batches.append(len(batch))
        return batch * 4.0


def run_video(path, out, backend, output_op, **settings):
    with open_video_file(path) as source:
        return predict_video("clip", source, backend, make_preprocess([]), out, palette_table(PALETTE3),
                             postprocess=labels_at_image_size(output_op), output_op=output_op,
                             settings=VideoSettings(**settings))


def test_a_video_gives_an_overlay_of_every_frame_and_the_labels_of_each_frame_alone(tmp_path):
    frames = moving_frames(9, 30, 20)
    path = write_video(tmp_path / "clip.mkv", frames, fps=10.0, fourcc="FFV1")  # lossless
    out = tmp_path / "out"
    summary = run_video(path, out, Argmax(), "argmax", save_labels=True, batch_size=2)
    assert (summary.done, summary.frames_read, summary.skipped) == (9, 9, [])
    decoded = read_video(out / "clip_overlay.mp4")
    assert len(decoded) == 9 and decoded[0].shape == (20, 30, 3) and video_fps(out / "clip_overlay.mp4") == 10.0
    for i, frame in enumerate(frames):
        label = cv2.imread(str(out / "clip" / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(label, frame.argmax(axis=2))  # the model on this frame alone
        want = overlay(frame, label, palette_table(PALETTE3))
        assert cv2.PSNR(decoded[i], want) > 25
    report = json.loads((out / "clip.json").read_text())
    assert report["frames"] == report["frames_read"] == report["frames_claimed"] == 9 and report["complete"]
    assert (report["width"], report["height"], report["input_fps"], report["output_fps"]) == (30, 20, 10.0, 10.0)
    assert 0.0 <= report["flicker"] < 0.2 and report["problems"] == [] and report["temporal_smoothing"] == 0.0
    assert sorted(p.name for p in out.iterdir()) == ["clip", "clip.json", "clip_overlay.mp4"]


def test_max_frames_stops_early_and_without_labels_nothing_else_is_written(tmp_path):
    path = write_video(tmp_path / "clip.avi", moving_frames(12))
    summary = run_video(path, tmp_path / "out", Argmax(), "argmax", max_frames=5)
    assert (summary.done, summary.skipped, summary.report) == (5, [], None)
    assert len(read_video(tmp_path / "out" / "clip_overlay.mp4")) == 5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_overlay.mp4"]


def test_smoothing_needs_scores_and_changes_labels_only_through_the_past(tmp_path):
    path = write_video(tmp_path / "clip.mkv", moving_frames(6, 30, 20), fourcc="FFV1")
    with pytest.raises(DeployError, match="--output_op softmax"):
        run_video(path, tmp_path / "a", Argmax(), "argmax", smoothing=0.5)
    labels = {}
    for name, smoothing in (("plain", 0.0), ("smooth", 0.9)):
        run_video(path, tmp_path / name, Scores(), "none", smoothing=smoothing, flow=bool(smoothing),
                  save_labels=True)
        labels[name] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((tmp_path / name / "clip").iterdir())]
    np.testing.assert_array_equal(labels["plain"][0], labels["smooth"][0])  # no past yet
    assert any((a != b).any() for a, b in zip(labels["plain"][1:], labels["smooth"][1:]))
    report = json.loads((tmp_path / "smooth" / "clip.json").read_text())
    assert report["temporal_smoothing"] == 0.9 and report["flow"] is True


def test_a_truncated_video_is_a_problem_after_its_frames_are_written(tmp_path):
    path = write_video(tmp_path / "clip.avi", moving_frames(30, 64, 48))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    summary = run_video(path, tmp_path / "out", Argmax(), "argmax", save_labels=True)
    assert 5 < summary.done < 30 and summary.frames_read == summary.done
    assert [reason for _, reason in summary.skipped] == [
        f"{path}: truncated or unreadable after frame {summary.done - 1}: read {summary.done} of the 30 frames its "
        f"header claims; the {summary.done} are written"]
    assert len(read_video(tmp_path / "out" / "clip_overlay.mp4")) == summary.done
    report = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert report["complete"] is False and report["frames"] == summary.done and len(report["problems"]) == 1


def test_labels_of_scores_are_numpys_argmax_with_ties_nan_and_views():
    from paddleseg.deploy.postprocess import channel_argmax

    rng = np.random.default_rng(0)
    cases = [rng.random((2, 19, 33, 17)).astype(np.float32), rng.random((1, 256, 3, 4)).astype(np.float32),
             rng.standard_normal((1, 5, 6, 6)), rng.random((1, 19, 16, 16)).astype(np.float32)[:, :, ::2, 1::2]]
    cases[0][:, 7] = cases[0][:, 3]  # ties: the first class wins
    nan = rng.random((1, 4, 5, 5)).astype(np.float32)
    nan[0, 2, 1, 1], nan[0, 1, 2, 2] = np.nan, np.inf
    for scores in cases + [nan]:
        np.testing.assert_array_equal(channel_argmax(scores), scores.argmax(axis=1))
