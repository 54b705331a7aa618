"""Inference on an exported model: needs only the export folder (deploy.yaml, model.json +
model.pdiparams and/or model.onnx) and the package's deployment runtime, ``paddleseg.deploy`` (numpy,
OpenCV, PyYAML, Pillow, and paddle.inference or onnxruntime: ``pip install .[deploy]`` has no Paddle).

    python tools/infer.py --model_dir output/export --image_path photos/ --save_dir output/infer
    python tools/infer.py --model_dir output/export --image_path photos/ --backend onnxruntime --benchmark
    python tools/infer.py --model_dir output/export --image_path photos/ --backend openvino --precision auto
    python tools/infer.py --model_dir output/export --image_path photos/ --device gpu --use_trt --precision fp16 \\
        --trt_min_shape 1 3 512 1024 --trt_opt_shape 1 3 1024 2048 --trt_max_shape 1 3 1024 2048

It also speaks upstream PaddleSeg's deploy/python/infer.py interface, as its TIPC scripts call it:

    python tools/infer.py --config output/export/deploy.yaml --image_path val.list --device cpu \\
        --enable_mkldnn True --cpu_threads 6 --batch_size 1 --use_trt False --benchmark True

--config names the export's deploy.yaml (its folder is --model_dir); every switch takes True/False
(true/false, 1/0) or stands alone; --batch_size N runs up to N images of the same input size at once
(the others wait for a partner or run alone at the end; labels equal those of batch 1);
--save_log_path appends the log and the benchmark table to a file; --with_argmax changes nothing (labels
always come from an argmax, the export's or one here); --print_detail shows Paddle Inference's config
summary and log; --model_name labels the benchmark table.

Inputs and outputs as predict.py (paddleseg.deploy.inputs, paddleseg.deploy.outputs): an image, a
folder or a list file (.txt/.lst/.list); pseudo_color_prediction/ and added_prediction/ (and label/,
label_ids/ on request) under --save_dir, mirroring the input folders. Unreadable images, files that
are not regular files and images above --max_pixels (read from the header, never decoded) are named
and skipped, and the run exits 3. --benchmark prints a latency table (model per batch, reading and
saving per image) and images/s.

On a GPU (``--device gpu``) nothing falls back to the CPU silently: a PaddlePaddle build without CUDA,
no visible card, or an onnxruntime without the CUDA provider (the CPU package) is an error. With
``--use_trt`` the paddle backend converts the PIR model once with ``paddle.tensorrt`` for a range of
input shapes (``--trt_min_shape/--trt_opt_shape/--trt_max_shape``, or the export's fixed size) and
``--precision``, and keeps the converted program in ``--trt_cache_dir`` for later runs; the
onnxruntime backend gives the same range and precision to its TensorRT provider.

``--backend openvino`` runs on the CPU at an explicit precision (paddleseg.deploy.precision): auto is
bf16 only where the CPU reports BF16 and deploy.yaml records bf16 as verified (export.py
--check_precisions), else fp32; int8 needs a verified int8 model (tools/quantize.py); fp16 is refused.
--ov_cache_dir keeps compiled models between runs, each checked before it is loaded.

--video_path (a video file, a folder or list of frames, a camera index) writes <stem>_overlay.mp4, and
with --save_labels a label PNG per frame and <stem>.json; --temporal_smoothing A [--flow] blends class
probabilities over time (an export with scores: --output_op softmax); see docs/video.md.

Exit codes (paddleseg.deploy.errors): 0 done; 2 a problem with the arguments, the export folder or the
GPU software (one ``error:`` line); 3 finished but skipped some inputs; 1 a bug; 130 Ctrl-C; 143 SIGTERM.
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import paddleseg  # noqa: F401  (first: it filters Paddle's harmless notices before a backend imports Paddle)
from paddleseg.deploy.backends import BACKENDS, BackendOptions, create_backend
from paddleseg.deploy.benchmark import Benchmark, latency_table
from paddleseg.deploy.config import load_deploy
from paddleseg.deploy.errors import EXIT_OK, EXIT_SKIPPED, TRUE_SPELLINGS, DeployError, run, stop_on_sigterm
from paddleseg.deploy.images import MAX_PIXELS
from paddleseg.deploy.inputs import plan_outputs
from paddleseg.deploy.openvino_settings import OV_HINTS, OpenVINOSettings
from paddleseg.deploy.outputs import OutputWriter, label_id_table, palette_table
from paddleseg.deploy.pipeline import READ, SAVE, labels_at_image_size, predict_images, predict_video, throughput
from paddleseg.deploy.precision import cli_precision
from paddleseg.deploy.preprocess import make_preprocess
from paddleseg.deploy.tensorrt_settings import (
    TRT_SHAPE_FLAGS,
    TensorRT,
    check_shape_range,
    default_trt_cache_dir,
    resolve_shape_range,
)
from paddleseg.deploy.video_args import add_video_arguments, open_video, video_settings
from paddleseg.utils.cli import ArgumentParser, positive_int

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def boolean(text: str) -> bool:
    """True/False as upstream's shell scripts spell them (also true/false, 1/0)."""
    try:
        return TRUE_SPELLINGS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected True or False (or true/false, 1/0), got {text!r}") from None


def add_switch(p: argparse.ArgumentParser, flag: str, help: str, default: Optional[bool] = False) -> None:
    """A boolean flag given bare (``--benchmark``) or with a value (``--benchmark True``), as upstream."""
    p.add_argument(flag, type=boolean, nargs="?", const=True, default=default, metavar="True|False", help=help)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", type=Path, help="the folder export.py wrote")
    source.add_argument("--config", type=Path, metavar="DEPLOY_YAML",
                        help="the export's deploy.yaml (upstream's spelling; its folder is the model folder)")
    inputs = p.add_mutually_exclusive_group(required=True)
    add_video_arguments(p, inputs)
    inputs.add_argument("--image_path", type=Path,
                        help="an image, a folder or a list file (.txt/.lst/.list; a label after the image is ignored)")
    p.add_argument("--save_dir", type=Path, default=Path("output/infer"))
    p.add_argument("--backend", choices=sorted(BACKENDS), default="paddle")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--cpu_threads", type=positive_int, default=2)
    p.add_argument("--batch_size", type=positive_int, default=1,
                   help="images per model run: images of the same input size go together, others one by one")
    add_switch(p, "--enable_mkldnn", "oneDNN on the CPU (paddle backend; default on)", default=None)
    add_switch(p, "--use_trt", "TensorRT (with --device gpu): the paddle backend converts the model once with "
                               "paddle.tensorrt and keeps it in --trt_cache_dir; onnxruntime uses its TensorRT "
                               "provider")
    p.add_argument("--precision", "--trt_precision", dest="precision", choices=["auto", "fp32", "bf16", "int8", "fp16"],
                   help="openvino: auto (default), fp32, bf16, int8; paddle and onnxruntime: fp32 (default), or fp16 "
                        "for the TensorRT engines (with --use_trt)")
    p.add_argument("--ov_hint", choices=sorted(OV_HINTS), help="openvino's performance hint (default latency)")
    p.add_argument("--ov_cache_dir", type=Path, help="openvino: keep compiled models here (checked before loading)")
    for flag, which in zip(TRT_SHAPE_FLAGS, ("smallest", "most frequent", "largest")):
        p.add_argument(flag, type=positive_int, nargs=4, metavar=("N", "C", "H", "W"),
                       help=f"the {which} input shape TensorRT builds for (N=1, C=3); the three go together, and are "
                            f"needed when the export takes any size and deploy.yaml has no Resize")
    p.add_argument("--trt_cache_dir", type=Path,
                   help=f"where converted TensorRT programs are kept between runs (default {default_trt_cache_dir()})")
    p.add_argument("--custom_color", type=int, nargs="+", help="palette override: r g b r g b ... (0..255)")
    add_switch(p, "--save_label", "also write label/ (train ids)")
    add_switch(p, "--label_ids", "also write label_ids/ (Cityscapes label ids)")
    add_switch(p, "--with_argmax", "upstream's flag: labels are always written, with an argmax here when the export "
                                   "has none, so it changes nothing")
    add_switch(p, "--print_detail", "print Paddle Inference's config summary and keep its log (paddle backend)")
    add_switch(p, "--benchmark", "time the model on the first batch and print a latency table")
    p.add_argument("--model_name", default="", help="a name shown in the --benchmark table (upstream's flag)")
    p.add_argument("--save_log_path", type=Path, help="also append the log and the --benchmark table to this file")
    p.add_argument("--max_pixels", type=positive_int, default=MAX_PIXELS,
                   help=f"skip images whose header claims more pixels, without decoding them (default {MAX_PIXELS})")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=positive_int, default=20)
    add_switch(p, "--debug", "show tracebacks")
    args = p.parse_args(argv)
    args.video = video_settings(args, args.batch_size)
    args.deploy_file = args.config if args.config is not None else args.model_dir / "deploy.yaml"
    args.model_dir = args.deploy_file.parent
    if args.use_trt and args.device != "gpu":
        raise DeployError("--use_trt needs --device gpu")
    ov_flags = [flag for flag in ("--ov_hint", "--ov_cache_dir") if getattr(args, flag[2:]) is not None]
    if ov_flags and args.backend != "openvino":
        raise DeployError(f"{', '.join(ov_flags)}: for --backend openvino only")
    args.precision = cli_precision(args.backend, args.precision, args.use_trt)
    if args.enable_mkldnn and (args.backend != "paddle" or args.device != "cpu"):
        raise DeployError("--enable_mkldnn applies only to the paddle backend on the CPU")
    if args.use_trt and args.batch_size > 1:
        raise DeployError("--batch_size above 1 with --use_trt: the TensorRT shape range has N=1")
    trt_flags = [flag for flag in (*TRT_SHAPE_FLAGS, "--trt_cache_dir") if getattr(args, flag.lstrip("-")) is not None]
    if trt_flags and not args.use_trt:
        raise DeployError(f"{', '.join(trt_flags)} without --use_trt: the TensorRT options apply only with it")
    if args.precision == "fp16" and not args.use_trt:
        raise DeployError("--precision fp16 needs --use_trt (tools/infer.py runs fp16 through TensorRT only)")
    args.trt_shapes = check_shape_range(args.trt_min_shape, args.trt_opt_shape, args.trt_max_shape)
    colors = args.custom_color
    if colors is not None and (len(colors) % 3 or not all(0 <= c <= 255 for c in colors)):
        raise DeployError(f"--custom_color {' '.join(map(str, colors))}: expected r g b triples of values 0..255")
    if args.warmup < 0:
        raise DeployError(f"--warmup {args.warmup}: expected an integer >= 0")
    return args


def set_up_logging(log_file: Optional[Path]) -> logging.Logger:
    """The run's log on stderr and the benchmark table on stdout; both also appended to ``log_file``.
    Returns the benchmark table's logger."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    table = logging.getLogger("infer.benchmark")
    table.propagate = False
    table.addHandler(logging.StreamHandler(sys.stdout))
    if log_file is not None:
        try:  # backslashreplace: a file name that is not UTF-8 is logged, not a logging error
            handler = logging.FileHandler(log_file, encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            raise DeployError(f"--save_log_path {log_file}: cannot be written ({e.strerror or e})") from e
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)
        table.addHandler(handler)
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    table_log = set_up_logging(args.save_log_path)
    deploy = load_deploy(args.deploy_file)
    if args.label_ids and not deploy.label_ids:
        raise DeployError("--label_ids: deploy.yaml has no label_ids (not a 19-class Cityscapes model)")
    fixed_n = deploy.input_shape[0]
    if args.batch_size > 1 and fixed_n != -1:
        raise DeployError(f"--batch_size {args.batch_size}: this export takes batches of {fixed_n} only (input_shape "
                          f"{list(deploy.input_shape)} in deploy.yaml); export again with N=-1, or use --batch_size 1")
    video = open_video(args, deploy.output_op) if args.video_path is not None else None
    plan = plan_outputs(args.image_path, args.save_dir) if video is None else None
    if args.device == "gpu":  # before anything else is asked of the user (such as a shape range)
        BACKENDS[args.backend].check_gpu(args.use_trt)
    trt = None
    if args.use_trt:
        trt = TensorRT(resolve_shape_range(deploy, args.trt_shapes), args.precision,
                       args.trt_cache_dir or default_trt_cache_dir())
    openvino = (OpenVINOSettings(args.precision, args.ov_hint or "latency", args.ov_cache_dir)
                if args.backend == "openvino" else None)
    options = BackendOptions(device=args.device, threads=args.cpu_threads, trt=trt, openvino=openvino,
                             mkldnn=args.enable_mkldnn is not False, print_detail=args.print_detail)
    backend = create_backend(args.backend, deploy, options)
    stop_on_sigterm()  # SIGTERM ends the run like Ctrl-C (exit 143); after the runtime's import, which sets its own
    palette = palette_table(deploy.palette, args.custom_color)
    benchmark = Benchmark(args.warmup, args.repeats) if args.benchmark else None
    preprocess, postprocess = make_preprocess(deploy.transforms), labels_at_image_size(deploy.output_op)
    if video is not None:
        with video.source:
            summary = predict_video(video.stem, video.source, backend, preprocess, args.save_dir, palette,
                                    postprocess=postprocess, output_op=deploy.output_op, settings=args.video,
                                    benchmark=benchmark, progress=True)
    else:
        writer = OutputWriter(args.save_dir, palette, save_label=args.save_label, save_label_ids=args.label_ids,
                              label_ids=label_id_table(deploy.label_ids or ()))
        summary = predict_images(plan, backend, preprocess, writer, postprocess=postprocess,
                                 max_pixels=args.max_pixels, batch_size=args.batch_size, benchmark=benchmark)
    if benchmark is not None and benchmark.model_times:
        name = f"{args.model_name}: " if args.model_name else ""
        first = " (the first batch)" if args.batch_size > 1 else ""
        stages = [("model (per batch)", benchmark.model_times), (READ, summary.stage_times[READ]),
                  (SAVE, summary.stage_times[SAVE])]
        table_log.info("%s%s, input %s%s, %d CPU thread(s), %d run(s) after %d warm-up:\n%s", name,
                       backend.described, list(benchmark.shape), first, args.cpu_threads, args.repeats, args.warmup,
                       latency_table(stages, benchmark.shape[0]))
        table_log.info(throughput(summary, benchmark))
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(run(main))
