"""Predict segmentation maps for images with a trained model.

    python predict.py --config configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml \
        --model_path output/best_model/model.pdparams --image_path photos/ --save_dir output/result

Writes pseudo_color_prediction/ and added_prediction/ (and label/, label_ids/ on request) under
--save_dir, mirroring the input folders. Exits 1 at the end if any image could not be read.
"""
import argparse
import sys
from typing import Optional, Sequence

from paddleseg.core.predict import PredictSettings, build_transforms, predict, transform_configs
from paddleseg.cvlibs import Config
from paddleseg.utils.checkpoint import load_entire_model
from paddleseg.utils.cli import add_common_arguments, add_inference_arguments, run, setup_logging
from paddleseg.utils.device import set_device
from paddleseg.utils.visualize import get_palette


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the training config (model and val transforms)")
    p.add_argument("--model_path", required=True, help="model.pdparams (ours or a released checkpoint)")
    p.add_argument("--image_path", required=True, help="an image, a folder (searched recursively) or a list file")
    p.add_argument("--save_dir", default="output/result")
    add_inference_arguments(p, "--aug_pred")
    p.add_argument("--custom_color", type=int, nargs="+", help="palette override: r g b r g b ...")
    p.add_argument("--save_label", action="store_true", help="also write raw train-id PNGs (label/)")
    p.add_argument("--label_ids", action="store_true",
                   help="also write Cityscapes label-id PNGs (label_ids/) for the test server")
    p.add_argument("--opts", nargs="+", default=[], help="config overrides key.sub=value")
    add_common_arguments(p)
    args = p.parse_args(argv)
    if args.is_slide and (args.crop_size is None or args.stride is None):
        p.error("--is_slide needs --crop_size W H and --stride W H")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    set_device(args.device, args.cpu_threads)
    cfg = Config(args.config, opts=args.opts)
    model = cfg.model
    load_entire_model(model, args.model_path)
    settings = PredictSettings(aug_pred=args.aug_pred, scales=args.scales, flip_horizontal=args.flip_horizontal,
                               flip_vertical=args.flip_vertical, is_slide=args.is_slide,
                               crop_size=args.crop_size, stride=args.stride)
    summary = predict(model, build_transforms(transform_configs(cfg)), args.image_path, args.save_dir,
                      get_palette(model.num_classes, args.custom_color), settings=settings,
                      save_label=args.save_label, label_ids=args.label_ids)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(run(main))
