"""The video flags of predict.py and tools/infer.py, defined and checked once.

    add_video_arguments(parser, group)   # group: the required, exclusive group of --image_path
    args.video = video_settings(args)    # checks them together; a VideoSettings for the pipeline
    video = open_video(args, output_op)  # in main, before the model is built: (stem, opened source)

``--video_path`` takes a video file, a folder or list file of frames, or a camera index
(:func:`paddleseg.deploy.inputs.collect_video`); ``--temporal_smoothing A`` the weight of the past in
the moving average of class probabilities (0, the default, is off; :mod:`paddleseg.deploy.smoothing`);
``--flow`` warps the past by optical flow first; ``--max_frames N`` stops after N frames; ``--fps``
sets the output's frame rate (default the input's, 25 for frames); ``--save_labels`` writes a label PNG
per frame and ``<stem>.json`` (``--save_label`` is the same switch, for images).
"""
import argparse
from typing import NamedTuple, Optional

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.inputs import plan_video
from paddleseg.deploy.pipeline import VideoSettings
from paddleseg.deploy.smoothing import check_scores
from paddleseg.deploy.video import VideoSource, open_source
from paddleseg.utils.cli import positive_float, positive_int

VIDEO_ONLY = ("--temporal_smoothing", "--flow", "--max_frames", "--fps")


def smoothing_weight(text: str) -> float:
    """``--temporal_smoothing``: a number from 0 (off) to below 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 (off) to below 1, got {text!r}")
    return value


def add_video_arguments(parser: argparse.ArgumentParser, source_group) -> None:
    """``--video_path`` into ``source_group`` (the required group of ``--image_path``), the others into
    ``parser``."""
    source_group.add_argument("--video_path", metavar="VIDEO|FOLDER|LIST|CAMERA",
                              help="a video file (mp4, avi, mkv, mov, ...: what OpenCV's FFmpeg reads), a folder or "
                                   "list file of frames, or a camera index; writes <stem>_overlay.mp4 under --save_dir")
    parser.add_argument("--temporal_smoothing", type=smoothing_weight, default=0.0, metavar="A",
                        help="video: blend each frame's class probabilities with the past ones, A the weight of the "
                             "past (0 = off, the default; 0.7 with --flow is a good start)")
    parser.add_argument("--flow", action="store_true",
                        help="video: carry the past probabilities along the optical flow (OpenCV DIS) before blending")
    parser.add_argument("--max_frames", type=positive_int, help="video: stop after this many frames")
    parser.add_argument("--fps", type=positive_float, help="video: the output's frame rate (default: the input's; "
                                                           "25 for frames)")
    parser.add_argument("--save_labels", dest="save_label", action="store_true",
                        help="video: also write a train-id PNG per frame (<stem>/frame_000000.png) and <stem>.json "
                             "(frames, frame rates, flicker); images: as --save_label")


def video_settings(args: argparse.Namespace, batch_size: int = 1) -> VideoSettings:
    """The :class:`VideoSettings` of parsed ``args``; DeployError for flags that do not go together."""
    if args.video_path is None:
        given = [flag for flag in VIDEO_ONLY if getattr(args, flag.lstrip("-")) not in (None, False, 0.0)]
        if given:
            raise DeployError(f"{', '.join(given)} apply to --video_path only")
        return VideoSettings()
    if args.flow and not args.temporal_smoothing:
        raise DeployError("--flow carries the past probabilities of --temporal_smoothing: give --temporal_smoothing "
                          "A > 0 too (0.7 is a good start)")
    if getattr(args, "label_ids", False):
        raise DeployError("--label_ids applies to images only (--image_path)")
    return VideoSettings(smoothing=args.temporal_smoothing, flow=args.flow, max_frames=args.max_frames,
                         save_labels=bool(args.save_label), batch_size=batch_size)


class OpenedVideo(NamedTuple):
    stem: str             # of the output names (paddleseg.deploy.inputs.video_stem)
    source: VideoSource   # opened: its first frame is read


def open_video(args: argparse.Namespace, output_op: Optional[str]) -> OpenedVideo:
    """``--video_path`` planned (``--save_dir`` checked), smoothing checked against the model's
    ``output_op`` (deploy.yaml's), and the input opened: every problem is found before a model is built."""
    video = plan_video(args.video_path, args.save_dir)
    if args.video.smoothing:
        check_scores(output_op)
    return OpenedVideo(video.stem, open_source(video, args.fps, args.max_pixels))
