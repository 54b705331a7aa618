"""int8, honestly: quantize an export with NNCF (post-training, calibrated on the config's training
images preprocessed as deploy.yaml says) and keep the int8 model only if it is both accurate and
faster than the best fp32/bf16 path on this machine.

    python tools/quantize.py --model_dir output/export --config configs/quickstart/espnetv2_synthetic.yml

It tries NNCF's default, its transformer scheme and a scheme leaving depthwise convolutions, PReLU,
average pooling and concatenations in floating point, then (if none keeps the accuracy) NNCF's
accuracy-control flow; scores each on the val set against the export's OpenVINO fp32 model and times
it, interleaved, against Paddle Inference, ONNX Runtime and OpenVINO fp32/bf16. The fastest int8 model
within --max_miou_drop points and --min_labels_equal is written into the export folder (model_int8.xml
+ .bin, recorded under Deploy.verified_precisions.openvino.int8; the folder is replaced whole) only if
it is at least --min_speedup times as fast as the best of the others; `tools/infer.py --backend
openvino --precision int8` then runs it.

Exit codes: 0 written; 2 nothing written, with one ``error:`` line that gives the numbers found (the
accuracy and the speed of the best int8 model against the best other path) or names a problem with the
arguments or the export; 130 Ctrl-C and 143 SIGTERM (nothing written either).
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from paddleseg.deploy.precision import MAX_MIOU_DROP, MIN_LABELS_EQUAL, AccuracyGate
from paddleseg.utils import cli
from paddleseg.utils.signals import install_sigterm_handler

CALIBRATION_IMAGES = 100


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--model_dir", required=True, type=Path, help="the folder export.py wrote (--onnx or --openvino)")
    p.add_argument("--config", required=True, type=Path, help="the model's config: its train set calibrates, its "
                                                              "val set checks")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--calibration_images", type=cli.positive_int, default=CALIBRATION_IMAGES,
                   help=f"training images to calibrate on, spread over the set (default {CALIBRATION_IMAGES})")
    p.add_argument("--max_miou_drop", type=cli.non_negative_float, default=MAX_MIOU_DROP, help="points (default 0.5)")
    p.add_argument("--min_labels_equal", type=cli.non_negative_float, default=MIN_LABELS_EQUAL,
                   help="share of pixels labelled as the fp32 model does (default 0.99)")
    p.add_argument("--min_speedup", type=cli.positive_float, default=None,
                   help="how much faster than the best fp32/bf16 path the int8 model must be (default 1.05)")
    p.add_argument("--input_shape", type=cli.positive_int, nargs=4, metavar=("N", "C", "H", "W"),
                   help="time at this size (default: the val images' size)")
    p.add_argument("--cpu_threads", type=cli.positive_int, default=2)
    p.add_argument("--warmup", type=cli.non_negative_int, default=3)
    p.add_argument("--repeats", type=cli.positive_int, default=50, help="timed rounds (default 50)")
    p.add_argument("--no_accuracy_control", action="store_true",
                   help="skip NNCF's accuracy-control flow (slow: it evaluates the val set many times)")
    cli.add_common_arguments(p)
    args = p.parse_args(argv)
    if args.input_shape is not None and args.input_shape[1] != 3:
        p.error(f"--input_shape {' '.join(map(str, args.input_shape))}: C must be 3")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    install_sigterm_handler()  # SIGTERM: exit 143, the export left as it was
    from paddleseg.core.deploy_check import val_samples
    from paddleseg.core.quantize import MIN_SPEEDUP, quantize_export
    from paddleseg.cvlibs import Config
    from paddleseg.utils.device import set_device

    set_device("cpu", args.cpu_threads)
    try:  # NNCF logs every layer it leaves alone at INFO; its warnings stay
        import nncf

        nncf.set_log_level(logging.WARNING)
    except ImportError:
        pass  # quantize_export says what to install
    cfg = Config(args.config, opts=args.opts)
    samples, num_classes, ignore_index = val_samples(cfg)
    train = [Path(image) for image, _ in cfg.train_dataset.file_list]
    step = max(1, len(train) // args.calibration_images)
    result = quantize_export(args.model_dir, calibration_images=train[::step][:args.calibration_images],
                             samples=samples, num_classes=num_classes, ignore_index=ignore_index,
                             gate=AccuracyGate(args.max_miou_drop, args.min_labels_equal),
                             min_speedup=args.min_speedup or MIN_SPEEDUP, threads=args.cpu_threads,
                             input_shape=args.input_shape, warmup=args.warmup, repeats=args.repeats,
                             accuracy_control=not args.no_accuracy_control)
    best = result.written
    print(f"int8 model written: {args.model_dir / 'model_int8.xml'} ({best.name}: mIoU drop {best.miou_drop:.2f} "
          f"points, {best.labels_equal:.2%} of the labels equal, {best.ms[0]:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
