"""Reading and writing videos: a video file, a camera or a sequence of frame images in, an MP4 out.

    source = open_source(video_input, max_pixels)      # video_input: paddleseg.deploy.inputs.collect_video
    for index, rgb in source.frames(): ...              # RGB uint8 (H, W, 3), in order
    source.fps, source.size, source.claimed, source.problems

    with Mp4Writer(Path("out/clip_overlay.mp4"), fps=25.0, size=(1024, 512)) as mp4:
        mp4.write(rgb)                                  # at the end (or on Ctrl-C, SIGTERM, an error): playable

A video file is whatever OpenCV's FFmpeg backend reads (mp4, avi, mkv, mov, webm, ...). It is opened
as a regular file (a FIFO or a device is refused) and handed to FFmpeg by its descriptor, so any file
name works. Its frame size is read from the header and checked against ``--max_pixels`` before any
frame is decoded, as an image's is. ``CAP_PROP_FRAME_COUNT`` is only what the header claims: frames
are read until the decoder stops, and fewer than claimed means the file is truncated or unreadable
from that point (a problem, exit 3; the frames read are written). A file with no decodable frame (not
a video, or a cut MP4, whose index is written last) is an error (exit 2) before anything is written.

A camera is an integer index (OpenCV's V4L2 device number); one that cannot be opened is an error
naming it. A frame sequence is a folder or a list of images (:mod:`paddleseg.deploy.inputs`), read
like images: an unreadable one, one above ``--max_pixels`` or one of another size than the first is
named and skipped.

The MP4 (MPEG-4 Part 2, ``mp4v``: the encoder this OpenCV build has; it cannot write H.264) is written
under a temporary name in the output folder, ``.video-<pid>-<random>.partial.mp4``, and renamed when it
is closed, which writes the index at its end: a run that ends early for any reason but SIGKILL leaves a
playable file of the frames written so far. Leftovers of killed runs (their process gone) are removed
when the next writer opens in that folder. The encoder needs even sizes: an odd width or height is
padded by repeating the last column or row.
"""
import logging
import os
import re
import secrets
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from paddleseg.deploy.errors import DeployError, ImageError
from paddleseg.deploy.images import MAX_PIXELS, read_rgb
from paddleseg.utils.processes import alive
from paddleseg.utils.regular_file import NotRegularFileError, open_regular
from paddleseg.utils.signals import interruptions_held

if TYPE_CHECKING:
    from paddleseg.deploy.inputs import VideoInput

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0        # a frame sequence's frame rate, and a video's that does not say (or says nonsense)
MAX_FPS = 1000.0
MP4_FOURCC = "mp4v"
_PARTIAL = re.compile(r"^\.video-(?P<pid>\d+)-[0-9a-f]+\.partial\.mp4$")


def _descriptor_path(fd: int, fallback: Path) -> str:
    """A path OpenCV can open for the open descriptor ``fd`` (Linux), else ``fallback`` as text."""
    proc = f"/proc/self/fd/{fd}"
    return proc if os.path.exists(proc) else str(fallback)


def _rate(fps: float, what: str) -> float:
    if not (0 < fps <= MAX_FPS):
        logger.warning("%s: frame rate %s is not usable, %s frames/s assumed (--fps sets it)", what, fps, DEFAULT_FPS)
        return DEFAULT_FPS
    return float(fps)


class VideoSource(ABC):
    """Frames in order, with what is known before reading them (module docstring)."""

    def __init__(self, name: str, fps: float, size: Tuple[int, int], claimed: Optional[int],
                 input_fps: Optional[float] = None):
        self.name = name                        # how messages name the input
        self.fps = fps                          # of the output: the input's, or what --fps says
        self.input_fps = input_fps              # what the input says (None: a frame sequence)
        self.size = size                        # (width, height) of every frame
        self.claimed = claimed                  # the frame count the header claims, if any
        self.read = 0                           # frames read so far
        self.problems: List[Tuple[str, str]] = []  # (what, reason): skipped frames, a truncated file

    @abstractmethod
    def frames(self) -> Iterator[Tuple[int, np.ndarray]]:
        """(index in the input, RGB uint8 frame) in order; the first frame was read when opening."""

    def check_complete(self, stopped_early: bool) -> None:
        """Once reading ended: record a problem if frames are missing that no skip accounts for."""

    def close(self) -> None:
        """Release the file or device."""

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Capture(VideoSource):
    """A video file or a camera through ``cv2.VideoCapture``; the first frame is decoded on opening."""

    def __init__(self, name: str, capture: cv2.VideoCapture, fps: Optional[float], max_pixels: Optional[int],
                 handle: Optional[BinaryIO] = None, is_file: bool = True):
        self.capture, self.handle, self.is_file = capture, handle, is_file
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if is_file else 0
        said = capture.get(cv2.CAP_PROP_FPS)
        super().__init__(name, fps or _rate(said, name), (width, height), claimed if claimed > 0 else None,
                         said if said > 0 else None)
        self._check_pixels(width, height, max_pixels, "not decoded")
        ok, first = capture.read()
        if not ok or first is None:
            what = "no frame could be decoded (not a video, or a cut MP4, whose index is written last)" if is_file \
                else "it gives no frames"
            raise DeployError(f"--video_path {name}: {what}")
        self.size = (first.shape[1], first.shape[0])  # the decoder's size (the header's may differ: rotation)
        self._check_pixels(*self.size, max_pixels, "its header claimed less")
        self._first = first

    def _check_pixels(self, width: int, height: int, max_pixels: Optional[int], note: str) -> None:
        if max_pixels is not None and width * height > max_pixels:
            raise DeployError(f"--video_path {self.name}: frames of {width}x{height} = {width * height} pixels are "
                              f"above the limit of {max_pixels} pixels (--max_pixels); {note}")

    def frames(self) -> Iterator[Tuple[int, np.ndarray]]:
        frame, index = self._first, 0
        self._first = None
        while frame is not None:
            self.read += 1
            if (frame.shape[1], frame.shape[0]) == self.size:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            else:
                self.problems.append((self.name, f"{self.name}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                                                 f"not the first frame's {self.size[0]}x{self.size[1]}; skipped"))
            ok, frame = self.capture.read()
            frame, index = (frame if ok else None), index + 1

    def check_complete(self, stopped_early: bool) -> None:
        """Record a problem if the file ended before the frame count its header claims."""
        if self.is_file and not stopped_early and self.claimed is not None and self.read < self.claimed:
            self.problems.append((self.name, f"{self.name}: truncated or unreadable after frame {self.read - 1}: read "
                                             f"{self.read} of the {self.claimed} frames its header claims; the "
                                             f"{self.read} are written"))

    def close(self) -> None:
        self.capture.release()
        if self.handle is not None:
            self.handle.close()


class FrameSequence(VideoSource):
    """Image files in order, as a video (module docstring); the first readable one is read on opening."""

    def __init__(self, name: str, paths: Sequence[Path], fps: Optional[float], max_pixels: Optional[int]):
        self.paths, self.max_pixels = list(paths), max_pixels
        self._first: Optional[Tuple[int, np.ndarray]] = None
        self._skipped: List[Tuple[str, str]] = []
        for index, path in enumerate(self.paths):
            image = self._read(index, path)
            if image is not None:
                self._first = (index, image)
                break
        if self._first is None:
            raise DeployError(f"--video_path {name}: none of its {len(self.paths)} frame image(s) can be read (the "
                              f"log names each)")
        super().__init__(name, fps or DEFAULT_FPS, (self._first[1].shape[1], self._first[1].shape[0]), len(self.paths))
        self.problems.extend(self._skipped)

    def _read(self, index: int, path: Path) -> Optional[np.ndarray]:
        try:
            return read_rgb(path, self.max_pixels)
        except ImageError as e:
            logger.error("skipped: %s", e)
            self._skipped.append((str(path), str(e)))
            return None

    def frames(self) -> Iterator[Tuple[int, np.ndarray]]:
        start, image = self._first
        self.read = start + 1
        yield start, image
        for index in range(start + 1, len(self.paths)):
            self.read = index + 1
            image = self._read(index, self.paths[index])
            if image is None:
                self.problems.append(self._skipped[-1])
            elif (image.shape[1], image.shape[0]) != self.size:
                reason = (f"{self.paths[index]}: {image.shape[1]}x{image.shape[0]}, not the first frame's "
                          f"{self.size[0]}x{self.size[1]}; skipped")
                logger.error("skipped: %s", reason)
                self.problems.append((str(self.paths[index]), reason))
            else:
                yield index, image



def open_source(video: "VideoInput", fps: Optional[float] = None,
                max_pixels: Optional[int] = MAX_PIXELS) -> VideoSource:
    """The :class:`VideoSource` of a :class:`paddleseg.deploy.inputs.VideoInput`; ``fps`` overrides
    the input's frame rate. DeployError if it cannot be opened or has no frame to read."""
    if video.kind == "camera":
        return open_camera(video.camera, fps, max_pixels)
    if video.kind == "frames":
        return FrameSequence(str(video.path), video.frames, fps, max_pixels)
    return open_video_file(video.path, fps, max_pixels)


def open_video_file(path: Path, fps: Optional[float] = None, max_pixels: Optional[int] = MAX_PIXELS) -> VideoSource:
    """A video file through OpenCV's FFmpeg backend (module docstring)."""
    try:
        handle = open_regular(path)
    except NotRegularFileError as e:
        raise DeployError(f"--video_path {e}") from e
    except OSError as e:
        raise DeployError(f"--video_path {path}: cannot be read ({e.strerror or e})") from e
    try:
        capture = cv2.VideoCapture(_descriptor_path(handle.fileno(), path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise DeployError(f"--video_path {path}: not a video OpenCV's FFmpeg backend can read (or a cut MP4, "
                              f"whose index is written last)")
        return _Capture(str(path), capture, fps, max_pixels, handle)
    except BaseException:
        handle.close()
        raise


def open_camera(index: int, fps: Optional[float] = None, max_pixels: Optional[int] = MAX_PIXELS) -> VideoSource:
    """Camera ``index`` (module docstring)."""
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise DeployError(f"--video_path {index}: camera {index} cannot be opened (no such device, no permission, "
                          f"or in use)")
    try:
        return _Capture(f"camera {index}", capture, fps, max_pixels, is_file=False)
    except BaseException:
        capture.release()
        raise


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def even_size(size: Tuple[int, int]) -> Tuple[int, int]:
    """The (width, height) an MP4 of frames of ``size`` has: each rounded up to an even number."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def remove_leftovers(folder: Path) -> List[Path]:
    """Delete the temporary MP4s of writers in ``folder`` whose process is gone (killed runs)."""
    removed = []
    for p in folder.iterdir() if folder.is_dir() else ():
        found = _PARTIAL.match(p.name)
        if found and int(found.group("pid")) != os.getpid() and not alive(int(found.group("pid"))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class Mp4Writer:
    """An MP4 of RGB frames written under a temporary name and renamed when closed (module docstring).
    ``frames`` counts what was written; a writer closed without frames leaves nothing."""

    def __init__(self, path: Path, fps: float, size: Tuple[int, int]):
        self.path, self.fps, self.size = Path(path), fps, tuple(size)
        self.frames = 0
        self.writer: Optional[cv2.VideoWriter] = None
        self._dir_fd: Optional[int] = None
        self._tmp = f".video-{os.getpid()}-{secrets.token_hex(4)}.partial.mp4"

    def open(self) -> "Mp4Writer":
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        remove_leftovers(folder)
        self._dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        # through the folder's descriptor: OpenCV cannot take a path that is not UTF-8
        target = f"{_descriptor_path(self._dir_fd, folder)}/{self._tmp}"
        self.writer = cv2.VideoWriter(target, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*MP4_FOURCC), self.fps,
                                      even_size(self.size))
        if not self.writer.isOpened():
            self._discard()
            raise DeployError(f"{self.path}: OpenCV cannot write an MPEG-4 video here")
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame of ``size``. A signal raised between the encoder taking the frame and
        the count would leave ``frames`` one short: the prediction loop holds Ctrl-C and SIGTERM around each
        frame's writes (:func:`paddleseg.deploy.pipeline._write_each`)."""
        pad_w, pad_h = self.size[0] % 2, self.size[1] % 2
        if pad_w or pad_h:
            rgb = cv2.copyMakeBorder(rgb, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> Optional[Path]:
        """Finish the file and rename it into place (signals held meanwhile); returns it, or None when no
        frame was written (nothing is left then)."""
        if self.writer is None:
            return None
        with interruptions_held():
            self.writer.release()
            self.writer = None
            if not self.frames:
                self._discard()
                return None
            os.replace(self._tmp, self.path.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            os.close(self._dir_fd)
            self._dir_fd = None
        return self.path

    def _discard(self) -> None:
        try:
            os.unlink(self._tmp, dir_fd=self._dir_fd)
        except FileNotFoundError:
            pass
        os.close(self._dir_fd)
        self._dir_fd = None

    def __enter__(self) -> "Mp4Writer":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
