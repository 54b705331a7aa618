"""Write the synthetic Cityscapes (official layout, then converted to train ids): the quick start's data;
and, with --clip N, a moving-camera clip of N frames with per-frame labels and its known motion
(docs/video.md).

    python tools/make_synthetic_cityscapes.py --out data/synthetic_cityscapes
    python tools/make_synthetic_cityscapes.py --out data/synthetic_cityscapes --clip 48 --clip_only

The clip goes to <out>/clip/: frames/frame_000000.png, labels/frame_000000.png (train ids), clip.mp4 and
cameras.json (each frame's affine, frame pixels to scene pixels).
"""
import sys
from pathlib import Path
from typing import Optional, Sequence

from paddleseg.datasets.synthetic import CLIP_FPS, write_synthetic_cityscapes, write_synthetic_clip
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, positive_float, positive_int, run


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/synthetic_cityscapes", help="output folder")
    parser.add_argument("--train", type=int, default=60, help="training images")
    parser.add_argument("--val", type=int, default=20, help="validation images")
    parser.add_argument("--test", type=int, default=0, help="test images")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--clip", type=positive_int, metavar="FRAMES",
                        help="also write a moving-camera clip to <out>/clip")
    parser.add_argument("--clip_size", type=positive_int, nargs=2, default=[256, 128], metavar=("W", "H"),
                        help="the clip's frame size (default 256 128: the scale of the training crops)")
    parser.add_argument("--clip_fps", type=positive_float, default=CLIP_FPS)
    parser.add_argument("--clip_only", action="store_true", help="write the clip only, not the data set")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.clip_only and not args.clip:
        parser.error("--clip_only needs --clip FRAMES")
    if not args.clip_only:
        root = write_synthetic_cityscapes(args.out, args.train, args.val, args.test, args.width, args.height,
                                          args.seed, args.workers)
        print(f"wrote {args.train} train, {args.val} val, {args.test} test scenes of {args.width}x{args.height} "
              f"to {root}")
    if args.clip:
        try:
            clip = write_synthetic_clip(Path(args.out) / "clip", args.clip, *args.clip_size, args.seed, args.clip_fps)
        except ValueError as e:
            parser.error(str(e))
        print(f"wrote a {args.clip}-frame clip of {args.clip_size[0]}x{args.clip_size[1]} to {clip}")


if __name__ == "__main__":
    sys.exit(run(main))
