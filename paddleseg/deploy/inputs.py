"""What a prediction runs on: the inputs named by ``--image_path``, the same in every front end.

    plan = plan_outputs("photos/", "output/result")   # [(image path, output name), ...]

``--image_path`` is one of:

- an image file (:data:`IMAGE_SUFFIXES`): itself;
- a folder: every image below it, recursively, sorted, except those in the output folders of
  ``save_dir`` (a ``save_dir`` inside the folder would otherwise have each run predict the previous
  run's outputs);
- a list file (:data:`LIST_SUFFIXES`; ``.list`` as PaddleSeg's TIPC lists): the first field of every
  non-empty line (an image, optionally followed by its label and anything else), relative to the
  list's folder unless absolute. A file listed twice is predicted once, with a warning.

``--video_path`` (:func:`collect_video`, a :class:`VideoInput`) is one of:

- a camera index (``0``; when no file of that name exists): ``camera0`` in output names;
- a folder of frames: the images directly in it (not below), in natural order (``frame_2`` before
  ``frame_10``); a ``save_dir`` inside it is therefore never read;
- a list file of frames (as above, in the order listed; a frame may be listed twice);
- any other regular file: a video, whatever OpenCV's FFmpeg backend reads (:mod:`paddleseg.deploy.video`
  opens it; one it cannot read is an error then). An image file is refused with a hint to use
  ``--image_path``.

A video's outputs are named after its ``stem`` (the file's stem, the folder's or list's name,
``camera0``): ``<stem>_overlay.mp4``, ``<stem>/frame_000000.png``, ``<stem>.json``; a stem that is
one of the image output folders (``label``, ...) gets ``_video`` appended, so that a video's outputs
never mix with images' in the same ``save_dir``.

Output names are :func:`paddleseg.deploy.outputs.output_names`. List entries are not opened here;
each is read as a regular file when its turn comes (a FIFO or a missing file is named and skipped).
"""
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.outputs import OUTPUT_FOLDERS, check_save_dir, output_names, video_output_names
from paddleseg.utils.regular_file import NotRegularFileError, describe_kind, read_bytes

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_SUFFIXES = (".txt", ".lst", ".list")
INPUT_KINDS = ("image", "folder", "list")  # --image_path
VIDEO_KINDS = ("video", "frames", "camera")  # --video_path
MAX_LIST_BYTES = 64 << 20  # a list of a million long paths


class ListEntry(NamedTuple):
    """One line of a list file: the image and, when the line names one, its label."""
    image: Path
    label: Optional[Path]


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` and ``.`` removed by name (symbolic links are not followed)."""
    return Path(os.path.abspath(path))


def _is_below(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def input_kind(path: Path) -> str:
    """Which of :data:`INPUT_KINDS` ``path`` is; DeployError if none."""
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "list" if path.suffix.lower() in LIST_SUFFIXES else "image"
    if path.exists():
        raise DeployError(f"--image_path {path}: is {describe_kind(path.stat().st_mode)}, not an image, a folder "
                          f"or a list file")
    raise DeployError(f"--image_path {path}: no such file or folder")


def read_list(path: Path) -> List[ListEntry]:
    """The entries of a list file (module docstring), paths relative to its folder made so. The file
    is read as a regular file of at most :data:`MAX_LIST_BYTES`; bytes that are not UTF-8 stay as
    they are in the names (as the file system gives them)."""
    try:
        text = read_bytes(path, MAX_LIST_BYTES).decode("utf-8", "surrogateescape")
    except NotRegularFileError as e:
        raise DeployError(f"--image_path {e}") from e
    except OSError as e:
        raise DeployError(f"--image_path {path}: cannot be read ({e.strerror or e})") from e
    entries = []
    for line in text.splitlines():
        fields = [path.parent / p if not Path(p).is_absolute() else Path(p) for p in line.split()[:2]]
        if fields:
            entries.append(ListEntry(fields[0], fields[1] if len(fields) > 1 else None))
    return entries


def _once(images: Sequence[Path], source: Path) -> List[Path]:
    seen, unique = set(), []
    for p in images:
        if _absolute(p) not in seen:
            seen.add(_absolute(p))
            unique.append(p)
    if len(unique) < len(images):
        logger.warning("%s: %d file(s) listed more than once, predicted once", source, len(images) - len(unique))
    return unique


def collect_images(image_path: PathLike, save_dir: Optional[PathLike] = None) -> Tuple[List[Path], Path]:
    """The images named by ``image_path`` (module docstring) and the folder their output names are
    relative to."""
    path = Path(image_path)
    kind = input_kind(path)
    if kind == "folder":
        outputs = [] if save_dir is None else [(Path(save_dir) / f).resolve() for f in OUTPUT_FOLDERS]
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not _is_below(p.resolve(), outputs))
        root = path
    elif kind == "list":
        images, root = _once([entry.image for entry in read_list(path)], path), path.parent
    else:
        images, root = [path], path.parent
    if not images:
        raise DeployError(f"--image_path {path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return images, root


def plan_outputs(image_path: PathLike, save_dir: PathLike) -> List[Tuple[Path, Path]]:
    """``(image, output name)`` for every input (:func:`collect_images`, :func:`output_names`), after
    checking ``save_dir``: every argument problem is found before a model is built or a file written."""
    check_save_dir(save_dir)
    images, root = collect_images(image_path, save_dir)
    return list(zip(images, output_names(images, root)))


# ------------------------------------------------------------------------------------------------
# videos
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInput:
    """What ``--video_path`` names (module docstring): ``kind`` is one of :data:`VIDEO_KINDS`; ``path``
    the file, folder or list (not for a camera), ``camera`` the index, ``frames`` a sequence's images."""
    kind: str
    stem: str
    path: Optional[Path] = None
    camera: Optional[int] = None
    frames: Tuple[Path, ...] = ()


def natural_key(path: Path) -> List:
    """Sort key putting ``frame_2`` before ``frame_10``."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", path.name))]


def video_stem(name: str) -> str:
    """The stem of a video's output names: ``name``, with ``_video`` appended if it is an image output
    folder's name (or empty)."""
    return f"{name}_video" if name in OUTPUT_FOLDERS or not name else name


def collect_video(video_path: PathLike) -> VideoInput:
    """The :class:`VideoInput` of ``--video_path`` (module docstring); DeployError if it is none."""
    text = str(video_path)
    path = Path(text)
    if not os.path.lexists(path) and re.fullmatch(r"\d{1,4}", text.strip()):
        return VideoInput("camera", f"camera{int(text)}", camera=int(text))
    if path.is_dir():
        frames = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                        key=natural_key)
        if not frames:
            raise DeployError(f"--video_path {path}: a folder without frame images ({', '.join(IMAGE_SUFFIXES)}) "
                              f"directly in it")
        return VideoInput("frames", video_stem(_absolute(path).name), path, frames=tuple(frames))
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        frames = [entry.image for entry in read_list(path)]
        if not frames:
            raise DeployError(f"--video_path {path}: an empty list of frames")
        return VideoInput("frames", video_stem(path.stem), path, frames=tuple(frames))
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise DeployError(f"--video_path {path}: an image, not a video (use --image_path for images; a folder or "
                          f"a list of frames is a video)")
    if path.is_file():
        return VideoInput("video", video_stem(path.stem), path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None:
        raise DeployError(f"--video_path {path}: is {describe_kind(mode)}, not a video file, a folder or list of "
                          f"frames, or a camera index")
    raise DeployError(f"--video_path {path}: no such file or folder (a camera is given by its index: 0, 1, ...)")


def plan_video(video_path: PathLike, save_dir: PathLike) -> VideoInput:
    """:func:`collect_video` after checking ``save_dir`` and that nothing of another kind is in the way
    of the video's outputs (before a model is built or a file written)."""
    check_save_dir(save_dir)
    video = collect_video(video_path)
    names = video_output_names(save_dir, video.stem)
    for path, folder in ((names.overlay, False), (names.labels, True), (names.report, False)):
        if path.exists() and path.is_dir() != folder:
            raise DeployError(f"--save_dir {save_dir}: {path} is {'not ' if folder else ''}a folder, in the way of "
                              f"this video's outputs (move it, or choose another --save_dir)")
    return video
