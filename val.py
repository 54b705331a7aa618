"""Evaluate a checkpoint on the config's val set: mIoU, accuracy, Kappa, Dice and a per-class table.

    python val.py --config configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml --model_path model.pdparams
    python val.py --config ... --model_path output/run/best_model --aug_eval --scales 0.75 1.0 1.25 --flip_horizontal

`--model_path` takes our checkpoints (a folder or its model.pdparams) and both released formats
(upstream PaddleSeg's with an ESPNetV2 config, the reference reproduction's with an EESPNetHead config).
"""
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from paddleseg.core.report import GALLERY_IMAGES
from paddleseg.utils.atomic import atomic_write_text
from paddleseg.utils.cli import (
    ArgumentParser,
    add_common_arguments,
    add_inference_arguments,
    non_negative_int,
    run,
    setup_logging,
)
from paddleseg.utils.signals import install_sigterm_handler

logger = logging.getLogger("val")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--model_path", required=True,
                   help="checkpoint folder, .pdparams file, http(s):// URL or released model name")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    add_inference_arguments(p, "--aug_eval")
    p.add_argument("--json", type=Path, help="also write the scores as JSON here")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write an HTML report to DIR (index.html, charts, the worst images); DIR must be new, "
                        "empty or an earlier report: it is replaced whole")
    p.add_argument("--report_images", type=non_negative_int, default=GALLERY_IMAGES, metavar="N",
                   help="images with the lowest mIoU shown in the report (default %(default)s)")
    add_common_arguments(p)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    install_sigterm_handler()  # SIGTERM: exit 143, the report and --json written whole or not at all
    from paddle.distributed import get_rank

    from paddleseg.core.val import evaluate_checkpoint
    from paddleseg.cvlibs import Config

    cfg = Config(args.config, opts=args.opts)
    options = dict(cfg.test_config)
    for key in ("aug_eval", "flip_horizontal", "flip_vertical", "is_slide"):
        if getattr(args, key):
            options[key] = True
    if args.aug_eval or args.scales != [1.0]:
        options["scales"] = args.scales
    for key in ("crop_size", "stride"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    report = evaluate_checkpoint(cfg, args.model_path, device=args.device, num_workers=args.num_workers,
                                 precision=args.precision, cpu_threads=args.cpu_threads, report=args.report,
                                 report_images=args.report_images, **options)
    print(report["table"])
    print(f"mIoU={report['miou']:.4f} Acc={report['acc']:.4f} Kappa={report['kappa']:.4f} "
          f"Dice={report['dice']:.4f} images={report['images']}")
    if report.get("report"):
        print(f"report: {report['report']}")
    if args.json and get_rank() == 0:  # one writer on several ranks (they hold the same scores)
        atomic_write_text(args.json, json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
