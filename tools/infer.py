"""Standalone inference on an exported model: needs only the export folder (deploy.yaml, model.json +
model.pdiparams and/or model.onnx) and numpy, cv2, yaml, Pillow and paddle.inference or onnxruntime.
It deliberately does not import the ``paddleseg`` package, so it can be shipped beside an exported
model alone; the preprocessing, palette and Cityscapes label ids come from deploy.yaml.

    python tools/infer.py --model_dir output/export --image_path photos/ --save_dir output/infer
    python tools/infer.py --model_dir output/export --image_path photos/ --backend onnxruntime --benchmark

Outputs as predict.py: pseudo_color_prediction/ and added_prediction/ (and label/, label_ids/ on
request) under --save_dir, mirroring the input folders. --benchmark prints latency statistics.
"""
import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml
from PIL import Image

logger = logging.getLogger("infer")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
OVERLAY_WEIGHT = 0.6  # share of the photo in the overlay, as predict.py


class DeployError(Exception):
    """A problem with the export folder or the arguments (exit status 2, no traceback)."""


# ---------------------------------------------------------------------------------------------
# deploy.yaml and preprocessing
# ---------------------------------------------------------------------------------------------
def load_deploy(model_dir: Path) -> dict:
    path = model_dir / "deploy.yaml"
    if not path.is_file():
        raise DeployError(f"{path}: not found (is {model_dir} a folder written by export.py?)")
    deploy = yaml.safe_load(path.read_text(encoding="utf-8")).get("Deploy")
    if not isinstance(deploy, dict):
        raise DeployError(f"{path}: no 'Deploy' section")
    return deploy


def make_preprocess(transforms: Sequence[dict]) -> Callable[[np.ndarray], np.ndarray]:
    """RGB uint8 (H, W, 3) → (1, 3, h, w) float32, for the transform types an export may hold."""
    steps = []
    for t in transforms:
        kind = t.get("type")
        if kind == "Normalize":
            mean = np.asarray(t["mean"], dtype=np.float32)
            std = np.asarray(t["std"], dtype=np.float32)
            steps.append(lambda img, m=mean, s=std: (img.astype(np.float32) / np.float32(255.0) - m) / s)
        elif kind == "Resize" and not t.get("keep_ratio", False):
            size = tuple(int(v) for v in t["target_size"])  # [width, height]
            steps.append(lambda img, sz=size: cv2.resize(img, sz, interpolation=cv2.INTER_LINEAR))
        else:
            raise DeployError(f"deploy.yaml: transform {t!r} is not supported here (Normalize, Resize)")

    def preprocess(img: np.ndarray) -> np.ndarray:
        for step in steps:
            img = step(img)
        return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)

    return preprocess


def read_rgb(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); grey images expanded, alpha dropped. DeployError if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DeployError(f"{path}: unreadable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def collect_images(image_path: Path) -> Tuple[List[Path], Path]:
    """Images of a file, a folder (recursive) or a list file (.txt), and the root of their names."""
    if image_path.is_dir():
        return sorted(p for p in image_path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), image_path
    if image_path.is_file() and image_path.suffix.lower() in (".txt", ".lst"):
        lines = [l.split()[0] for l in image_path.read_text(encoding="utf-8").splitlines() if l.strip()]
        return [p if p.is_absolute() else image_path.parent / p for p in map(Path, lines)], image_path.parent
    if image_path.is_file():
        return [image_path], image_path.parent
    raise DeployError(f"--image_path {image_path}: no such file or folder")


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------
def paddle_predictor(model_dir: Path, deploy: dict, device: str, threads: int, use_trt: bool,
                     trt_precision: str) -> Callable[[np.ndarray], np.ndarray]:
    from paddle import inference

    config = inference.Config(str(model_dir / deploy["model"]), str(model_dir / deploy["params"]))
    if device == "gpu":
        config.enable_use_gpu(256, 0)
        if use_trt:
            precision = {"fp32": inference.PrecisionType.Float32,
                         "fp16": inference.PrecisionType.Half}[trt_precision]
            config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                          precision_mode=precision, use_static=False, use_calib_mode=False)
    else:
        config.disable_gpu()
        config.enable_mkldnn()  # oneDNN: the fast CPU path (exports of this project support it)
        config.set_cpu_math_library_num_threads(threads)
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(x: np.ndarray) -> np.ndarray:
        inp.copy_from_cpu(x)
        predictor.run()
        return out.copy_to_cpu()

    return run


def onnx_predictor(model_dir: Path, deploy: dict, device: str, threads: int, use_trt: bool,
                   trt_precision: str) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    if not deploy.get("onnx"):
        raise DeployError(f"{model_dir}: exported without --onnx (no model.onnx)")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device == "gpu":
        providers = (["TensorrtExecutionProvider"] if use_trt else []) + ["CUDAExecutionProvider"] + providers
    session = ort.InferenceSession(str(model_dir / deploy["onnx"]), options, providers=providers)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


BACKENDS = {"paddle": paddle_predictor, "onnxruntime": onnx_predictor}


def to_label(output: np.ndarray, output_op: str) -> np.ndarray:
    """(H, W) uint8 train ids from the model output of one image."""
    label = output[0] if output_op == "argmax" else output[0].argmax(axis=0)
    return label.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def palette_table(deploy: dict, custom_color: Optional[Sequence[int]]) -> np.ndarray:
    table = np.zeros((256, 3), dtype=np.uint8)
    colors = np.asarray(deploy.get("palette") or [], dtype=np.uint8).reshape(-1, 3)
    table[:len(colors)] = colors
    if custom_color:
        custom = np.asarray(custom_color, dtype=np.uint8).reshape(-1, 3)
        table[:len(custom)] = custom
    return table


def save_outputs(label: np.ndarray, image: np.ndarray, name: Path, save_dir: Path, palette: np.ndarray,
                 deploy: dict, save_label: bool, label_ids: bool) -> None:
    def target(folder: str) -> Path:
        path = save_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    pseudo = Image.fromarray(label, mode="P")
    pseudo.putpalette(palette.flatten().tolist())
    pseudo.save(target("pseudo_color_prediction"))
    added = cv2.addWeighted(image, OVERLAY_WEIGHT, palette[label], 1.0 - OVERLAY_WEIGHT, 0.0)
    cv2.imwrite(str(target("added_prediction")), cv2.cvtColor(added, cv2.COLOR_RGB2BGR))
    if save_label:
        Image.fromarray(label, mode="L").save(target("label"))
    if label_ids:
        if not deploy.get("label_ids"):
            raise DeployError("--label_ids: deploy.yaml has no label_ids (not a 19-class Cityscapes model)")
        table = np.zeros(256, dtype=np.uint8)
        table[:len(deploy["label_ids"])] = deploy["label_ids"]
        Image.fromarray(table[label], mode="L").save(target("label_ids"))


def latency_report(times: Sequence[float]) -> str:
    t = np.asarray(times) * 1000.0
    return (f"latency over {len(t)} runs (warm-up excluded): median {np.median(t):.1f} ms, "
            f"p90 {np.percentile(t, 90):.1f} ms, mean {t.mean():.1f} ms, min {t.min():.1f} ms; "
            f"{1000.0 / np.median(t):.2f} images/s")


# ---------------------------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, type=Path, help="the folder export.py wrote")
    p.add_argument("--image_path", required=True, type=Path, help="an image, a folder or a list file")
    p.add_argument("--save_dir", type=Path, default=Path("output/infer"))
    p.add_argument("--backend", choices=sorted(BACKENDS), default="paddle")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--use_trt", action="store_true", help="TensorRT (GPU only)")
    p.add_argument("--trt_precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--custom_color", type=int, nargs="+", help="palette override: r g b r g b ...")
    p.add_argument("--save_label", action="store_true")
    p.add_argument("--label_ids", action="store_true")
    p.add_argument("--benchmark", action="store_true", help="time the model on the first image")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    if args.use_trt and args.device != "gpu":
        p.error("--use_trt needs --device gpu")
    if args.custom_color and len(args.custom_color) % 3:
        p.error("--custom_color takes r g b triples")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    deploy = load_deploy(args.model_dir)
    preprocess = make_preprocess(deploy.get("transforms") or [])
    run_model = BACKENDS[args.backend](args.model_dir, deploy, args.device, args.cpu_threads, args.use_trt,
                                       args.trt_precision)
    palette = palette_table(deploy, args.custom_color)
    images, root = collect_images(args.image_path)
    failed = []
    times: List[float] = []
    for path in images:
        try:
            image = read_rgb(path)
        except DeployError as e:
            logger.error("skipped: %s", e)
            failed.append(path)
            continue
        x = preprocess(image)
        if args.benchmark and not times:
            for _ in range(args.warmup):
                run_model(x)
            for _ in range(args.repeats):
                start = time.perf_counter()
                run_model(x)
                times.append(time.perf_counter() - start)
            print(f"{args.backend} on {args.device}, input {list(x.shape)}: {latency_report(times)}")
        label = to_label(run_model(x), deploy["output_op"])
        if label.shape != image.shape[:2]:  # a Resize in the preprocessing
            label = cv2.resize(label, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        name = (path.resolve().relative_to(root.resolve()) if path.resolve().is_relative_to(root.resolve())
                else Path(path.name)).with_suffix(".png")
        save_outputs(label, image, name, args.save_dir, palette, deploy, args.save_label, args.label_ids)
    logger.info("%d image(s) written to %s; %d failed", len(images) - len(failed), args.save_dir, len(failed))
    for path in failed:
        logger.error("failed: %s", path)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeployError as error:
        if "--debug" in sys.argv:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
