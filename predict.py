"""Predict segmentation maps for images with a trained model.

    python predict.py --config configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml \
        --model_path output/best_model/model.pdparams --image_path photos/ --save_dir output/result

Writes pseudo_color_prediction/ and added_prediction/ (and label/, label_ids/ on request) under
--save_dir, mirroring the input folders: <name>.png, or <name>.<ext>.png where two inputs share a name.
Unreadable images and images above --max_pixels are named and skipped; the run then exits 3.
"""
import sys
from typing import Optional, Sequence

from paddleseg.core.predict import PredictSettings, build_transforms, plan_outputs, predict, transform_configs
from paddleseg.cvlibs import Config
from paddleseg.checkpoint import load_entire_model
from paddleseg.errors import UserError
from paddleseg.transforms.io import MAX_PIXELS
from paddleseg.utils.cli import (EXIT_OK, EXIT_SKIPPED, ArgumentParser, add_common_arguments, add_inference_arguments,
                                 positive_int, run, setup_logging)
from paddleseg.utils.device import set_device
from paddleseg.utils.visualize import get_palette


def parse_args(argv: Optional[Sequence[str]] = None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="the training config (model and val transforms)")
    p.add_argument("--model_path", required=True, help="model.pdparams (ours or a released checkpoint)")
    p.add_argument("--image_path", required=True, help="an image, a folder (searched recursively) or a list file")
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
    if args.is_slide and (args.crop_size is None or args.stride is None):
        raise UserError("--is_slide needs --crop_size W H and --stride W H")
    colors = args.custom_color
    if colors is not None and (len(colors) % 3 or not all(0 <= c <= 255 for c in colors)):
        raise UserError(f"--custom_color {' '.join(map(str, colors))}: expected r g b triples of values 0..255")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    plan = plan_outputs(args.image_path, args.save_dir)
    set_device(args.device, args.cpu_threads)
    cfg = Config(args.config, opts=args.opts)
    model = cfg.model
    load_entire_model(model, args.model_path)
    settings = PredictSettings(aug_pred=args.aug_pred, scales=args.scales, flip_horizontal=args.flip_horizontal,
                               flip_vertical=args.flip_vertical, is_slide=args.is_slide,
                               crop_size=args.crop_size, stride=args.stride)
    summary = predict(model, build_transforms(transform_configs(cfg)), plan, args.save_dir,
                      get_palette(model.num_classes, args.custom_color), settings=settings,
                      save_label=args.save_label, label_ids=args.label_ids, max_pixels=args.max_pixels)
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(run(main))
