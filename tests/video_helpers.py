"""Helpers of the video tests: small videos written with OpenCV, read back, and the smallest exports
tools/infer.py runs on them."""
from pathlib import Path
from typing import List, Sequence

import cv2
import numpy as np
import yaml

PALETTE3 = [[128, 64, 128], [244, 35, 232], [70, 70, 70]]


def moving_frames(count: int, width: int = 64, height: int = 48, seed: int = 0, step: int = 2) -> List[np.ndarray]:
    """``count`` RGB frames of a smooth random texture panning left by ``step`` pixels per frame."""
    rng = np.random.default_rng(seed)
    wide = cv2.resize(rng.integers(0, 255, (height // 4 + 1, (width + step * count) // 4 + 1, 3), dtype=np.uint8),
                      (width + step * count, height), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(wide[:, i * step:i * step + width]) for i in range(count)]


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    """``frames`` (RGB) as a video file (the container from the suffix)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _capture(path: Path, f) -> cv2.VideoCapture:
    # by descriptor: OpenCV crashes on a path that is not UTF-8
    return cv2.VideoCapture(f"/proc/self/fd/{f.fileno()}", cv2.CAP_FFMPEG)


def read_video(path: Path) -> List[np.ndarray]:
    """Every frame OpenCV decodes from ``path``, RGB."""
    with open(path, "rb") as f:
        capture = _capture(path, f)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        capture.release()
    return frames


def video_fps(path: Path) -> float:
    with open(path, "rb") as f:
        capture = _capture(path, f)
        fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
    return fps


def tiny_export(folder: Path, output_op: str = "softmax") -> Path:
    """An export folder whose model is the softmax over the normalised RGB channels (``softmax``: 3
    class probabilities) or its argmax (``argmax``): labels 0..2, the brightest channel."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    if output_op == "argmax":
        node, out = helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0), \
            helper.make_tensor_value_info("y", TensorProto.INT64, [None, None, None])
    else:
        node, out = helper.make_node("Softmax", ["x"], ["y"], axis=1), \
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3, None, None])
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             [None, 3, None, None])], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
              str(folder / "model.onnx"))
    deploy = {"model": "model.json", "params": "model.pdiparams", "onnx": "model.onnx", "output_op": output_op,
              "transforms": [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}], "palette": PALETTE3}
    (folder / "deploy.yaml").write_text(yaml.safe_dump({"Deploy": deploy}))
    for unused in ("model.json", "model.pdiparams"):  # an export always has the Paddle model too
        (folder / unused).write_bytes(b"")
    return folder
