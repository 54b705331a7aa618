"""Standalone inference on an exported model: needs only the export folder (deploy.yaml, model.json +
model.pdiparams and/or model.onnx) and numpy, cv2, yaml, Pillow and paddle.inference or onnxruntime.
It deliberately does not import the ``paddleseg`` package, so it can be shipped beside an exported
model alone; the preprocessing, palette and Cityscapes label ids come from deploy.yaml.

    python tools/infer.py --model_dir output/export --image_path photos/ --save_dir output/infer
    python tools/infer.py --model_dir output/export --image_path photos/ --backend onnxruntime --benchmark

Outputs as predict.py: pseudo_color_prediction/ and added_prediction/ (and label/, label_ids/ on
request) under --save_dir, mirroring the input folders, with predict.py's names (<name>.png, or
<name>.<ext>.png where two inputs share a name; '..' in a list entry written '__'). Unreadable images
and images above --max_pixels (read from the header, never decoded) are named and skipped, and the
run exits 3. --benchmark prints latency statistics.

Exit codes, as predict.py's: 0 done; 2 a problem with the arguments or the export folder (one
``error:`` line); 3 finished but skipped some images; 1 a bug; 130 Ctrl-C.
"""
import argparse
import logging
import os
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, List, NoReturn, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger("infer")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_SUFFIXES = (".txt", ".lst")
OUTPUT_FOLDERS = ("pseudo_color_prediction", "added_prediction", "label", "label_ids")
PARENT = "__"  # stands for ".." in the output name of a list entry outside the list's folder
OVERLAY_WEIGHT = 0.6  # share of the photo in the overlay, as predict.py
MAX_PIXELS = 2 * 89_478_485  # Pillow's decompression-bomb limit, as paddleseg.transforms.io
# exit codes, as paddleseg.utils.cli (this script does not import the package)
EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_SKIPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class DeployError(Exception):
    """A problem with the export folder or the arguments (exit status 2, no traceback)."""


class ImageError(Exception):
    """An input image that cannot be used: unreadable, or above the pixel limit (skipped)."""


class ArgumentParser(argparse.ArgumentParser):
    """Argument errors as DeployError: one ``error:`` line and exit 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        raise DeployError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


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
    named = [deploy.get("model"), deploy.get("params")] + ([deploy["onnx"]] if deploy.get("onnx") else [])
    missing = [str(name or "(not named)") for name in named if not name or not (model_dir / name).is_file()]
    if missing:
        raise DeployError(f"{model_dir}: incomplete export, missing {', '.join(missing)} (export it again)")
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


def header_pixels(path: Path) -> Tuple[int, str]:
    """Pixels claimed by ``path``'s header, read without decoding, and the size as text ('WxH', or ''
    when Pillow gives only the count). ImageError if the header is not an image's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
        return width * height, f"{width}x{height}"
    except Image.DecompressionBombError as e:  # above Pillow's own limit: its message has the count
        found = re.search(r"\((\d+) pixels\)", str(e))
        return (int(found.group(1)) if found else sys.maxsize), ""
    except FileNotFoundError as e:
        raise ImageError(f"{path}: file not found") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: unreadable or truncated image (not an image format Pillow knows)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: unreadable or truncated image ({e})") from e


def read_rgb(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB uint8 (H, W, 3); grey images expanded, alpha dropped. ImageError if unreadable or if its
    header claims more than ``max_pixels`` pixels (then nothing is decoded)."""
    pixels, size = header_pixels(path)
    if pixels > max_pixels:
        described = f"{size} = {pixels}" if size else str(pixels)
        raise ImageError(f"{path}: image of {described} pixels is above the limit of {max_pixels} pixels; "
                         f"not decoded (a decompression bomb?)")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{path}: unreadable or truncated image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def collect_images(image_path: Path, save_dir: Optional[Path] = None) -> Tuple[List[Path], Path]:
    """Images of a file, a folder (recursive; the output folders of ``save_dir`` left out) or a list
    file (.txt/.lst; a file listed twice once), and the root of their names. As predict.py."""
    if image_path.is_dir():
        outputs = [] if save_dir is None else [(save_dir / f).resolve() for f in OUTPUT_FOLDERS]
        images = sorted(p for p in image_path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not any(p.resolve() == o or o in p.resolve().parents for o in outputs))
        root = image_path
    elif image_path.is_file() and image_path.suffix.lower() in LIST_SUFFIXES:
        lines = [l.split()[0] for l in image_path.read_text(encoding="utf-8").splitlines() if l.strip()]
        seen, images = set(), []
        for p in (p if p.is_absolute() else image_path.parent / p for p in map(Path, lines)):
            if _absolute(p) not in seen:
                seen.add(_absolute(p))
                images.append(p)
        root = image_path.parent
    elif image_path.is_file():
        images, root = [image_path], image_path.parent
    else:
        raise DeployError(f"--image_path {image_path}: no such file or folder")
    if not images:
        raise DeployError(f"--image_path {image_path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return images, root


def relative_name(image: Path, root: Path) -> Path:
    """``image``'s path below ``root``; outside it, its relative path with each ``..`` written ``__``."""
    rel = Path(os.path.relpath(image, root))  # absolute, with ".." and "." resolved by name
    return Path(*(PARENT if part == ".." else part for part in rel.parts))


def output_names(images: Sequence[Path], root: Path) -> List[Path]:
    """``<relative path>`` with a ``.png`` suffix, or with ``.png`` appended where two images would
    share a name; DeployError if some still collide. As predict.py."""
    relative = [relative_name(p, root) for p in images]
    plain = [r.with_suffix(".png") for r in relative]
    shared = Counter(plain)
    names = [r.with_name(r.name + ".png") if shared[n] > 1 else n for r, n in zip(relative, plain)]
    taken, clashes = {}, []
    for image, name in zip(images, names):
        if name in taken:
            clashes.append(f"{taken[name]} and {image} -> {name}")
        taken.setdefault(name, image)
    if clashes:
        raise DeployError(f"{len(clashes)} output name(s) would be written twice: {'; '.join(clashes[:5])}; "
                          f"rename or move one of each pair")
    return names


def check_save_dir(save_dir: Path) -> None:
    for existing in (save_dir, *save_dir.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == save_dir else f" ({existing} is a file)"
                raise DeployError(f"--save_dir {save_dir}: not a folder{where}")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise DeployError(f"--save_dir {save_dir}: {existing} is not writable")
            return


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
    def write(folder: str, save) -> None:
        """Write through a temporary name and a rename: a killed run leaves no half-written image."""
        path = save_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
        try:
            if save(tmp) is False:
                raise OSError(f"{path}: could not be written")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    pseudo = Image.fromarray(label, mode="P")
    pseudo.putpalette(palette.flatten().tolist())
    write("pseudo_color_prediction", pseudo.save)
    added = cv2.addWeighted(image, OVERLAY_WEIGHT, palette[label], 1.0 - OVERLAY_WEIGHT, 0.0)
    write("added_prediction", lambda p: cv2.imwrite(str(p), cv2.cvtColor(added, cv2.COLOR_RGB2BGR)))
    if save_label:
        write("label", Image.fromarray(label, mode="L").save)
    if label_ids:
        table = np.zeros(256, dtype=np.uint8)
        table[:len(deploy["label_ids"])] = deploy["label_ids"]
        write("label_ids", Image.fromarray(table[label], mode="L").save)


def latency_report(times: Sequence[float]) -> str:
    t = np.asarray(times) * 1000.0
    return (f"latency over {len(t)} runs (warm-up excluded): median {np.median(t):.1f} ms, "
            f"p90 {np.percentile(t, 90):.1f} ms, mean {t.mean():.1f} ms, min {t.min():.1f} ms; "
            f"{1000.0 / np.median(t):.2f} images/s")


# ---------------------------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, type=Path, help="the folder export.py wrote")
    p.add_argument("--image_path", required=True, type=Path, help="an image, a folder or a list file")
    p.add_argument("--save_dir", type=Path, default=Path("output/infer"))
    p.add_argument("--backend", choices=sorted(BACKENDS), default="paddle")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--cpu_threads", type=positive_int, default=2)
    p.add_argument("--use_trt", action="store_true", help="TensorRT (GPU only)")
    p.add_argument("--trt_precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--custom_color", type=int, nargs="+", help="palette override: r g b r g b ... (0..255)")
    p.add_argument("--save_label", action="store_true")
    p.add_argument("--label_ids", action="store_true")
    p.add_argument("--benchmark", action="store_true", help="time the model on the first image")
    p.add_argument("--max_pixels", type=positive_int, default=MAX_PIXELS,
                   help=f"skip images whose header claims more pixels, without decoding them (default {MAX_PIXELS})")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=positive_int, default=20)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    if args.use_trt and args.device != "gpu":
        raise DeployError("--use_trt needs --device gpu")
    colors = args.custom_color
    if colors is not None and (len(colors) % 3 or not all(0 <= c <= 255 for c in colors)):
        raise DeployError(f"--custom_color {' '.join(map(str, colors))}: expected r g b triples of values 0..255")
    if args.warmup < 0:
        raise DeployError(f"--warmup {args.warmup}: expected an integer >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    deploy = load_deploy(args.model_dir)
    if args.label_ids and not deploy.get("label_ids"):
        raise DeployError("--label_ids: deploy.yaml has no label_ids (not a 19-class Cityscapes model)")
    check_save_dir(args.save_dir)
    images, root = collect_images(args.image_path, args.save_dir)
    names = output_names(images, root)
    preprocess = make_preprocess(deploy.get("transforms") or [])
    run_model = BACKENDS[args.backend](args.model_dir, deploy, args.device, args.cpu_threads, args.use_trt,
                                       args.trt_precision)
    palette = palette_table(deploy, args.custom_color)
    skipped = []
    times: List[float] = []
    for path, name in zip(images, names):
        try:
            image = read_rgb(path, args.max_pixels)
        except ImageError as e:
            logger.error("skipped: %s", e)
            skipped.append(str(e))
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
        save_outputs(label, image, name, args.save_dir, palette, deploy, args.save_label, args.label_ids)
    logger.info("%d image(s) written to %s; %d skipped", len(images) - len(skipped), args.save_dir, len(skipped))
    for reason in skipped:
        logger.error("skipped: %s", reason)
    return EXIT_SKIPPED if skipped else EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeployError as error:
        if "--debug" in sys.argv:
            raise
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
