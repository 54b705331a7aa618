"""paddleseg.deploy.inputs: what --image_path names, the same for predict.py and tools/infer.py: an
image, a folder (without the outputs of a save_dir inside it), a .txt/.lst/.list file with optional
label columns; a file listed twice is predicted once, with a warning; FIFOs are never opened."""
import os
from pathlib import Path

import pytest

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.inputs import collect_images, input_kind, plan_outputs, read_list
from paddleseg.deploy.outputs import output_names


def touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def test_folder_and_list_inputs_and_their_output_names(tmp_path, caplog):
    root = touch(tmp_path / "in", "dup.png", "dup.jpg", "one.jpg", "sub/dup.png", "out/label/a.png",
                 "lists/c1/a.png", "c2/a.png")
    save_dir = root / "out"
    images, found_root = collect_images(root, save_dir)
    assert found_root == root and [p.relative_to(root).as_posix() for p in images] == [
        "c2/a.png", "dup.jpg", "dup.png", "lists/c1/a.png", "one.jpg", "sub/dup.png"]
    assert [n.as_posix() for n in output_names(images, root)] == [
        "c2/a.png", "dup.jpg.png", "dup.png.png", "lists/c1/a.png", "one.png", "sub/dup.png"]
    listing = root / "lists" / "images.list"
    listing.write_text(f"c1/a.png gt/a.png\n../c2/a.png\n{root / 'one.jpg'}\nc1/a.png\n\n")
    images, list_root = collect_images(listing)
    assert list_root == listing.parent
    assert [n.as_posix() for n in output_names(images, list_root)] == ["c1/a.png", "__/c2/a.png", "__/one.png"]
    assert "images.list: 1 file(s) listed more than once, predicted once" in caplog.text
    touch(root, "dup.png.jpg")  # dup.png -> dup.png.png, and so does dup.png.jpg
    with pytest.raises(DeployError, match="would be written twice"):
        output_names(*collect_images(root, save_dir))


@pytest.mark.parametrize("suffix", [".txt", ".lst", ".list", ".LIST"])
def test_every_list_suffix_is_a_list_with_optional_label_columns(tmp_path, suffix):
    listing = tmp_path / f"val{suffix}"
    listing.write_text("a.png  gt/a.png extra\n/abs/b.png\n")
    assert input_kind(listing) == "list"
    assert read_list(listing) == [(tmp_path / "a.png", tmp_path / "gt" / "a.png"), (Path("/abs/b.png"), None)]


def test_list_entries_that_are_not_utf8_keep_their_bytes(tmp_path):
    (tmp_path / "val.txt").write_bytes(b"x\xff.png\n")
    (entry,) = read_list(tmp_path / "val.txt")
    assert os.fsencode(entry.image) == os.fsencode(tmp_path) + b"/x\xff.png" and entry.label is None


def test_a_list_file_or_image_path_that_is_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "val.txt")
    with pytest.raises(DeployError, match=r"--image_path .*val.txt: is a FIFO \(named pipe\), not an image"):
        collect_images(tmp_path / "val.txt")
    with pytest.raises(DeployError, match=r"--image_path .*val.txt: is a FIFO \(named pipe\), not a regular file"):
        read_list(tmp_path / "val.txt")  # opened without blocking, then refused
    os.mkfifo(tmp_path / "photo")
    with pytest.raises(DeployError, match=r"photo: is a FIFO \(named pipe\), not an image, a folder or a list"):
        collect_images(tmp_path / "photo")


def test_a_fifo_in_a_folder_is_not_an_input(tmp_path):
    touch(tmp_path, "a.png")
    os.mkfifo(tmp_path / "b.png")
    assert collect_images(tmp_path)[0] == [tmp_path / "a.png"]


def test_nothing_to_predict_and_a_missing_path_are_user_errors(tmp_path):
    with pytest.raises(DeployError, match="no such file or folder"):
        collect_images(tmp_path / "missing")
    with pytest.raises(DeployError, match=r"no images found \(.jpg, .jpeg, .png"):
        collect_images(tmp_path)
    with pytest.raises(DeployError, match="not a folder"):
        plan_outputs(touch(tmp_path, "a.png") / "a.png", tmp_path / "a.png")
