"""Temporal smoothing of class probabilities across video frames (``--temporal_smoothing A``, ``--flow``).

    smoother = TemporalSmoother(weight=0.5, warp=True)
    probabilities = to_probabilities(output, "none")       # (N, C, h, w): logits -> softmax
    smoothed = smoother(probabilities[0], flow)            # (C, h, w), frame by frame in order

An exponential moving average: ``s_t = (1 - A) p_t + A s_{t-1}``, where ``p_t`` is the frame's class
probabilities and ``A`` the weight of the past (0 turns it off). With ``warp``, ``s_{t-1}`` is first
carried to the current frame by the dense optical flow of the input frames
(:class:`paddleseg.deploy.flicker.FlowEstimator`), so that a moving camera does not smear edges; where
the flow comes from outside the previous frame (newly seen pixels) the frame's own probabilities are
used. Without ``warp`` the average is taken in place, which suits a still camera.

Smoothing works at the model's output size, on probabilities: an export must give scores
(``export.py --output_op softmax`` or ``none``); one that gives labels (``argmax``) is refused by
:func:`check_scores` before anything runs.
"""
from typing import Optional

import cv2
import numpy as np

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.flicker import resize_flow, sample_grid


def check_scores(output_op: Optional[str]) -> None:
    """DeployError if a model whose deploy.yaml says ``output_op`` gives no class scores to smooth."""
    if output_op == "argmax":
        raise DeployError("--temporal_smoothing needs class scores, but this export gives labels (output_op argmax "
                          "in deploy.yaml): export again with --output_op softmax (or none)")


def to_probabilities(output: np.ndarray, output_op: Optional[str]) -> np.ndarray:
    """Class probabilities (N, C, h, w) float32 of a model ``output``: as they are for ``softmax``,
    the softmax over C of logits otherwise (``none``, or an export that does not say)."""
    output = np.asarray(output)
    if output.ndim != 4:
        raise DeployError(f"--temporal_smoothing: the model gave an output of shape {list(output.shape)}, not "
                          f"(N, C, H, W) class scores")
    if output_op == "softmax":
        return output.astype(np.float32, copy=False)
    shifted = output.astype(np.float32) - output.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class TemporalSmoother:
    """The moving average of one video's probabilities (module docstring), frame by frame in order."""

    def __init__(self, weight: float, warp: bool = False):
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"the weight of the past must be in [0, 1), got {weight}")
        self.weight = weight
        self.warp = warp
        self.state: Optional[np.ndarray] = None  # (h, w, C): OpenCV's channel-last layout, for remap

    def __call__(self, probabilities: np.ndarray, flow: Optional[np.ndarray] = None) -> np.ndarray:
        """The smoothed (C, h, w) of one frame's ``probabilities`` (C, h, w). ``flow`` (H, W, 2), from
        this frame to the previous one at any size, is needed with ``warp`` from the second frame on."""
        current = np.ascontiguousarray(probabilities.transpose(1, 2, 0), dtype=np.float32)
        if self.state is None or self.state.shape != current.shape or self.weight == 0.0:
            self.state = current
            return probabilities
        past, fresh = self.state, None
        if self.warp:
            if flow is None:
                raise ValueError("warp needs the flow from the second frame on")
            map_x, map_y, inside = sample_grid(resize_flow(flow, current.shape[:2]))
            past = cv2.remap(past, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if past.ndim == 2:  # remap drops a channel axis of length 1
                past = past[..., None]
            fresh = ~inside
        smoothed = cv2.addWeighted(current, 1.0 - self.weight, past, self.weight, 0.0)
        if fresh is not None and fresh.any():
            smoothed[fresh] = current[fresh]
        self.state = smoothed
        return smoothed.transpose(2, 0, 1)
