"""paddleseg.deploy.inputs for --video_path: a camera index, a folder or list of frames in natural order,
any other file as a video; images, FIFOs and missing paths are refused with the path named; output
stems never take an image output folder's name, and a file in the way of a video's outputs is refused."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.inputs import collect_video, natural_key, plan_video, video_stem


def frames_folder(folder: Path, names) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(folder / name)
    return folder


def test_a_folder_gives_its_own_images_in_natural_order(tmp_path):
    folder = frames_folder(tmp_path / "drive", ["f_10.png", "f_2.png", "f_1.jpg", "notes.txt.png"])
    (folder / "sub").mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(folder / "sub" / "f_0.png")  # below: not a frame
    video = collect_video(folder)
    assert video.kind == "frames" and video.stem == "drive"
    assert [p.name for p in video.frames] == ["f_1.jpg", "f_2.png", "f_10.png", "notes.txt.png"]
    assert natural_key(Path("a9")) < natural_key(Path("a10")) < natural_key(Path("b1"))


def test_a_list_keeps_its_order_and_repeats(tmp_path):
    frames_folder(tmp_path / "f", ["a.png", "b.png"])
    (tmp_path / "seq.txt").write_text("f/b.png\nf/a.png gt.png\n\nf/b.png\n")
    video = collect_video(tmp_path / "seq.txt")
    assert video.kind == "frames" and video.stem == "seq"
    assert video.frames == (tmp_path / "f/b.png", tmp_path / "f/a.png", tmp_path / "f/b.png")


def test_a_number_is_a_camera_unless_a_file_has_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = collect_video("0")
    assert (video.kind, video.camera, video.stem) == ("camera", 0, "camera0")
    (tmp_path / "1").write_bytes(b"a video named 1")
    assert collect_video("1").kind == "video"


def test_any_other_file_is_a_video_named_after_its_stem(tmp_path):
    (tmp_path / "drive.some.mkv").write_bytes(b"x")
    video = collect_video(tmp_path / "drive.some.mkv")
    assert (video.kind, video.stem, video.path) == ("video", "drive.some", tmp_path / "drive.some.mkv")


@pytest.mark.parametrize("name", ["label", "added_prediction", "pseudo_color_prediction", "label_ids"])
def test_a_stem_that_is_an_image_output_folder_gets_a_suffix(tmp_path, name):
    (tmp_path / f"{name}.mp4").write_bytes(b"x")
    assert collect_video(tmp_path / f"{name}.mp4").stem == f"{name}_video" == video_stem(name)


def test_refused_paths_name_the_path_and_the_problem(tmp_path):
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "photo.png")
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_text("\n")
    cases = {tmp_path / "photo.png": "an image, not a video (use --image_path",
             tmp_path / "pipe.mp4": "is a FIFO",
             tmp_path / "empty": "a folder without frame images",
             tmp_path / "empty.txt": "an empty list of frames",
             tmp_path / "missing.mp4": "no such file or folder"}
    for path, message in cases.items():
        with pytest.raises(DeployError) as e:
            collect_video(path)
        assert str(e.value).startswith(f"--video_path {path}: ") and message in str(e.value), str(e.value)


def test_something_in_the_way_of_the_outputs_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "clip.avi").write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    assert plan_video(tmp_path / "clip.avi", out).stem == "clip"
    (out / "clip").write_text("a file where the label folder goes")
    with pytest.raises(DeployError, match="clip is not a folder, in the way"):
        plan_video(tmp_path / "clip.avi", out)
    (out / "clip").unlink()
    (out / "clip_overlay.mp4").mkdir()
    with pytest.raises(DeployError, match="clip_overlay.mp4 is a folder, in the way"):
        plan_video(tmp_path / "clip.avi", out)
