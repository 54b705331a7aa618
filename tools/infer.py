"""Standalone inference on an exported model: needs only the export folder (deploy.yaml, model.json +
model.pdiparams and/or model.onnx) and numpy, cv2, yaml, Pillow and paddle.inference or onnxruntime.
It deliberately does not import the ``paddleseg`` package, so it can be shipped beside an exported
model alone; the preprocessing, palette and Cityscapes label ids come from deploy.yaml.

    python tools/infer.py --model_dir output/export --image_path photos/ --save_dir output/infer
    python tools/infer.py --model_dir output/export --image_path photos/ --backend onnxruntime --benchmark
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

Outputs as predict.py: pseudo_color_prediction/ and added_prediction/ (and label/, label_ids/ on
request) under --save_dir, mirroring the input folders, with predict.py's names (<name>.png, or
<name>.<ext>.png where two inputs share a name; '..' in a list entry written '__'). Unreadable images
and images above --max_pixels (read from the header, never decoded) are named and skipped, and the
run exits 3. --benchmark prints a latency table (model per batch, reading and saving per image) and
images/s.

On a GPU (``--device gpu``) nothing falls back to the CPU silently: a PaddlePaddle build without CUDA,
no visible card, or an onnxruntime without the CUDA provider (the CPU package) is an error. With
``--use_trt`` the paddle backend converts the PIR model once with ``paddle.tensorrt`` for a range of
input shapes (``--trt_min_shape/--trt_opt_shape/--trt_max_shape``, or the export's fixed size) and
``--precision``, and keeps the converted program in ``--trt_cache_dir`` for later runs; the
onnxruntime backend gives the same range and precision to its TensorRT provider.

Exit codes, as predict.py's: 0 done; 2 a problem with the arguments, the export folder or the GPU
software (one ``error:`` line); 3 finished but skipped some images; 1 a bug; 130 Ctrl-C.
"""
import argparse
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from paddleseg.utils import yaml_io  # standard library and PyYAML only: imports no Paddle

logger = logging.getLogger("infer")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_SUFFIXES = (".txt", ".lst", ".list")  # .list: PaddleSeg TIPC's lists
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
def load_deploy(deploy_file: Path) -> dict:
    """The ``Deploy`` section of an export's deploy.yaml; the files it names must sit beside it."""
    model_dir = deploy_file.parent
    if not deploy_file.is_file():
        raise DeployError(f"{deploy_file}: not found (is {model_dir} a folder written by export.py?)")
    try:
        deploy = (yaml_io.load_file(deploy_file) or {}).get("Deploy")
    except yaml_io.YAMLLimitError as e:  # an alias bomb, a recursive or too deep structure
        raise DeployError(f"{deploy_file}{yaml_io.position(e)}: refused: {yaml_io.problem(e)}") from e
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError) as e:
        raise DeployError(f"{deploy_file}: not an export's deploy.yaml ({one_line(e)})") from e
    except OSError as e:  # not a regular file, larger than a deploy.yaml can be, unreadable
        raise DeployError(f"{deploy_file}: cannot be read ({e.strerror or e})") from e
    if not isinstance(deploy, dict):
        raise DeployError(f"{deploy_file}: no 'Deploy' section")
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
    file (.txt/.lst/.list; a label path after an image ignored; a file listed twice once), and the root
    of their names. As predict.py."""
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
# GPU checks: a GPU run either runs on the GPU or stops with one line saying what is missing
# ---------------------------------------------------------------------------------------------
ORT_CUDA, ORT_TENSORRT = "CUDAExecutionProvider", "TensorrtExecutionProvider"


def one_line(error: BaseException) -> str:
    """An exception as one line: Paddle's C++ errors put their message after 'Error Message Summary'.
    (As paddleseg.core.export.first_line; this script does not import the package.)"""
    lines = [line.strip() for line in str(error).splitlines()]
    if "Error Message Summary:" in lines:
        lines = lines[lines.index("Error Message Summary:") + 1:]
    text = next((line for line in lines if line and not set(line) <= set("-=") and "Traceback" not in line),
                type(error).__name__)
    return f"{type(error).__name__}: {text}"[:400]


def check_paddle_gpu(use_trt: bool) -> None:
    """DeployError unless Paddle Inference can run on a CUDA card (and build TensorRT engines with
    ``use_trt``). Paddle's ``enable_use_gpu`` on a CPU build only logs and runs on the CPU."""
    import paddle
    from paddle import inference

    if not paddle.device.is_compiled_with_cuda():
        raise DeployError("--device gpu: this PaddlePaddle build has no CUDA support (install paddlepaddle-gpu "
                          "from Paddle's package index, see the README's GPU section), or use --device cpu")
    if paddle.device.cuda.device_count() == 0:
        raise DeployError("--device gpu: no CUDA card is visible to PaddlePaddle (check nvidia-smi and "
                          "CUDA_VISIBLE_DEVICES), or use --device cpu")
    if not use_trt:
        return
    compiled = tuple(inference.get_trt_compile_version())
    if not any(compiled):
        raise DeployError("--use_trt: this PaddlePaddle build was compiled without TensorRT (install a "
                          "paddlepaddle-gpu build with TensorRT, see the README's GPU section), or leave out --use_trt")
    try:
        runtime = tuple(inference.get_trt_runtime_version())
    except Exception as e:  # the TensorRT libraries are loaded on demand: missing ones fail here
        runtime, reason = (0, 0, 0), one_line(e)
    else:
        reason = "no TensorRT library found"
    if not any(runtime):
        wanted = ".".join(map(str, compiled))
        raise DeployError(f"--use_trt: PaddlePaddle was built with TensorRT {wanted} but cannot load it ({reason}); "
                          f"install it (pip install tensorrt=={wanted}), or leave out --use_trt")


def check_onnx_providers(use_trt: bool) -> List[str]:
    """The GPU execution providers a ``--device gpu`` run needs, best first; DeployError if this
    onnxruntime lacks one. The CPU package only warns when asked for them and runs on the CPU."""
    import onnxruntime as ort

    wanted = ([ORT_TENSORRT] if use_trt else []) + [ORT_CUDA]
    available = ort.get_available_providers()
    missing = [name for name in wanted if name not in available]
    if missing:
        raise DeployError(f"--device gpu: onnxruntime {ort.__version__} has no {' or '.join(missing)} (it has "
                          f"{', '.join(available)}): this is the CPU package; install onnxruntime-gpu instead, "
                          f"which cannot share an environment with it (pip uninstall -y onnxruntime onnxruntime-gpu, "
                          f"then pip install onnxruntime-gpu; see the README's GPU section), or use --device cpu")
    return wanted


# ---------------------------------------------------------------------------------------------
# TensorRT: the range of input shapes, and converted programs cached between runs
# ---------------------------------------------------------------------------------------------
TRT_WORKSPACE = 1 << 30  # bytes TensorRT may use while building an engine (Paddle's default)
TRT_SHAPE_FLAGS = ("--trt_min_shape", "--trt_opt_shape", "--trt_max_shape")
CACHE_MANIFEST = "manifest.json"  # written last: an entry without it is an interrupted conversion
CACHE_PREFIX = "model"  # <entry>/model.json, model.pdiparams and model/ (engine files), as paddle.tensorrt writes


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in shape)


@dataclass(frozen=True)
class ShapeRange:
    """The input shapes (N, C, H, W) a TensorRT engine is built for: any between ``min`` and ``max``,
    fastest at ``opt``."""
    min: Tuple[int, ...]
    opt: Tuple[int, ...]
    max: Tuple[int, ...]

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max))

    def __str__(self) -> str:
        if self.min == self.max:
            return shape_text(self.min)
        return f"{shape_text(self.min)} to {shape_text(self.max)} (best at {shape_text(self.opt)})"


@dataclass(frozen=True)
class TensorRT:
    """What ``--use_trt`` asks for: the shape range, ``fp32`` or ``fp16``, and where converted
    programs are kept."""
    shapes: ShapeRange
    precision: str
    cache_dir: Path


def default_trt_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paddleseg-infer" / "tensorrt"


def check_shape_range(min_shape: Optional[Sequence[int]], opt_shape: Optional[Sequence[int]],
                      max_shape: Optional[Sequence[int]]) -> Optional[ShapeRange]:
    """The range the three ``--trt_*_shape`` arguments give (None if none is given); DeployError
    unless all three are given, each N=1 (one image at a time) and C=3, with min <= opt <= max."""
    shapes = dict(zip(TRT_SHAPE_FLAGS, (min_shape, opt_shape, max_shape)))
    missing = [flag for flag, shape in shapes.items() if shape is None]
    if len(missing) == 3:
        return None
    if missing:
        raise DeployError(f"{' and '.join(missing)} missing: {', '.join(TRT_SHAPE_FLAGS[:2])} and "
                          f"{TRT_SHAPE_FLAGS[2]} go together (N C H W each)")
    for flag, shape in shapes.items():
        if shape[0] != 1:
            raise DeployError(f"{flag} {' '.join(map(str, shape))}: N must be 1 (tools/infer.py runs one image at a time)")
        if shape[1] != 3:
            raise DeployError(f"{flag} {' '.join(map(str, shape))}: C must be 3 (the model takes RGB images)")
    low, best, high = (tuple(int(v) for v in s) for s in (min_shape, opt_shape, max_shape))
    for axis, name in ((2, "H"), (3, "W")):
        if not low[axis] <= best[axis] <= high[axis]:
            raise DeployError(f"TensorRT shape range: {name} must be min <= opt <= max, got {low[axis]}, {best[axis]} "
                              f"and {high[axis]} ({', '.join(TRT_SHAPE_FLAGS)})")
    return ShapeRange(low, best, high)


def resize_size(deploy: dict) -> Optional[Tuple[int, int]]:
    """(H, W) every image is resized to by deploy.yaml's transforms, or None (the input keeps its size)."""
    sizes = [t["target_size"] for t in deploy.get("transforms") or [] if t.get("type") == "Resize"]
    return (int(sizes[-1][1]), int(sizes[-1][0])) if sizes else None


def resolve_shape_range(deploy: dict, given: Optional[ShapeRange]) -> ShapeRange:
    """The range to build for: ``given`` (checked against the export), else the one input size the
    export allows (a fixed ``input_shape`` or a Resize in deploy.yaml). DeployError if neither."""
    export_shape = [int(v) for v in deploy.get("input_shape") or (-1, 3, -1, -1)]
    resized = resize_size(deploy)
    if given is None:
        hw = resized or (tuple(export_shape[2:]) if min(export_shape[2:]) > 0 else None)
        if hw is None:
            raise DeployError(f"--use_trt: this export takes any input size (input_shape {export_shape} in "
                              f"deploy.yaml), so TensorRT needs the range of sizes to build for: give "
                              f"{', '.join(TRT_SHAPE_FLAGS)} (N C H W each), e.g. --trt_min_shape 1 3 256 512 "
                              f"--trt_opt_shape 1 3 1024 2048 --trt_max_shape 1 3 1024 2048")
        shape = (1, 3, *hw)
        return ShapeRange(shape, shape, shape)
    for axis, name in ((1, "C"), (2, "H"), (3, "W")):
        fixed = export_shape[axis]
        if fixed > 0 and not given.min[axis] == given.opt[axis] == given.max[axis] == fixed:
            raise DeployError(f"TensorRT shape range {given}: this export's input_shape is {export_shape} "
                              f"(deploy.yaml), so {name} must be {fixed} in all three of {', '.join(TRT_SHAPE_FLAGS)}")
    if resized and not given.contains((1, 3, *resized)):
        raise DeployError(f"TensorRT shape range {given}: deploy.yaml resizes every image to {resized[1]}x{resized[0]} "
                          f"(W x H), outside the range; give a range that holds 1 3 {resized[0]} {resized[1]}, or "
                          f"leave out {', '.join(TRT_SHAPE_FLAGS)}")
    return given


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_file_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary name, flushed, then a rename (flushed too)."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def cache_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the cache folder itself: one run converts at a time, the others wait
    and then find its result. The kernel drops the lock when the process dies."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another run that is converting into %s", folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def cache_entry_problem(entry: Path) -> Optional[str]:
    """Why the cache entry ``entry`` cannot be used (None if it can): its manifest names every file
    with its SHA-256 and the folder it was built in (the converted program names its engine files
    by absolute path, so a moved entry is stale)."""
    manifest = entry / CACHE_MANIFEST
    if not manifest.is_file():
        return "incomplete (an earlier conversion was interrupted)"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        built_in, files = recorded["entry"], dict(recorded["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable ({CACHE_MANIFEST}: {e})"
    if built_in != str(entry):
        return f"moved (built in {built_in})"
    for required in (f"{CACHE_PREFIX}.json", f"{CACHE_PREFIX}.pdiparams"):
        if required not in files:
            return f"without {required}"
    for name, digest in files.items():
        path = entry / name
        if not path.is_file():
            return f"missing {name}"
        if file_digest(path) != digest:
            return f"damaged ({name} changed since it was written)"
    return None


def foreign_files(entry: Path) -> List[str]:
    """Names at the top of ``entry`` that neither this script nor paddle.tensorrt writes there
    (it writes ``model`` and ``model.*``)."""
    return sorted(p.name for p in entry.iterdir()
                  if not (p.name in (CACHE_PREFIX, CACHE_MANIFEST) or p.name.startswith(f"{CACHE_PREFIX}.")
                          or p.name.startswith(f".{CACHE_MANIFEST}.partial-")))


def discard(entry: Path) -> None:
    try:
        shutil.rmtree(entry)
    except OSError as e:
        logger.warning("could not delete the unfinished TensorRT cache entry %s: %s", entry, e.strerror or e)


def cached_trt_program(cache_dir: Path, key: Dict, convert: Callable[[Path], None]) -> Path:
    """The prefix (``<entry>/model``: ``.json``, ``.pdiparams``, engine files in ``model/``) of the
    converted program for ``key``, from ``cache_dir``, or made by ``convert(prefix)`` and then kept.

    The entry's folder name is a digest of ``key`` (model files, shapes, precision, Paddle, TensorRT,
    GPU). The converted program refers to its engine files by absolute path, so it cannot be built
    elsewhere and renamed into place; instead the entry is complete once its manifest is written
    (through a rename), and all of this happens under a lock on ``cache_dir``. An entry without a
    manifest (a killed run), or one whose files changed, is deleted and converted again."""
    cache_dir = Path(os.path.abspath(cache_dir))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeployError(f"--trt_cache_dir {cache_dir}: cannot create it ({e.strerror or e})") from e
    if not cache_dir.is_dir() or not os.access(cache_dir, os.W_OK | os.X_OK):
        raise DeployError(f"--trt_cache_dir {cache_dir}: not a writable folder")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()
    entry = cache_dir / f"{key['backend']}-{key['precision']}-{digest[:24]}"
    prefix = entry / CACHE_PREFIX
    with cache_lock(cache_dir):
        if entry.exists():
            problem = cache_entry_problem(entry)
            if problem is None:
                logger.info("TensorRT program from the cache: %s", entry)
                return prefix
            foreign = foreign_files(entry)
            if foreign:
                raise DeployError(f"--trt_cache_dir: {entry} is {problem} and holds files tools/infer.py does "
                                  f"not write ({', '.join(foreign[:5])}); move them away or give another --trt_cache_dir")
            logger.warning("TensorRT cache entry %s is %s: converting again", entry, problem)
            try:
                shutil.rmtree(entry)
            except OSError as e:
                raise DeployError(f"--trt_cache_dir: {entry} is {problem} and cannot be deleted "
                                  f"({e.strerror or e}); delete it or give another --trt_cache_dir") from e
        entry.mkdir()
        try:
            convert(prefix)
            missing = [p.name for p in (prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams")) if not p.is_file()]
            if missing:
                raise DeployError(f"the TensorRT conversion wrote no {' or '.join(missing)} in {entry}")
            files = {}
            for path in sorted(p for p in entry.rglob("*") if p.is_file()):
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
                files[path.relative_to(entry).as_posix()] = file_digest(path)
            write_file_atomic(entry / CACHE_MANIFEST, json.dumps({"entry": str(entry), "key": key, "files": files},
                                                                 indent=1, sort_keys=True))
        except BaseException:
            discard(entry)  # this run made the entry: nothing half-written stays behind
            raise
    logger.info("TensorRT program converted and kept in %s", entry)
    return prefix


def paddle_trt_key(model_file: Path, params_file: Path, trt: TensorRT) -> Dict:
    """Everything a converted program depends on: engines are specific to the model, the shape range,
    the precision, the TensorRT and Paddle versions and the GPU model."""
    import paddle
    from paddle import inference

    major, minor = paddle.device.cuda.get_device_capability(0)
    return {"backend": "paddle", "model": file_digest(model_file), "params": file_digest(params_file),
            "shapes": [list(trt.shapes.min), list(trt.shapes.opt), list(trt.shapes.max)],
            "precision": trt.precision, "workspace": TRT_WORKSPACE,
            "paddle": f"{paddle.__version__} {paddle.version.commit}",
            "tensorrt": ".".join(map(str, inference.get_trt_runtime_version())),
            "gpu": f"{paddle.device.cuda.get_device_name(0)} sm{major}{minor}"}


def convert_with_paddle_tensorrt(model_file: Path, input_name: Optional[str], trt: TensorRT, prefix: Path) -> None:
    """Convert the PIR model ``model_file`` with ``paddle.tensorrt.convert`` for ``trt.shapes`` and
    ``trt.precision``, writing ``prefix``.json/.pdiparams and the engines in the folder ``prefix``."""
    import paddle
    from paddle import inference

    try:
        import tensorrt
        from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert
    except ImportError as e:
        wanted = ".".join(map(str, inference.get_trt_compile_version()))
        raise DeployError(f"--use_trt: paddle.tensorrt cannot be loaded ({one_line(e)}); it builds the engines with "
                          f"the TensorRT Python package: pip install tensorrt=={wanted}") from e
    runtime = tuple(inference.get_trt_runtime_version())
    python_side = tuple(int(v) for v in tensorrt.__version__.split(".")[:2])
    if python_side != runtime[:2]:
        raise DeployError(f"--use_trt: the tensorrt Python package is {tensorrt.__version__} but Paddle Inference "
                          f"runs TensorRT {'.'.join(map(str, runtime))}; an engine built by one does not load in the "
                          f"other: pip install tensorrt=={'.'.join(map(str, runtime))}")
    if trt.precision == "fp16" and not tensorrt.Builder(tensorrt.Logger(tensorrt.Logger.ERROR)).platform_has_fast_fp16:
        raise DeployError("--precision fp16: this GPU has no fast fp16, so TensorRT would build fp32 engines; "
                          "use --precision fp32")
    spec = Input(min_input_shape=trt.shapes.min, optim_input_shape=trt.shapes.opt, max_input_shape=trt.shapes.max,
                 input_data_type="float32", input_range=(-1.0, 1.0), name=input_name)
    config = TensorRTConfig(inputs=[spec])
    config.precision_mode = PrecisionMode.FP16 if trt.precision == "fp16" else PrecisionMode.FP32
    config.save_model_dir = str(prefix)  # a prefix: <prefix>.json, <prefix>.pdiparams, engines in <prefix>/
    config.workspace_size = TRT_WORKSPACE
    logger.info("Converting %s to TensorRT (%s, inputs %s); this takes a while once, later runs reuse it",
                model_file, trt.precision, trt.shapes)
    paddle.enable_static()  # paddle.tensorrt.convert loads the model with the static-graph API
    try:
        convert(str(model_file), config)
    except Exception as e:  # an operator TensorRT cannot take, a failed engine build, out of GPU memory
        raise DeployError(f"TensorRT conversion of {model_file} failed: {one_line(e)} (--debug shows the "
                          f"traceback; without --use_trt the model runs in Paddle Inference on the GPU)") from e
    finally:
        paddle.disable_static()


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------
def paddle_predictor(model_dir: Path, deploy: dict, device: str, threads: int, trt: Optional[TensorRT],
                     mkldnn: bool = True, print_detail: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Paddle Inference on ``device``; on the CPU with oneDNN unless ``mkldnn`` is False.
    ``print_detail`` keeps Paddle's own log (its passes and kernels) and prints the config summary."""
    from paddle import inference

    model_file, params_file = model_dir / deploy["model"], model_dir / deploy["params"]
    if device == "gpu":
        check_paddle_gpu(trt is not None)
    if trt is not None:
        if params_file.name != f"{model_file.stem}.pdiparams":  # paddle.tensorrt.convert takes a prefix
            raise DeployError(f"--use_trt: {params_file.name} must be named {model_file.stem}.pdiparams, after "
                              f"{model_file.name}, for paddle.tensorrt")
        key = paddle_trt_key(model_file, params_file, trt)
        prefix = cached_trt_program(trt.cache_dir, key, lambda out: convert_with_paddle_tensorrt(
            model_file, deploy.get("input_name"), trt, out))
        model_file, params_file = prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams")
    config = inference.Config(str(model_file), str(params_file))
    if device == "gpu":
        config.enable_use_gpu(256, 0)  # card 0 of CUDA_VISIBLE_DEVICES, as paddle.tensorrt.convert uses
    else:
        config.disable_gpu()
        if mkldnn:
            config.enable_mkldnn()  # oneDNN: the fast CPU path (exports of this project support it)
        else:
            config.disable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
    config.switch_ir_optim(True)
    if print_detail:
        print(config.summary())
    else:
        config.disable_glog_info()
    predictor = inference.create_predictor(config)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(x: np.ndarray) -> np.ndarray:
        inp.copy_from_cpu(x)
        predictor.run()
        return out.copy_to_cpu()

    return run


def onnx_trt_options(onnx_file: Path, input_name: str, trt: TensorRT) -> Dict:
    """ONNX Runtime's TensorRT provider options for ``trt``: its engine cache goes to a folder of
    ``trt.cache_dir`` named after the model, the shape range, the precision and the onnxruntime
    version (onnxruntime writes and checks the engine files there itself)."""
    import onnxruntime as ort

    key = {"backend": "onnxruntime", "model": file_digest(onnx_file), "precision": trt.precision,
           "shapes": [list(trt.shapes.min), list(trt.shapes.opt), list(trt.shapes.max)], "onnxruntime": ort.__version__}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()
    cache = Path(os.path.abspath(trt.cache_dir)) / f"onnxruntime-{trt.precision}-{digest[:24]}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeployError(f"--trt_cache_dir {trt.cache_dir}: cannot create {cache} ({e.strerror or e})") from e
    return {"trt_fp16_enable": trt.precision == "fp16", "trt_max_workspace_size": TRT_WORKSPACE,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
            "trt_profile_min_shapes": f"{input_name}:{shape_text(trt.shapes.min)}",
            "trt_profile_opt_shapes": f"{input_name}:{shape_text(trt.shapes.opt)}",
            "trt_profile_max_shapes": f"{input_name}:{shape_text(trt.shapes.max)}"}


def onnx_predictor(model_dir: Path, deploy: dict, device: str, threads: int,
                   trt: Optional[TensorRT]) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    if not deploy.get("onnx"):
        raise DeployError(f"{model_dir}: exported without --onnx (no model.onnx)")
    onnx_file = model_dir / deploy["onnx"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    wanted = check_onnx_providers(trt is not None) if device == "gpu" else []
    input_name = deploy.get("input_name") or "x"  # export.py always writes it; "x" is its name
    providers = [(name, onnx_trt_options(onnx_file, input_name, trt)) if name == ORT_TENSORRT else name
                 for name in wanted] + ["CPUExecutionProvider"]  # the CPU runs what the GPU providers cannot
    try:
        session = ort.InferenceSession(str(onnx_file), options, providers=providers)
    except Exception as e:
        if not wanted:
            raise
        raise DeployError(f"--device gpu: ONNX Runtime could not start {' and '.join(wanted)}: {one_line(e)}") from e
    lost = [name for name in wanted if name not in session.get_providers()]
    if lost:  # onnxruntime-gpu without the CUDA/cuDNN/TensorRT libraries it needs logs and runs on the CPU
        raise DeployError(f"--device gpu: ONNX Runtime {ort.__version__} could not start {' and '.join(lost)} "
                          f"(it would run on {', '.join(session.get_providers())}): the CUDA, cuDNN"
                          f"{' or TensorRT' if trt is not None else ''} libraries it needs are missing or of "
                          f"another version (see its log above)")
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


BACKENDS = {"paddle": paddle_predictor, "onnxruntime": onnx_predictor}
GPU_CHECKS = {"paddle": check_paddle_gpu, "onnxruntime": check_onnx_providers}


def to_labels(output: np.ndarray, output_op: str) -> np.ndarray:
    """(N, H, W) uint8 train ids from the model output of a batch: the export's argmax, or one here
    (upstream's --with_argmax) when it was exported with softmax or no output op."""
    labels = output if output_op == "argmax" else output.argmax(axis=1)
    return labels.astype(np.uint8)


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


def latency_table(stages: Sequence[Tuple[str, Sequence[float]]], batch_size: int) -> str:
    """A plain-text table of latency per stage (ms) and the model's images/s at its median."""
    header = f"{'stage':<24}{'runs':>6}{'median':>10}{'p90':>10}{'mean':>10}{'min':>10}"
    rows = [header, "-" * len(header)]
    for name, times in stages:
        if len(times):
            t = np.asarray(times) * 1000.0
            rows.append(f"{name:<24}{len(t):>6}{np.median(t):>10.1f}{np.percentile(t, 90):>10.1f}"
                        f"{t.mean():>10.1f}{t.min():>10.1f}")
    model = np.median(np.asarray(stages[0][1]))
    rows.append(f"model: {batch_size / model:.2f} images/s at the median (batch {batch_size}); times in ms")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
BOOL_SPELLINGS = {"true": True, "1": True, "false": False, "0": False}


def boolean(text: str) -> bool:
    """True/False as upstream's shell scripts spell them (also true/false, 1/0)."""
    try:
        return BOOL_SPELLINGS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected True or False (or true/false, 1/0), got {text!r}") from None


def add_switch(p: argparse.ArgumentParser, flag: str, help: str, default: Optional[bool] = False) -> None:
    """A boolean flag given bare (``--benchmark``) or with a value (``--benchmark True``), as upstream."""
    p.add_argument(flag, type=boolean, nargs="?", const=True, default=default, metavar="True|False", help=help)


@dataclass
class Item:
    """One readable image on its way through the model."""
    path: Path
    name: Path
    image: np.ndarray
    x: np.ndarray


def same_size_batches(items: Iterator[Item], batch_size: int) -> Iterator[List[Item]]:
    """Batches of up to ``batch_size`` items whose inputs have the same shape: a batch is run once
    full, and the incomplete ones at the end. Items of other sizes wait (at most batch_size - 1 each)."""
    waiting: Dict[Tuple[int, ...], List[Item]] = {}
    for item in items:
        group = waiting.setdefault(item.x.shape, [])
        group.append(item)
        if len(group) == batch_size:
            yield waiting.pop(item.x.shape)
    yield from waiting.values()


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", type=Path, help="the folder export.py wrote")
    source.add_argument("--config", type=Path, metavar="DEPLOY_YAML",
                        help="the export's deploy.yaml (upstream's spelling; its folder is the model folder)")
    p.add_argument("--image_path", required=True, type=Path,
                   help="an image, a folder or a list file (.txt/.lst/.list; a label path after the image is ignored)")
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
    p.add_argument("--precision", "--trt_precision", dest="precision", choices=["fp32", "fp16"], default="fp32",
                   help="precision of the TensorRT engines (fp16 needs --use_trt)")
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
    args.deploy_file = args.config if args.config is not None else args.model_dir / "deploy.yaml"
    args.model_dir = args.deploy_file.parent
    if args.use_trt and args.device != "gpu":
        raise DeployError("--use_trt needs --device gpu")
    if args.enable_mkldnn and (args.backend != "paddle" or args.device != "cpu"):
        raise DeployError("--enable_mkldnn applies only to the paddle backend on the CPU")
    if args.use_trt and args.batch_size > 1:
        raise DeployError("--batch_size above 1 with --use_trt: the TensorRT shape range has N=1")
    trt_flags = [flag for flag in (*TRT_SHAPE_FLAGS, "--trt_cache_dir")
                 if getattr(args, flag.lstrip("-")) is not None]
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    table = logging.getLogger("infer.benchmark")
    table.propagate = False
    table.addHandler(logging.StreamHandler(sys.stdout))
    if log_file is not None:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as e:
            raise DeployError(f"--save_log_path {log_file}: cannot be written ({e.strerror or e})") from e
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger().addHandler(handler)
        table.addHandler(handler)
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    table_log = set_up_logging(args.save_log_path)
    # Paddle's notice at import about ccache (for compiling custom operators) is harmless: filtered as
    # paddleseg/utils/quiet.py does, which this script cannot import; user -W settings still win
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning,
                            module=r"paddle\.utils\.cpp_extension\.extension_utils\Z", append=True)
    deploy = load_deploy(args.deploy_file)
    if args.label_ids and not deploy.get("label_ids"):
        raise DeployError("--label_ids: deploy.yaml has no label_ids (not a 19-class Cityscapes model)")
    fixed_n = (deploy.get("input_shape") or [-1])[0]
    if args.batch_size > 1 and fixed_n != -1:
        raise DeployError(f"--batch_size {args.batch_size}: this export takes batches of {fixed_n} only (input_shape "
                          f"{deploy['input_shape']} in deploy.yaml); export again with N=-1, or use --batch_size 1")
    check_save_dir(args.save_dir)
    images, root = collect_images(args.image_path, args.save_dir)
    names = output_names(images, root)
    preprocess = make_preprocess(deploy.get("transforms") or [])
    if args.device == "gpu":  # before anything else is asked of the user (such as a shape range)
        GPU_CHECKS[args.backend](args.use_trt)
    trt = None
    if args.use_trt:
        trt = TensorRT(resolve_shape_range(deploy, args.trt_shapes), args.precision,
                       args.trt_cache_dir or default_trt_cache_dir())
    make_predictor = BACKENDS[args.backend]
    if args.backend == "paddle":
        make_predictor = functools.partial(paddle_predictor, mkldnn=args.enable_mkldnn is not False,
                                           print_detail=args.print_detail)
    run_model = make_predictor(args.model_dir, deploy, args.device, args.cpu_threads, trt)
    described = f"{args.backend}{f' + TensorRT {trt.precision}' if trt else ''} on {args.device}"
    palette = palette_table(deploy, args.custom_color)
    skipped: List[str] = []
    stage_times: Dict[str, List[float]] = {"read + preprocess": [], "postprocess + save": []}

    def readable() -> Iterator[Item]:
        for path, name in zip(images, names):
            start = time.perf_counter()
            try:
                image = read_rgb(path, args.max_pixels)
                x = preprocess(image)
                if trt is not None and not trt.shapes.contains(x.shape):
                    raise ImageError(f"{path}: its input {shape_text(x.shape)} is outside the TensorRT shape range "
                                     f"{trt.shapes} (widen {TRT_SHAPE_FLAGS[0]} or {TRT_SHAPE_FLAGS[2]})")
            except ImageError as e:
                logger.error("skipped: %s", e)
                skipped.append(str(e))
                continue
            stage_times["read + preprocess"].append(time.perf_counter() - start)
            yield Item(path, name, image, x)

    model_times: List[float] = []
    for batch in same_size_batches(readable(), args.batch_size):
        x = np.concatenate([item.x for item in batch]) if len(batch) > 1 else batch[0].x
        if args.benchmark and not model_times:
            for _ in range(args.warmup):
                run_model(x)
            for _ in range(args.repeats):
                start = time.perf_counter()
                run_model(x)
                model_times.append(time.perf_counter() - start)
        labels = to_labels(run_model(x), deploy["output_op"])
        for item, label in zip(batch, labels):
            start = time.perf_counter()
            if label.shape != item.image.shape[:2]:  # a Resize in the preprocessing
                label = cv2.resize(label, (item.image.shape[1], item.image.shape[0]), interpolation=cv2.INTER_NEAREST)
            save_outputs(label, item.image, item.name, args.save_dir, palette, deploy, args.save_label, args.label_ids)
            stage_times["postprocess + save"].append(time.perf_counter() - start)
    if model_times:
        name = f"{args.model_name}: " if args.model_name else ""
        first = " (the first batch)" if args.batch_size > 1 else ""
        table_log.info("%s%s, input %s%s, %d CPU thread(s), %d run(s) after %d warm-up:\n%s", name, described,
                       list(x.shape), first, args.cpu_threads, args.repeats, args.warmup,
                       latency_table([("model (per batch)", model_times), *stage_times.items()], len(x)))
    logger.info("%d image(s) written to %s; %d skipped", len(images) - len(skipped), args.save_dir, len(skipped))
    for reason in skipped:
        logger.error("skipped: %s", reason)
    return EXIT_SKIPPED if skipped else EXIT_OK


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether ``--debug`` (bare, or followed by a true spelling) is among ``argv``, before parsing."""
    for i, arg in enumerate(argv):
        if arg == "--debug":
            following = argv[i + 1] if i + 1 < len(argv) else ""
            return BOOL_SPELLINGS.get(following.lower(), True)
        if arg.startswith("--debug="):
            return BOOL_SPELLINGS.get(arg.split("=", 1)[1].lower(), True)
    return False


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeployError as error:
        if debug_requested(sys.argv[1:]):
            raise
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
