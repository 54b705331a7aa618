"""Every runtime and precision this machine offers for an export, in one table: model-only latency
(median/p90) at the val size and at --input_shape, end-to-end images/s, labels equal to the dygraph
model's, mIoU on the config's val set (official definition) and its drop against the dygraph model.

    python tools/deploy_check.py --model_dir output/export --config configs/quickstart/espnetv2_synthetic.yml \\
        --model_path output/quickstart/best_model --json output/deploy_check.json

Paths: Paddle Inference fp32, ONNX Runtime fp32 (with model.onnx), OpenVINO fp32, bf16 (where the CPU
reports BF16) and int8 (where deploy.yaml records a verified int8 model). Runs are interleaved, so
other programs' load falls on every path alike. A path the export offers (fp32, or a precision
deploy.yaml records as verified) that drops more than --max_miou_drop points or labels fewer than
--min_labels_equal of the pixels as the dygraph model does fails the check: the table and JSON are
still written, then the run exits 2. (Paddleseg.core.deploy_check; export.py --check_precisions
records the precisions that pass.)
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from paddleseg.deploy.precision import MAX_MIOU_DROP, MIN_LABELS_EQUAL, AccuracyGate
from paddleseg.utils import cli
from paddleseg.utils.atomic import atomic_write_text
from paddleseg.utils.signals import install_sigterm_handler


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--model_dir", required=True, type=Path, help="the folder export.py wrote")
    p.add_argument("--config", required=True, type=Path, help="the model's config (its val set is used)")
    p.add_argument("--model_path", required=True, help="the trained weights (the dygraph reference)")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--input_shape", type=cli.positive_int, nargs=4, default=[1, 3, 512, 1024], metavar=("N", "C", "H", "W"),
                   help="a second size to time the model at (default 1 3 512 1024)")
    p.add_argument("--cpu_threads", type=cli.positive_int, default=2)
    p.add_argument("--max_miou_drop", type=cli.non_negative_float, default=MAX_MIOU_DROP, help="points (default 0.5)")
    p.add_argument("--min_labels_equal", type=cli.non_negative_float, default=MIN_LABELS_EQUAL,
                   help="share of pixels labelled as the dygraph model does (default 0.99)")
    p.add_argument("--warmup", type=cli.non_negative_int, default=3)
    p.add_argument("--repeats", type=cli.non_negative_int, default=20, help="timed rounds (0: no latencies)")
    p.add_argument("--e2e_images", type=cli.non_negative_int, default=20,
                   help="val images for the end-to-end rate (0: not measured)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    cli.add_common_arguments(p)
    args = p.parse_args(argv)
    if args.input_shape[1] != 3:
        p.error(f"--input_shape {' '.join(map(str, args.input_shape))}: C must be 3")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    install_sigterm_handler()
    from paddleseg.checkpoint import load_entire_model
    from paddleseg.core.deploy_check import PrecisionCheckFailed, check_deploy, failure_message, val_samples
    from paddleseg.cvlibs import Config
    from paddleseg.deploy.config import load_deploy
    from paddleseg.utils.device import set_device

    set_device("cpu", args.cpu_threads)
    deploy = load_deploy(args.model_dir / "deploy.yaml")
    cfg = Config(args.config, opts=args.opts)
    samples, num_classes, ignore_index = val_samples(cfg)
    model = cfg.model
    load_entire_model(model, args.model_path)
    result = check_deploy(deploy, model, samples, num_classes=num_classes, ignore_index=ignore_index,
                          gate=AccuracyGate(args.max_miou_drop, args.min_labels_equal), threads=args.cpu_threads,
                          input_shape=args.input_shape, warmup=args.warmup, repeats=args.repeats,
                          e2e_images=args.e2e_images)
    print(result.table())
    if args.json:
        atomic_write_text(args.json, json.dumps(result.as_dict(), indent=2))
    if result.failures:
        raise PrecisionCheckFailed(f"{args.model_dir}: {failure_message(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
