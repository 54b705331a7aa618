"""paddleseg.deploy.video: video files are read frame by frame in order (any file name), truncation is
told from the header's claim, files without a decodable frame, cameras that cannot be opened and
oversized frames are errors naming them; frame sequences skip what they cannot use; the MP4 writer
leaves a playable file under its final name (also when the block ends with an error), or nothing."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.video import FrameSequence, Mp4Writer, open_camera, open_video_file, remove_leftovers

from video_helpers import moving_frames, read_video, video_fps, write_video


def test_a_lossless_video_gives_its_frames_in_order_with_rate_size_and_count(tmp_path):
    frames = moving_frames(12, 40, 30)
    path = write_video(tmp_path / "clip.mkv", frames, fps=12.5, fourcc="FFV1")  # lossless: frames compare exactly
    with open_video_file(path) as source:
        assert (source.fps, source.input_fps, source.size, source.claimed) == (12.5, 12.5, (40, 30), 12)
        read = list(source.frames())
        source.check_complete(stopped_early=False)
    assert [i for i, _ in read] == list(range(12)) and source.read == 12 and source.problems == []
    for (_, got), want in zip(read, frames):
        np.testing.assert_array_equal(got, want)


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    name = os.fsdecode(b"clip-\xff.avi")
    path = write_video(tmp_path / "plain.avi", moving_frames(3))
    path = path.rename(tmp_path / name)
    with open_video_file(path) as source:
        assert len(list(source.frames())) == 3


def test_a_truncated_file_yields_the_frames_before_the_cut_and_says_how_many(tmp_path):
    path = write_video(tmp_path / "cut.avi", moving_frames(30, 64, 48))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with open_video_file(path) as source:
        count = len(list(source.frames()))
        source.check_complete(stopped_early=False)
    assert 5 < count < 30 and source.read == count
    assert source.problems == [(str(path), f"{path}: truncated or unreadable after frame {count - 1}: read {count} "
                                           f"of the 30 frames its header claims; the {count} are written")]


def test_stopping_early_is_not_truncation(tmp_path):
    with open_video_file(write_video(tmp_path / "a.avi", moving_frames(10))) as source:
        for count, _ in enumerate(source.frames(), 1):
            if count == 4:
                break
        source.check_complete(stopped_early=True)
    assert source.problems == []


@pytest.mark.parametrize("content, message", [
    ("cut mp4", "not a video OpenCV's FFmpeg backend can read (or a cut MP4"),
    (b"just some text, not a video\n" * 20, "not a video OpenCV's FFmpeg backend can read"),
])
def test_a_file_without_a_decodable_frame_is_an_error(tmp_path, content, message):
    path = tmp_path / "clip.mp4"
    if content == "cut mp4":  # the MP4 index is written last: a cut file has none
        data = write_video(tmp_path / "whole.mp4", moving_frames(20), fourcc="mp4v").read_bytes()
        content = data[:len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(DeployError) as e:
        open_video_file(path)
    assert str(e.value).startswith(f"--video_path {path}: ") and message in str(e.value)


def test_frames_above_max_pixels_are_refused_from_the_header(tmp_path):
    path = write_video(tmp_path / "a.avi", moving_frames(3, 64, 48))
    with pytest.raises(DeployError, match=r"frames of 64x48 = 3072 pixels are above the limit of 3000 pixels"):
        open_video_file(path, max_pixels=3000)
    with open_video_file(path, max_pixels=3072) as source:
        assert source.size == (64, 48)


def test_a_camera_that_cannot_be_opened_is_named():
    with pytest.raises(DeployError, match=r"--video_path 63: camera 63 cannot be opened"):
        open_camera(63)


def test_a_frame_sequence_skips_unreadable_and_differently_sized_frames(tmp_path):
    frames = moving_frames(4, 20, 10)
    paths = [tmp_path / f"f{i}.png" for i in range(6)]
    for path, frame in zip([paths[0], paths[2], paths[4]], frames):
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    paths[1].write_bytes(b"\x89PNG cut")
    cv2.imwrite(str(paths[3]), np.zeros((11, 20, 3), np.uint8))
    paths[5].mkdir()
    source = FrameSequence("seq", paths, None, 10_000)
    read = list(source.frames())
    assert [i for i, _ in read] == [0, 2, 4] and source.fps == 25.0 and source.claimed == 6
    np.testing.assert_array_equal(read[1][1], frames[1])
    reasons = [reason for _, reason in source.problems]
    assert len(reasons) == 3 and "f1.png: unreadable" in reasons[0] and "f3.png: 20x11, not the first frame's 20x10" \
        in reasons[1] and "f5.png" in reasons[2]
    with pytest.raises(DeployError, match="none of its 2 frame image"):
        FrameSequence("bad", [paths[1], paths[5]], None, None)


@pytest.mark.parametrize("size", [(40, 30), (41, 29)])
def test_the_mp4_is_renamed_into_place_when_closed_and_plays(tmp_path, size):
    frames = moving_frames(7, *size)
    target = tmp_path / "out" / "a_overlay.mp4"
    with Mp4Writer(target, 10.0, size) as mp4:
        for frame in frames:
            mp4.write(frame)
        hidden = [p.name for p in target.parent.iterdir()]
        assert not target.exists() and len(hidden) == 1 and hidden[0].startswith(f".video-{os.getpid()}-")
    assert [p.name for p in target.parent.iterdir()] == ["a_overlay.mp4"]
    decoded = read_video(target)
    assert len(decoded) == 7 and video_fps(target) == 10.0
    assert decoded[0].shape == (size[1] + size[1] % 2, size[0] + size[0] % 2, 3)  # MPEG-4 needs even sizes
    shown = decoded[3][:size[1], :size[0]]
    assert cv2.PSNR(shown, frames[3]) > 20 and cv2.PSNR(shown, frames[3]) > cv2.PSNR(shown, frames[5]) + 5


def test_an_error_in_the_block_still_leaves_a_playable_mp4_and_no_frames_leave_nothing(tmp_path):
    target = tmp_path / os.fsdecode(b"\xfe") / "a.mp4"  # a folder name that is not UTF-8
    with pytest.raises(RuntimeError):
        with Mp4Writer(target, 25.0, (32, 32)) as mp4:
            for frame in moving_frames(3, 32, 32):
                mp4.write(frame)
            raise RuntimeError("stop")
    assert len(read_video(target)) == 3
    with Mp4Writer(tmp_path / "none.mp4", 25.0, (32, 32)):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.parent.name]


def test_leftovers_of_killed_writers_are_removed_and_those_of_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f".video-{int(dead.stdout)}-0a1b2c3d.partial.mp4"
    live = tmp_path / f".video-{os.getppid()}-0a1b2c3d.partial.mp4"
    other = tmp_path / ".video-notes.partial.mp4"
    for p in (gone, live, other):
        p.write_bytes(b"x")
    assert remove_leftovers(tmp_path) == [gone]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == sorted([live.name, other.name])
