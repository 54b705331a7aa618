"""Predict label maps for image files or a video with the trained (dygraph) model and save them as
pictures (``predict.py``), through the same runtime as an exported model (:mod:`paddleseg.deploy`).

Inputs, reading, output names and pictures, skipping and exit codes are
:mod:`paddleseg.deploy.inputs`, :mod:`~paddleseg.deploy.images`, :mod:`~paddleseg.deploy.outputs` and
:mod:`~paddleseg.deploy.pipeline`, as for ``tools/infer.py``; what is this module's own is the model:
:class:`DygraphModel` is a backend (``run(batch) -> scores``) that runs the network in Paddle's dynamic
graph, with test-time augmentation and sliding windows, and :func:`scores_to_labels` resizes its
scores to the image (bilinear) before the argmax, where the preprocessing resized the image.
:func:`predict` runs it on images, :func:`predict_video` on a video's frames.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from paddleseg.core.infer import aug_inference, inference
from paddleseg.cvlibs import Config, builder, manager
from paddleseg.deploy.images import MAX_PIXELS
from paddleseg.deploy.outputs import OutputWriter, label_id_table
from paddleseg.deploy.pipeline import Frame, Summary, VideoSettings, VideoSummary, predict_images
from paddleseg.deploy.pipeline import predict_video as predict_frames_of_video
from paddleseg.deploy.postprocess import to_labels
from paddleseg.utils.cityscapes_labels import TRAIN_ID_TO_LABEL_ID

logger = logging.getLogger(__name__)


def transform_configs(cfg: Config) -> List[dict]:
    """The preprocessing at test time: ``export.transforms`` if set, else the val transforms (else
    ``Normalize`` with its defaults)."""
    configs = cfg.dic.get("export", {}).get("transforms") or cfg.dic.get("val_dataset", {}).get("transforms")
    return list(configs or [{"type": "Normalize"}])


def build_transforms(configs: Sequence[dict]) -> Callable:
    """One ``Compose`` of the transform ``configs``."""
    return builder.build_component({"type": "Compose", "transforms": list(configs)}, manager.TRANSFORMS,
                                   "transforms")


def make_preprocess(transforms: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """RGB uint8 (H, W, 3) -> (1, 3, h, w) float32 through ``transforms`` (a Compose returning CHW)."""
    def preprocess(image: np.ndarray) -> np.ndarray:
        chw, _ = transforms(image, None, np.random.default_rng(0))
        return chw[None]

    return preprocess


@dataclass
class PredictSettings:
    """How to run the model on each image: test-time augmentation and sliding window."""

    aug_pred: bool = False
    scales: Sequence[float] = (1.0,)
    flip_horizontal: bool = False
    flip_vertical: bool = False
    is_slide: bool = False
    crop_size: Optional[Sequence[int]] = None
    stride: Optional[Sequence[int]] = None


class DygraphModel:
    """A trained network as a backend of :mod:`paddleseg.deploy.pipeline`: ``run`` takes a normalised
    batch (N, 3, H, W) and gives scores (N, C, H, W) at its size: logits, or with ``aug_pred`` the mean
    softmax over scales and flips."""

    name = "dygraph"
    input_name = "x"
    input_shape: Tuple[int, ...] = (-1, 3, -1, -1)

    def __init__(self, model: paddle.nn.Layer, settings: PredictSettings = PredictSettings()):
        self.model = model
        self.settings = settings
        self.device = paddle.get_device()
        model.eval()

    @property
    def described(self) -> str:
        return f"{self.name} on {self.device}"

    @property
    def output_op(self) -> str:
        """What :meth:`run` gives, in deploy.yaml's words: mean probabilities with ``aug_pred``, else logits."""
        return "softmax" if self.settings.aug_pred else "none"

    def input_problem(self, shape: Sequence[int]) -> Optional[str]:
        return None  # the network takes any size

    def run(self, batch: np.ndarray) -> np.ndarray:
        s = self.settings
        slide = dict(is_slide=s.is_slide, crop_size=s.crop_size, stride=s.stride)
        with paddle.no_grad():
            im = paddle.to_tensor(batch)
            if s.aug_pred:
                scores = aug_inference(self.model, im, scales=s.scales, flip_horizontal=s.flip_horizontal,
                                       flip_vertical=s.flip_vertical, **slide)
            else:
                scores = inference(self.model, im, **slide)
            return scores.numpy()


def scores_to_labels(scores: np.ndarray, frames: Sequence[Frame]) -> List[np.ndarray]:
    """The (H, W) uint8 train ids of each frame: its scores resized (bilinear) to the image where the
    preprocessing resized it, then the argmax over the classes."""
    labels = []
    for score, frame in zip(scores, frames):
        height, width = frame.image.shape[:2]
        if score.shape[1:] != (height, width):
            resized = F.interpolate(paddle.to_tensor(score[None]), size=[height, width], mode="bilinear",
                                    align_corners=False)
            score = resized.numpy()[0]
        labels.append(to_labels(score[None], "none", 1)[0])
    return labels


def predict_image(model: paddle.nn.Layer, image: np.ndarray, transforms: Callable,
                  settings: PredictSettings = PredictSettings()) -> np.ndarray:
    """The (H, W) uint8 train-id map of an RGB uint8 image (H, W, 3); ``transforms`` is a Compose
    of the preprocessing (returning CHW float32)."""
    x = make_preprocess(transforms)(image)
    scores = DygraphModel(model, settings).run(x)
    return scores_to_labels(scores, [Frame(Path(), Path(), image, x)])[0]


def predict(model: paddle.nn.Layer, transforms: Callable, plan: Sequence[Tuple[Path, Path]], save_dir,
            palette: np.ndarray, *, settings: PredictSettings = PredictSettings(), save_label: bool = False,
            label_ids: bool = False, max_pixels: Optional[int] = MAX_PIXELS) -> Summary:
    """Predict every ``(image, output name)`` of ``plan`` (:func:`paddleseg.deploy.inputs.plan_outputs`)
    into ``save_dir``; ``label_ids`` writes Cityscapes label ids (a 19-class model).

    An image that cannot be read, or whose header claims more than ``max_pixels`` pixels (it is not
    decoded), is logged with its path and skipped; the summary lists it."""
    writer = OutputWriter(save_dir, palette, save_label=save_label, save_label_ids=label_ids,
                          label_ids=label_id_table(TRAIN_ID_TO_LABEL_ID))
    return predict_images(plan, DygraphModel(model, settings), make_preprocess(transforms), writer,
                          postprocess=scores_to_labels, max_pixels=max_pixels, progress=True)


def predict_video(model: paddle.nn.Layer, transforms: Callable, stem: str, source, save_dir, palette: np.ndarray, *,
                  settings: PredictSettings = PredictSettings(), video: VideoSettings = VideoSettings(),
                  progress: bool = True) -> VideoSummary:
    """Predict every frame of the opened ``source`` (:func:`paddleseg.deploy.video.open_source`) into
    ``save_dir`` as :func:`paddleseg.deploy.pipeline.predict_video` does for an export: each frame's
    labels are those :func:`predict_image` gives it, unless ``video.smoothing`` blends them over time."""
    backend = DygraphModel(model, settings)
    return predict_frames_of_video(stem, source, backend, make_preprocess(transforms), Path(save_dir), palette,
                                   postprocess=scores_to_labels, output_op=backend.output_op, settings=video,
                                   progress=progress)
