"""labelme annotations (one JSON file per image, shapes with a label each) to class-id masks.

    ids = label_ids(label_names, existing={"_background_": 0, "cat": 1})   # label -> class id
    mask = rasterize(read_labelme("a.json"), ids)                           # uint8 (H, W)

Shapes are drawn the way labelme draws them (``labelme.utils.shape_to_mask``): each shape on its own
canvas with PIL, polygons and rectangles filled and outlined, circles as the disc through the second
point, lines and line strips 10 pixels wide, points as discs of radius 5, masks pasted at their box;
then, in file order, a later shape's pixels overwrite an earlier one's. Pixels no shape covers are
``_background_`` (id 0); the label ``__ignore__`` marks ignored pixels.

The label map (``label_map.json``: ``{"_background_": 0, "cat": 1, ...}``) fixes the ids: a map given
again keeps every id it has and appends the labels it lacks, in name order, so a second batch of
annotations gets the same ids as the first.
"""
import base64
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from paddleseg.errors import DatasetError
from paddleseg.utils.regular_file import read_text

PathLike = Union[str, Path]
BACKGROUND = "_background_"
IGNORE_LABEL = "__ignore__"
LINE_WIDTH = 10
POINT_RADIUS = 5
MAX_JSON_BYTES = 256 << 20  # embedded image data included


@dataclass
class Shape:
    label: str
    shape_type: str
    points: List[Tuple[float, float]]
    mask: Optional[np.ndarray] = None  # bool (h, w) of a 'mask' shape, placed at points[0]


@dataclass
class LabelmeFile:
    """One annotation file: its image (a path beside it, and/or the embedded bytes), size and shapes."""

    path: str
    image_path: Optional[str]
    image_data: Optional[bytes]
    height: int
    width: int
    shapes: List[Shape] = field(default_factory=list)


def _decode_mask(text: str, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(base64.b64decode(text))) as im:
            return np.asarray(im.convert("L")) > 0
    except (ValueError, OSError) as e:
        raise DatasetError(f"{where}: the embedded mask cannot be decoded ({e})") from e


def read_labelme(path: PathLike) -> LabelmeFile:
    """Parse a labelme JSON file; DatasetError naming the file (and the shape) for anything unusable."""
    try:
        raw = json.loads(read_text(path, MAX_JSON_BYTES))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from e
    except ValueError as e:
        raise DatasetError(f"{path}: not a JSON file ({e})") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("shapes"), list):
        raise DatasetError(f"{path}: not a labelme file (no 'shapes' list)")
    try:
        height, width = int(raw["imageHeight"]), int(raw["imageWidth"])
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: imageHeight and imageWidth must be integers") from e
    if height <= 0 or width <= 0:
        raise DatasetError(f"{path}: image size {width}x{height} is not positive")
    image_path = raw.get("imagePath")
    image = str(Path(path).parent / image_path) if isinstance(image_path, str) and image_path else None
    data = None
    if raw.get("imageData"):
        try:
            data = base64.b64decode(raw["imageData"], validate=False)
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path}: imageData is not base64 ({e})") from e
    shapes = []
    for n, s in enumerate(raw["shapes"]):
        where = f"{path}: shapes[{n}]"
        if not isinstance(s, dict) or not isinstance(s.get("label"), str):
            raise DatasetError(f"{where}: a shape needs a 'label' string")
        kind = s.get("shape_type") or "polygon"
        try:
            points = [(float(p[0]), float(p[1])) for p in s.get("points") or []]
        except (TypeError, ValueError, IndexError) as e:
            raise DatasetError(f"{where}: points must be [x, y] pairs") from e
        if any(not (math.isfinite(x) and math.isfinite(y)) for x, y in points):
            raise DatasetError(f"{where}: points must be finite numbers")
        needed = {"polygon": 3, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 2, "point": 1, "mask": 2}
        if kind not in needed:
            raise DatasetError(f"{where}: unknown shape_type {kind!r} (known: {', '.join(needed)})")
        if len(points) < needed[kind] or (kind in ("rectangle", "circle", "line", "point", "mask")
                                          and len(points) != needed[kind]):
            raise DatasetError(f"{where}: a {kind} needs {'at least ' if kind in ('polygon', 'linestrip') else ''}"
                               f"{needed[kind]} point(s), got {len(points)}")
        mask = _decode_mask(s.get("mask") or "", where) if kind == "mask" else None
        shapes.append(Shape(s["label"], kind, points, mask))
    return LabelmeFile(str(path), image, data, height, width, shapes)


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """The pixels of one shape as a bool (H, W) array, drawn as labelme draws it (module docstring)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    xy = shape.points
    kind = shape.shape_type
    if kind == "polygon":
        draw.polygon(xy, fill=1, outline=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=1, outline=1)
    elif kind == "circle":
        (cx, cy), (px, py) = xy
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1, outline=1)
    elif kind in ("line", "linestrip"):
        draw.line(xy, fill=1, width=LINE_WIDTH)
    elif kind == "point":
        (cx, cy), = xy
        draw.ellipse([cx - POINT_RADIUS, cy - POINT_RADIUS, cx + POINT_RADIUS, cy + POINT_RADIUS], fill=1, outline=1)
    mask = np.asarray(canvas, dtype=bool).copy()
    if kind == "mask" and shape.mask is not None:
        x0, y0 = (int(v) for v in xy[0])
        h = max(0, min(shape.mask.shape[0], height - max(y0, 0)))
        w = max(0, min(shape.mask.shape[1], width - max(x0, 0)))
        sy, sx = max(0, -y0), max(0, -x0)
        mask[max(y0, 0):max(y0, 0) + h - sy, max(x0, 0):max(x0, 0) + w - sx] = shape.mask[sy:h, sx:w]
    return mask


def rasterize(annotation: LabelmeFile, ids: Dict[str, int], ignore_index: int = 255) -> np.ndarray:
    """uint8 (H, W) class ids of ``annotation``: background where no shape is, shapes in file order."""
    label = np.full((annotation.height, annotation.width), ids.get(BACKGROUND, 0), dtype=np.uint8)
    for shape in annotation.shapes:
        value = ignore_index if shape.label == IGNORE_LABEL else ids.get(shape.label)
        if value is None:
            raise DatasetError(f"{annotation.path}: label {shape.label!r} is not in the label map")
        label[shape_mask(shape, annotation.height, annotation.width)] = value
    return label


# ------------------------------------------------------------------------------------------------
# the label map
# ------------------------------------------------------------------------------------------------
def read_label_map(path: PathLike) -> Dict[str, int]:
    """A label map file (module docstring); DatasetError naming the file for anything else."""
    try:
        raw = json.loads(read_text(path, 1 << 20))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"--label_map {path}: cannot be read ({getattr(e, 'strerror', None) or e})") from e
    except ValueError as e:
        raise DatasetError(f"--label_map {path}: not a JSON file ({e})") from e
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                            for k, v in raw.items()):
        raise DatasetError(f"--label_map {path}: expected an object of label names to integer ids, "
                           f'e.g. {{"{BACKGROUND}": 0, "cat": 1}}')
    check_label_map(raw, f"--label_map {path}")
    return dict(raw)


def check_label_map(ids: Dict[str, int], where: str) -> None:
    values = sorted(ids.values())
    if values != list(range(len(values))):
        raise DatasetError(f"{where}: ids must run 0..{len(values) - 1} without gaps or repeats, got {values[:20]}")
    if ids.get(BACKGROUND, 0) != 0:
        raise DatasetError(f"{where}: {BACKGROUND} must be id 0 (the pixels no shape covers)")
    if len(values) > 255:
        raise DatasetError(f"{where}: {len(values)} labels; at most 255 classes fit an 8-bit label")


def label_ids(names: Iterable[str], existing: Optional[Dict[str, int]] = None) -> Tuple[Dict[str, int], List[str]]:
    """(label -> id for every name, the names that were added): ``existing`` ids kept, new names appended
    in name order; a new map starts with ``_background_`` as 0 (a map without it gives the pixels no
    shape covers id 0, whatever that is in the map)."""
    ids = dict(existing) if existing else {BACKGROUND: 0}
    added = sorted(set(names) - set(ids) - {IGNORE_LABEL})
    for name in added:
        ids[name] = len(ids)
    check_label_map(ids, "label map")
    return ids, added


def label_map_text(ids: Dict[str, int]) -> str:
    return json.dumps(dict(sorted(ids.items(), key=lambda kv: kv[1])), indent=2, ensure_ascii=False) + "\n"


def class_names(ids: Dict[str, int]) -> List[str]:
    return [name for name, _ in sorted(ids.items(), key=lambda kv: kv[1])]


@dataclass
class LabelmeLabel:
    """The class ids of one annotation file, for :class:`paddleseg.datasets.doctor.convert.Sample`."""

    path: str
    ids: Dict[str, int]
    ignore_index: int = 255

    def read(self) -> Tuple[np.ndarray, int]:
        return rasterize(read_labelme(self.path), self.ids, self.ignore_index), 0


# ------------------------------------------------------------------------------------------------
# a folder of annotations
# ------------------------------------------------------------------------------------------------
def find_annotations(folder: PathLike) -> List[Path]:
    """The ``*.json`` files under ``folder`` (any depth, hidden ones skipped); DatasetError if none."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"--json_dir {folder}: folder not found")
    found = sorted(p for p in root.rglob("*.json") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not found:
        raise DatasetError(f"--json_dir {folder}: no labelme .json files found")
    return found


def image_size(annotation: LabelmeFile) -> Tuple[int, int]:
    """(height, width) of the annotation's image from its header: the file beside the JSON, else the
    embedded data. DatasetError when there is neither or it cannot be read."""
    from paddleseg.transforms.io import open_image, read_checked

    if annotation.image_path and Path(annotation.image_path).is_file():
        data = read_checked(annotation.image_path)
        where = annotation.image_path
    elif annotation.image_data:
        data, where = annotation.image_data, f"{annotation.path}: imageData"
    else:
        raise DatasetError(f"{annotation.path}: its image {annotation.image_path or '(no imagePath)'} is not found and "
                           f"no imageData is embedded")
    try:
        with open_image(data) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError) as e:
        raise DatasetError(f"{where}: unreadable image ({e})") from e


def embedded_extension(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as im:
        return {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}.get(im.format or "",
                                                                                              ".png")
