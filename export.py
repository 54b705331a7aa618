"""Export a trained model for deployment: Paddle 3 static graph (model.json + model.pdiparams),
deploy.yaml and, with --onnx, model.onnx; with --openvino also an OpenVINO IR (model.xml + model.bin).

    python export.py --config configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml \
        --model_path output/best_model/model.pdparams --save_dir output/export --onnx
    python export.py --config configs/quickstart/espnetv2_synthetic.yml --model_path output/quickstart/best_model \
        --save_dir output/export --openvino --check_precisions

The result runs in Paddle Inference (oneDNN on), ONNX Runtime and OpenVINO; see tools/infer.py. It is
checked in each before it replaces an earlier export in --save_dir; a failed export leaves that one
unchanged. --check_precisions also measures every runtime and precision of this machine on the
config's val set (tools/deploy_check.py) and records in deploy.yaml those beyond fp32 that keep the
mIoU within --max_miou_drop points and --min_labels_equal of the labels (what --precision auto uses).
"""
import argparse
import sys
from typing import Optional, Sequence

# isort: off
import paddleseg  # noqa: F401  (first: it filters Paddle's harmless notices before Paddle is imported)
import paddle
# isort: on

from paddleseg.checkpoint import load_entire_model
from paddleseg.core.export import ONNX_OPSET, OUTPUT_OPS, PADDLE2ONNX_OPSETS, check_opset, check_save_dir, export_model
from paddleseg.core.predict import transform_configs
from paddleseg.cvlibs import Config
from paddleseg.deploy.precision import MAX_MIOU_DROP, MIN_LABELS_EQUAL, AccuracyGate
from paddleseg.utils.cli import (
    ArgumentParser,
    add_common_arguments,
    non_negative_float,
    positive_int,
    run,
    setup_logging,
)
from paddleseg.utils.signals import install_sigterm_handler


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--model_path", help="model.pdparams to export (default: the config's weights as built)")
    p.add_argument("--save_dir", default="output/export")
    p.add_argument("--input_shape", type=int, nargs=4, metavar=("N", "C", "H", "W"),
                   help="fixed input shape (default dynamic: -1 3 -1 -1)")
    p.add_argument("--output_op", choices=OUTPUT_OPS, default="argmax",
                   help="argmax: int32 label map (default); softmax: probabilities; none: logits")
    p.add_argument("--without_argmax", action="store_true", help="PaddleSeg's spelling of --output_op none")
    p.add_argument("--onnx", action="store_true", help=f"also write model.onnx (paddle2onnx, opset {ONNX_OPSET})")
    p.add_argument("--opset", type=int, default=ONNX_OPSET,
                   help=f"ONNX opset, {PADDLE2ONNX_OPSETS.start} to {PADDLE2ONNX_OPSETS.stop - 1} (default {ONNX_OPSET})")
    p.add_argument("--openvino", action="store_true",
                   help="also write an OpenVINO IR (model.xml + model.bin, float32 weights), converted from model.onnx "
                        "(implies --onnx)")
    p.add_argument("--check_precisions", action="store_true",
                   help="check every runtime and precision on the val set; record those that pass in deploy.yaml")
    p.add_argument("--max_miou_drop", type=non_negative_float, default=MAX_MIOU_DROP,
                   help="--check_precisions: mIoU points a precision may lose (default 0.5)")
    p.add_argument("--min_labels_equal", type=non_negative_float, default=MIN_LABELS_EQUAL,
                   help="--check_precisions: share of labels equal to the model's (default 0.99)")
    p.add_argument("--cpu_threads", type=positive_int, default=2, help="--check_precisions: CPU threads")
    p.add_argument("--opts", nargs="+", default=[], help="config overrides key.sub=value")
    add_common_arguments(p)
    args = p.parse_args(argv)
    if args.without_argmax:
        if args.output_op not in ("argmax", "none"):
            p.error("--without_argmax contradicts --output_op " + args.output_op)
        args.output_op = "none"
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    install_sigterm_handler()  # SIGTERM: exit 143, the previous export left as it was
    check_save_dir(args.save_dir)  # before the slow part; export_model checks again
    if args.onnx or args.openvino:
        check_opset(args.opset)
    paddle.set_device("cpu")  # tracing needs no accelerator; the graph is device-independent
    cfg = Config(args.config, opts=args.opts)
    model = cfg.model
    if args.model_path:
        load_entire_model(model, args.model_path)
    check = None
    if args.check_precisions:
        from paddleseg.core.deploy_check import export_precision_check

        check = export_precision_check(cfg, model, AccuracyGate(args.max_miou_drop, args.min_labels_equal),
                                       args.cpu_threads)
    export_model(model, args.save_dir, transforms=transform_configs(cfg), num_classes=model.num_classes,
                 input_shape=args.input_shape, output_op=args.output_op, onnx=args.onnx, opset=args.opset,
                 openvino=args.openvino, precision_check=check, palette=cfg.palette)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
