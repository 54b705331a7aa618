"""Predict segmentation maps for images with a trained model.

    python predict.py --config configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml \
        --model_path output/best_model/model.pdparams --image_path photos/ --save_dir output/result

--image_path is an image, a folder (searched recursively) or a list file (.txt/.lst/.list: an image per
line, optionally followed by its label). Writes pseudo_color_prediction/ and added_prediction/ (and
label/, label_ids/ on request) under --save_dir, mirroring the input folders: <name>.png, or
<name>.<ext>.png where two inputs share a name. Inputs, names and pictures are tools/infer.py's
(paddleseg.deploy). Unreadable images, files that are not regular files and images above --max_pixels
are named and skipped; the run then exits 3 (130 Ctrl-C, 143 SIGTERM).

    python predict.py --config CONFIG --model_path M --video_path drive.mp4 --save_dir output/video \
        [--temporal_smoothing 0.7 --flow] [--save_labels] [--max_frames N]

--video_path is a video file, a folder or list of frames, or a camera index: writes
<stem>_overlay.mp4 (and with --save_labels <stem>/frame_000000.png and <stem>.json); a truncated
video exits 3 with the frames read written (docs/video.md).
"""
import sys
from typing import Optional, Sequence

from paddleseg.checkpoint import load_entire_model
from paddleseg.core.predict import PredictSettings, build_transforms, predict, predict_video, transform_configs
from paddleseg.cvlibs import Config
from paddleseg.deploy.images import MAX_PIXELS
from paddleseg.deploy.inputs import plan_outputs
from paddleseg.deploy.video_args import add_video_arguments, open_video, video_settings
from paddleseg.errors import UserError
from paddleseg.utils.cityscapes_labels import NUM_CLASSES
from paddleseg.utils.cli import (
    EXIT_OK,
    EXIT_SKIPPED,
    ArgumentParser,
    add_common_arguments,
    add_inference_arguments,
    positive_int,
    run,
    setup_logging,
)
from paddleseg.utils.device import set_device
from paddleseg.utils.signals import install_sigterm_handler
from paddleseg.utils.visualize import class_palette


def parse_args(argv: Optional[Sequence[str]] = None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="the training config (model and val transforms)")
    p.add_argument("--model_path", required=True, help="model.pdparams (ours or a released checkpoint)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image_path",
                        help="an image, a folder (searched recursively) or a list file (.txt/.lst/.list)")
    add_video_arguments(p, source)
    p.add_argument("--save_dir", default="output/result")
    add_inference_arguments(p, "--aug_pred")
    p.add_argument("--custom_color", type=int, nargs="+", help="palette override: r g b r g b ... (0..255)")
    p.add_argument("--save_label", action="store_true", help="also write raw train-id PNGs (label/)")
    p.add_argument("--label_ids", action="store_true",
                   help="also write Cityscapes label-id PNGs (label_ids/) for the test server")
    p.add_argument("--max_pixels", type=positive_int, default=MAX_PIXELS,
                   help=f"skip images whose header claims more pixels, without decoding them (default "
                        f"{MAX_PIXELS}, Pillow's decompression-bomb limit)")
    p.add_argument("--opts", nargs="+", default=[], help="config overrides key.sub=value")
    add_common_arguments(p)
    args = p.parse_args(argv)
    args.video = video_settings(args)
    if args.is_slide and (args.crop_size is None or args.stride is None):
        raise UserError("--is_slide needs --crop_size W H and --stride W H")
    colors = args.custom_color
    if colors is not None and (len(colors) % 3 or not all(0 <= c <= 255 for c in colors)):
        raise UserError(f"--custom_color {' '.join(map(str, colors))}: expected r g b triples of values 0..255")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    video = open_video(args, "none") if args.video_path is not None else None  # the model gives scores
    plan = plan_outputs(args.image_path, args.save_dir) if video is None else None
    set_device(args.device, args.cpu_threads)
    cfg = Config(args.config, opts=args.opts)
    model = cfg.model
    if args.label_ids and model.num_classes != NUM_CLASSES:
        raise UserError(f"--label_ids: Cityscapes label ids need a {NUM_CLASSES}-class model, this one has "
                        f"{model.num_classes} classes")
    load_entire_model(model, args.model_path)
    settings = PredictSettings(aug_pred=args.aug_pred, scales=args.scales, flip_horizontal=args.flip_horizontal,
                               flip_vertical=args.flip_vertical, is_slide=args.is_slide,
                               crop_size=args.crop_size, stride=args.stride)
    # --custom_color over the data set's colours (a config of tools/check_dataset.py) over Cityscapes'
    palette = class_palette(model.num_classes, cfg.palette, args.custom_color)
    if video is not None:
        with video.source:
            summary = predict_video(model, build_transforms(transform_configs(cfg)), video.stem, video.source,
                                    args.save_dir, palette, settings=settings, video=args.video)
        return EXIT_SKIPPED if summary.skipped else EXIT_OK
    summary = predict(model, build_transforms(transform_configs(cfg)), plan, args.save_dir,
                      palette, settings=settings,
                      save_label=args.save_label, label_ids=args.label_ids, max_pixels=args.max_pixels)
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


if __name__ == "__main__":
    install_sigterm_handler()
    sys.exit(run(main))
