"""A synthetic Cityscapes: street-like scenes drawn from polygons, written in the official layout.

Each scene is a list of labelled polygons (Cityscapes label names, drawn in order, later ones on top):
sky, buildings, walls, fences, vegetation, terrain, sidewalks, road, poles with signs and lights,
vehicles, people and riders, plus some classes without a train id (ego vehicle, static, parking,
guard rail, ground), so every one of the 19 training classes and some ignored pixels appear. The image
is coloured from the polygons with per-object colours, texture, noise and lighting; the label-id image
is drawn from the same polygons the same way cityscapesscripts draws them (PIL), so the JSON, the
label ids and the image agree pixel for pixel. Everything is a function of the seed.

A moving-camera clip (:func:`make_clip`, :func:`write_synthetic_clip`) films one scene larger than the
frame: each frame is the scene seen through a known affine camera (a pan with a slow zoom and a little
bob), with fresh sensor noise and exposure per frame, and its train-id labels are the scene's labels
seen through the same affine. :func:`clip_flow` gives the true motion between two frames, so temporal
stability can be measured against the known motion as well as against optical flow (docs/video.md).
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw

from paddleseg.datasets.cityscapes import IMAGE_SUFFIX, LABEL_ID_SUFFIX, POLYGON_SUFFIX
from paddleseg.datasets.cityscapes_convert import convert_cityscapes
from paddleseg.datasets.parallel import parallel_map
from paddleseg.utils.atomic import atomic_write_text
from paddleseg.utils.cityscapes_labels import IGNORE_INDEX

Polygon = List[Tuple[int, int]]
SceneObject = Tuple[str, Polygon]
CITIES = {"train": ("synthtown", "synthville", "synthburg"), "val": ("synthdorf",), "test": ("synthstadt",)}
# texture strength (noise amplitude in grey levels) per label; default 8
TEXTURE = {"sky": 3, "road": 10, "vegetation": 30, "terrain": 22, "building": 14, "sidewalk": 9}


def _box(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return [(int(x0), int(y0)), (int(x1), int(y0)), (int(x1), int(y1)), (int(x0), int(y1))]


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 12,
          jitter: float = 0.25) -> Polygon:
    angles = np.linspace(0, 2 * math.pi, n, endpoint=False)
    radius = 1 + rng.uniform(-jitter, jitter, n)
    return [(int(cx + rx * r * math.cos(a)), int(cy + ry * r * math.sin(a))) for a, r in zip(angles, radius)]


def _vehicle(kind: str, x: float, bottom: float, s: float, W: int, H: int) -> List[SceneObject]:
    """A vehicle body standing on ``bottom`` at horizontal centre ``x``, scaled by depth ``s``."""
    w, h = {"car": (0.22, 0.12), "truck": (0.26, 0.22), "bus": (0.42, 0.24), "train": (0.9, 0.2)}[kind]
    w, h = w * W * s, h * H * s * 2
    body = _box(x - w / 2, bottom - h * 0.6, x + w / 2, bottom)
    if kind == "car":
        top = [(int(x - w * 0.32), int(bottom - h * 0.6)), (int(x - w * 0.2), int(bottom - h)),
               (int(x + w * 0.22), int(bottom - h)), (int(x + w * 0.36), int(bottom - h * 0.6))]
        return [(kind, top), (kind, body)]
    if kind == "truck":
        cabin = _box(x + w * 0.25, bottom - h * 0.75, x + w / 2, bottom)
        cargo = _box(x - w / 2, bottom - h, x + w * 0.22, bottom - h * 0.1)
        return [(kind, cargo), (kind, cabin)]
    return [(kind, _box(x - w / 2, bottom - h, x + w / 2, bottom))]


def _person(rng: np.random.Generator, label: str, x: float, bottom: float, size: float) -> List[SceneObject]:
    head = _blob(rng, x, bottom - size * 0.92, size * 0.08, size * 0.08, 8, 0.1)
    torso = _box(x - size * 0.12, bottom - size * 0.84, x + size * 0.12, bottom - size * 0.45)
    legs = [(int(x - size * 0.12), int(bottom - size * 0.45)), (int(x + size * 0.12), int(bottom - size * 0.45)),
            (int(x + size * 0.15), int(bottom)), (int(x + size * 0.03), int(bottom)),
            (int(x), int(bottom - size * 0.3)), (int(x - size * 0.03), int(bottom)),
            (int(x - size * 0.15), int(bottom))]
    return [(label, legs), (label, torso), (label, head)]


def _two_wheeler(rng: np.random.Generator, kind: str, x: float, bottom: float, size: float) -> List[SceneObject]:
    r = size * (0.2 if kind == "bicycle" else 0.24)
    wheels = [(kind, _blob(rng, x - size * 0.35, bottom - r, r, r, 10, 0.05)),
              (kind, _blob(rng, x + size * 0.35, bottom - r, r, r, 10, 0.05))]
    frame = [(int(x - size * 0.35), int(bottom - r)), (int(x - size * 0.05), int(bottom - r * 2.6)),
             (int(x + size * 0.35), int(bottom - r)), (int(x + size * 0.2), int(bottom - r * 0.6))]
    return wheels + [(kind, frame)] + _person(rng, "rider", x, bottom - r * 1.6, size * 1.1)[1:]


def make_scene(rng: np.random.Generator, width: int, height: int) -> List[SceneObject]:
    """The labelled polygons of one street scene, in drawing order."""
    W, H = width, height
    u = rng.uniform
    hy = H * u(0.38, 0.5)                                 # horizon
    vx = W * u(0.4, 0.6)                                  # vanishing point
    kerb = hy + H * u(0.03, 0.08)                         # where the buildings meet the sidewalk
    objects: List[SceneObject] = [("sky", _box(0, 0, W, kerb))]
    # buildings along both sides, tops well above the horizon
    for side_x0, side_x1 in ((0, vx - W * 0.05), (vx + W * 0.05, W)):
        x = side_x0
        while x < side_x1:
            bw = W * u(0.08, 0.2)
            objects.append(("building", _box(x, H * u(0.02, 0.3), min(x + bw, side_x1), kerb)))
            x += bw
    objects.append(("wall", _box(W * u(0.0, 0.15), kerb - H * u(0.06, 0.12), W * u(0.2, 0.3), kerb)))
    objects.append(("fence", _box(W * u(0.7, 0.8), kerb - H * u(0.05, 0.1), W * u(0.85, 1.0), kerb)))
    for _ in range(int(rng.integers(2, 5))):              # tree crowns
        objects.append(("vegetation", _blob(rng, W * u(0, 1), hy - H * u(0.05, 0.2), W * u(0.04, 0.1),
                                            H * u(0.06, 0.14))))
    objects.append(("vegetation", _box(W * u(0.3, 0.35), kerb - H * 0.05, vx - W * 0.06, kerb)))  # hedge
    # ground: sidewalks, terrain, road (a trapezoid to the vanishing point)
    far = W * u(0.02, 0.05)
    xl, xr = W * u(0.0, 0.2), W * u(0.8, 1.0)
    objects.append(("sidewalk", [(0, int(kerb)), (int(vx - far), int(kerb)), (int(xl), H), (0, H)]))
    objects.append(("sidewalk", [(int(vx + far), int(kerb)), (W, int(kerb)), (W, H), (int(xr), H)]))
    objects.append(("terrain", [(0, int(kerb)), (int(W * u(0.1, 0.2)), int(kerb)),
                                (int(W * u(0.0, 0.08)), int(kerb + H * u(0.08, 0.15))), (0, int(kerb + H * 0.15))]))
    objects.append(("ground", _box(W * u(0.85, 0.9), kerb + H * 0.02, W, kerb + H * u(0.06, 0.1))))
    objects.append(("road", [(int(vx - far), int(kerb)), (int(vx + far), int(kerb)), (int(xr), H), (int(xl), H)]))
    objects.append(("parking", [(int(xr - W * 0.02), H), (int(xr - W * 0.08), H),
                                (int(vx + far * 0.8), int(kerb + H * 0.02)), (int(vx + far), int(kerb + H * 0.02))]))
    # the train in the distance
    objects.extend(_vehicle("train", vx + W * u(-0.1, 0.1), kerb, 0.25, W, H))
    # street furniture on the sidewalks: poles with a sign and a light
    things: List[Tuple[float, List[SceneObject]]] = []
    for kind in ("traffic sign", "traffic light", None):
        left = rng.random() < 0.5
        depth = u(0.2, 0.9)
        bottom = kerb + (H - kerb) * depth
        x = (xl + (vx - xl) * (1 - depth)) * u(0.3, 0.9) if left else W - (W - xr) * u(0.1, 0.7) * depth
        ph, pw = H * 0.7 * depth + H * 0.1, max(2, W * 0.008 * (depth + 0.3))
        parts = [("pole", _box(x - pw / 2, bottom - ph, x + pw / 2, bottom))]
        if kind == "traffic sign":
            parts.append((kind, _blob(rng, x, bottom - ph, pw * 3, pw * 3, 8, 0.0)))
        elif kind == "traffic light":
            parts.append((kind, _box(x - pw * 1.5, bottom - ph - pw * 5, x + pw * 1.5, bottom - ph + pw)))
        things.append((bottom, parts))
    things.append((kerb + H * 0.05, [("static", _box(W * u(0.02, 0.1), kerb - H * 0.02, W * u(0.12, 0.16),
                                                     kerb + H * 0.04))]))
    things.append((kerb + 1, [("guard rail", _box(vx + far, kerb - H * 0.02, W * u(0.6, 0.7), kerb + H * 0.01))]))
    # traffic on the road and people on the sidewalks
    kinds = ["car", "car", "truck", "bus", "motorcycle", "bicycle", "person", "person"]
    for kind in kinds + list(rng.choice(["car", "person", "bicycle"], int(rng.integers(0, 4)))):
        depth = u(0.15, 1.0)
        bottom = kerb + (H - kerb) * depth
        road_l = vx - far + (xl - vx + far) * depth
        road_r = vx + far + (xr - vx - far) * depth
        if kind == "person":
            x = u(0, road_l) if rng.random() < 0.5 else u(road_r, W)
            things.append((bottom, _person(rng, "person", x, bottom, H * 0.55 * depth + H * 0.05)))
        elif kind in ("motorcycle", "bicycle"):
            things.append((bottom, _two_wheeler(rng, kind, u(road_l, road_r), bottom, H * 0.3 * depth + 4)))
        else:
            things.append((bottom, _vehicle(kind, u(road_l, road_r), bottom, depth * 0.9 + 0.1, W, H)))
    for _, parts in sorted(things, key=lambda t: t[0]):     # far things first: near ones occlude them
        objects.extend(parts)
    if rng.random() < 0.5:                                # the bonnet of the recording car
        objects.append(("ego vehicle", [(0, H), (0, int(H * 0.95)), (W // 2, int(H * u(0.88, 0.93))),
                                        (W, int(H * 0.95)), (W, H)]))
    return objects


def rasterize(objects: List[SceneObject], width: int, height: int) -> np.ndarray:
    """Object index per pixel (0: none), drawn like cityscapesscripts' createLabelImage (PIL polygons)."""
    canvas = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (_, polygon) in enumerate(objects, 1):
        draw.polygon(polygon, fill=i)
    return np.asarray(canvas, dtype=np.int32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    small = rng.standard_normal((max(2, height // cell), max(2, width // cell))).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def paint(objects: List[SceneObject], index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image: each object in its class colour (varied per object), textured, noisy, lit."""
    H, W = index.shape
    colours = np.zeros((len(objects) + 1, 3), dtype=np.float32)
    texture = np.full(len(objects) + 1, 8.0, dtype=np.float32)
    tint = rng.uniform(-20, 20, 3)
    for i, (name, _) in enumerate(objects, 1):
        colours[i] = np.array(name2label[name].color) + tint + rng.uniform(-30, 30, 3)
        texture[i] = TEXTURE.get(name, 8)
    img = colours[index]
    img += (texture[index] * (_smooth_noise(rng, H, W, 8) + 0.5 * _smooth_noise(rng, H, W, 2)))[..., None]
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    light = rng.uniform(0.7, 1.2) * (1 + rng.uniform(-0.3, 0.3) * (xs / W - 0.5) + rng.uniform(-0.3, 0.3) * (ys / H - 0.5))
    img = img * light[..., None]
    img = cv2.GaussianBlur(img, (3, 3), 0)
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def scene_json(objects: List[SceneObject], width: int, height: int) -> Dict:
    """The Cityscapes ``*_gtFine_polygons.json`` content of a scene."""
    return {"imgHeight": height, "imgWidth": width,
            "objects": [{"label": name, "polygon": [list(p) for p in polygon]} for name, polygon in objects]}


def write_sample(job: Tuple[Path, str, str, int, int, Tuple[int, ...]]) -> None:
    """Write one scene: image, polygon JSON and label-id PNG."""
    root, split, stem, width, height, seed = job
    rng = np.random.default_rng(seed)
    objects = make_scene(rng, width, height)
    index = rasterize(objects, width, height)
    ids = np.zeros(len(objects) + 1, dtype=np.uint8)
    ids[1:] = [name2label[name].id for name, _ in objects]
    image_path = root / "leftImg8bit" / split / stem.split("_")[0] / f"{stem}{IMAGE_SUFFIX}"
    label_dir = root / "gtFine" / split / stem.split("_")[0]
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(image_path), cv2.cvtColor(paint(objects, index, rng), cv2.COLOR_RGB2BGR)):
        raise OSError(f"{image_path}: could not be written")
    (label_dir / f"{stem}{POLYGON_SUFFIX}").write_text(json.dumps(scene_json(objects, width, height)))
    Image.fromarray(ids[index], mode="L").save(label_dir / f"{stem}{LABEL_ID_SUFFIX}")


def write_synthetic_cityscapes(out: Union[str, Path], train: int = 60, val: int = 20, test: int = 0,
                               width: int = 512, height: int = 256, seed: int = 0,
                               workers: Optional[int] = None, progress: bool = True) -> Path:
    """Write the synthetic set under ``out`` in the official layout and convert it to train ids."""
    if width < 64 or height < 32:
        raise ValueError(f"synthetic scenes need at least 64x32 pixels, got {width}x{height}")
    root = Path(out)
    jobs = []
    for s, (split, count) in enumerate((("train", train), ("val", val), ("test", test))):
        cities = CITIES[split]
        for i in range(count):
            stem = f"{cities[i % len(cities)]}_{i // len(cities):06d}_000019"
            jobs.append((root, split, stem, width, height, (seed, s, i)))
    parallel_map(write_sample, jobs, workers, "drawing scenes", progress)
    convert_cityscapes(root, force=True, workers=workers, progress=progress)
    return root


# ------------------------------------------------------------------------------------------------
# a moving-camera clip
# ------------------------------------------------------------------------------------------------
CLIP_FPS = 25.0
CLIP_NOISE = 6.0      # per-frame sensor noise (standard deviation, grey levels)
CLIP_EXPOSURE = 0.04  # per-frame exposure change (a fraction, uniform in +-)


@dataclass
class Clip:
    """A moving-camera clip: RGB uint8 ``frames`` (H, W, 3), their train-id ``labels`` (H, W; 255
    ignored) and each frame's ``camera``, the 2x3 affine taking frame pixels to scene pixels."""
    frames: List[np.ndarray]
    labels: List[np.ndarray]
    cameras: List[np.ndarray]


def clip_cameras(frames: int, width: int, height: int, scene_width: int, scene_height: int) -> List[np.ndarray]:
    """The camera of each frame: a window panning left to right across the scene's middle, showing
    1.4 scene pixels per frame pixel at first and 1.65 at the end (zooming out), bobbing by 2% of the
    height (the scale of the training crops: the scenes are twice the frame's height)."""
    cameras = []
    for t in np.linspace(0.0, 1.0, frames):
        zoom = 1.4 + 0.25 * t                           # scene pixels per frame pixel
        half_w, half_h = width * zoom / 2, height * zoom / 2
        cx = half_w + (scene_width - 2 * half_w) * (0.05 + 0.9 * t)
        cy = scene_height * (0.5 + 0.02 * math.sin(2 * math.pi * 2 * t))
        cy = min(max(cy, half_h), scene_height - half_h)
        cameras.append(np.array([[zoom, 0.0, cx - half_w], [0.0, zoom, cy - half_h]]))
    return cameras


def clip_flow(camera_from: np.ndarray, camera_to: np.ndarray, height: int, width: int) -> np.ndarray:
    """The true motion (H, W, 2) float32 from a frame of camera ``camera_from`` to one of
    ``camera_to``: frame pixel x shows the scene point that ``camera_to``'s frame shows at x + flow(x)
    (the convention of OpenCV's optical flow from the first frame to the second)."""
    to_scene = np.vstack([camera_from, [0.0, 0.0, 1.0]])
    from_scene = np.linalg.inv(np.vstack([camera_to, [0.0, 0.0, 1.0]]))
    m = (from_scene @ to_scene)[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    flow = np.stack([m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs, m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys], axis=-1)
    return flow.astype(np.float32)


def make_clip(frames: int = 48, width: int = 256, height: int = 128, seed: int = 0) -> Clip:
    """A clip of ``frames`` frames of ``width`` x ``height`` filming one scene three times as wide and
    twice as high (:func:`clip_cameras`; :data:`CLIP_NOISE` and :data:`CLIP_EXPOSURE` change from frame
    to frame besides the camera)."""
    if frames < 2 or width < 64 or height < 32:
        raise ValueError(f"a clip needs at least 2 frames of 64x32 pixels, got {frames} of {width}x{height}")
    rng = np.random.default_rng((seed, 7))
    scene_w, scene_h = 3 * width, 2 * height
    objects = make_scene(rng, scene_w, scene_h)
    index = rasterize(objects, scene_w, scene_h)
    scene = paint(objects, index, rng)
    train_ids = np.full(len(objects) + 1, IGNORE_INDEX, dtype=np.uint8)
    for i, (name, _) in enumerate(objects, 1):
        train_id = name2label[name].trainId
        train_ids[i] = train_id if 0 <= train_id < IGNORE_INDEX else IGNORE_INDEX
    scene_labels = train_ids[index]
    clip = Clip([], [], clip_cameras(frames, width, height, scene_w, scene_h))
    for camera in clip.cameras:
        flags = cv2.WARP_INVERSE_MAP  # the camera maps frame pixels to scene pixels
        view = cv2.warpAffine(scene, camera, (width, height), flags=cv2.INTER_LINEAR | flags,
                              borderMode=cv2.BORDER_REFLECT)
        exposure = 1.0 + rng.uniform(-CLIP_EXPOSURE, CLIP_EXPOSURE)
        noisy = view.astype(np.float32) * exposure + rng.normal(0, CLIP_NOISE, view.shape).astype(np.float32)
        clip.frames.append(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
        clip.labels.append(cv2.warpAffine(scene_labels, camera, (width, height), flags=cv2.INTER_NEAREST | flags,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX))
    return clip


def write_synthetic_clip(out: Union[str, Path], frames: int = 48, width: int = 256, height: int = 128,
                         seed: int = 0, fps: float = CLIP_FPS) -> Path:
    """Write a :func:`make_clip` clip under ``out``: ``frames/frame_000000.png`` (RGB),
    ``labels/frame_000000.png`` (train ids), ``clip.mp4`` (the frames as MPEG-4, ``fps`` frames per
    second) and ``cameras.json`` (each frame's affine, frame pixels to scene pixels). Returns ``out``."""
    clip = make_clip(frames, width, height, seed)
    root = Path(out)
    for folder in ("frames", "labels"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    video = cv2.VideoWriter(str(root / "clip.mp4"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                            (width, height))
    if not video.isOpened():
        raise OSError(f"{root / 'clip.mp4'}: OpenCV cannot write MPEG-4 here")
    try:
        for i, (frame, label) in enumerate(zip(clip.frames, clip.labels)):
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(root / "frames" / f"frame_{i:06d}.png"), bgr):
                raise OSError(f"{root / 'frames'}: could not be written")
            Image.fromarray(label, mode="L").save(root / "labels" / f"frame_{i:06d}.png")
            video.write(bgr)
    finally:
        video.release()
    atomic_write_text(root / "cameras.json", json.dumps(
        {"fps": fps, "width": width, "height": height, "seed": seed,
         "cameras": [camera.round(6).tolist() for camera in clip.cameras]}, indent=1))
    return root
