"""Temporal stability of predicted labels: motion-compensated flicker.

    flows = FlowEstimator()
    flow = flows.flow(previous_rgb, rgb)      # (H, W, 2): pixel x of this frame shows what the previous frame
                                              # shows at x + flow(x) (dense optical flow, OpenCV's DIS)
    meter = FlickerMeter()
    meter.update(labels, flow)                # per frame, in order (the first frame's flow is None)
    meter.mean                                # the mean over frames 1.. of the fraction below

Flicker is the fraction of a frame's pixels whose label differs from the previous frame's labels
carried to this frame by the dense optical flow of the *input* frames. Raw frame-to-frame change
counts the camera's motion as flicker (on a panning street, the true labels change too); carried by
the flow, a label that only moved with the scene is no change, and what remains is the model's own
instability plus the flow's errors at edges. Pixels whose flow leaves the previous frame (newly seen)
and, when ground truth is measured, ignored pixels do not count. The same function measures a
prediction against the optical flow or, on a synthetic clip, against its known motion.

The flow is computed from grey frames at most :data:`FLOW_MAX_SIDE` pixels on their long side (larger
frames are reduced first, the flow scaled back up): DIS's cost grows with the pixel count.
"""
from typing import Optional, Tuple

import cv2
import numpy as np

FLOW_MAX_SIDE = 1024
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def resize_flow(flow: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """``flow`` (h, w, 2), in pixels, as the flow of the same motion at size ``hw`` (H, W)."""
    h, w = flow.shape[:2]
    if (h, w) == tuple(hw):
        return flow
    resized = cv2.resize(flow, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= hw[1] / w
    resized[..., 1] *= hw[0] / h
    return resized


def sample_grid(flow: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coordinates ``x + flow(x)`` for :func:`cv2.remap` and where they fall inside the frame."""
    h, w = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return map_x, map_y, inside


def carry_labels(labels: np.ndarray, flow: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The previous frame's ``labels`` (H, W) carried to the current frame by ``flow`` (nearest
    neighbour), and the mask of pixels that came from inside the previous frame."""
    map_x, map_y, inside = sample_grid(flow)
    carried = cv2.remap(labels, map_x, map_y, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return carried, inside


def changed_fraction(labels: np.ndarray, previous: np.ndarray, flow: np.ndarray,
                     ignore_index: Optional[int] = None) -> float:
    """The fraction of ``labels``' pixels that differ from ``previous`` carried by ``flow`` (module
    docstring); pixels labelled ``ignore_index`` in either are left out. NaN if no pixel counts."""
    carried, counted = carry_labels(previous, flow)
    if ignore_index is not None:
        counted &= (labels != ignore_index) & (carried != ignore_index)
    total = int(counted.sum())
    return float(((labels != carried) & counted).sum()) / total if total else float("nan")


class FlowEstimator:
    """Dense optical flow between consecutive RGB frames (OpenCV's DIS, :data:`DIS_PRESET`). Not
    thread-safe: one per thread."""

    def __init__(self, preset: int = DIS_PRESET, max_side: int = FLOW_MAX_SIDE):
        self.dis = cv2.DISOpticalFlow_create(preset)
        self.max_side = max_side

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        scale = self.max_side / max(h, w)
        if scale < 1:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        return grey

    def flow(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 at ``current``'s size: where each of its pixels is in ``previous``."""
        flow = self.dis.calc(self._grey(current), self._grey(previous), None)
        return resize_flow(flow, current.shape[:2])


class FlickerMeter:
    """The flicker of a label sequence (module docstring), frame by frame in order."""

    def __init__(self, ignore_index: Optional[int] = None):
        self.ignore_index = ignore_index
        self.previous: Optional[np.ndarray] = None
        self.values = []

    def update(self, labels: np.ndarray, flow: Optional[np.ndarray]) -> Optional[float]:
        """Count one frame's ``labels`` (H, W), ``flow`` from it to the previous frame (None for the
        first frame, or after a gap); returns its flicker, or None for a first frame."""
        value = None
        if self.previous is not None and flow is not None and self.previous.shape == labels.shape:
            value = changed_fraction(labels, self.previous, flow, self.ignore_index)
            if not np.isnan(value):
                self.values.append(value)
        self.previous = labels
        return value

    @property
    def mean(self) -> Optional[float]:
        """The mean flicker over the frames counted, or None before the second frame."""
        return float(np.mean(self.values)) if self.values else None
