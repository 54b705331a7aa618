"""Evaluation of a model on a labelled data set, scored as Cityscapes officially is.

One confusion matrix is accumulated over the whole set (not a mean of per-image or per-batch IoUs):
pixels whose ground truth is the ignore index do not count, and a class absent from both ground truth
and predictions is n/a and left out of the mean. Each image adds its counts and is dropped, so
memory stays flat however large the set.
"""
import logging
from pathlib import Path
from typing import Optional, Sequence

import paddle
from tqdm import tqdm

from paddleseg.checkpoint import load_entire_model
from paddleseg.core.infer import aug_inference, inference
from paddleseg.core.report import GALLERY_IMAGES, WorstImages, check_report_dir, write_report
from paddleseg.datasets.loader import build_dataloader
from paddleseg.utils.device import check_precision, set_device
from paddleseg.utils.metrics import ConfusionMatrix
from paddleseg.utils.visualize import class_palette

logger = logging.getLogger(__name__)


def evaluate(model: paddle.nn.Layer, dataset, *, num_workers: int = 0, aug_eval: bool = False,
             scales: Sequence[float] = (1.0,), flip_horizontal: bool = False, flip_vertical: bool = False,
             is_slide: bool = False, crop_size: Optional[Sequence[int]] = None, stride: Optional[Sequence[int]] = None,
             precision: str = "fp32", progress: bool = True, use_shared_memory: bool = True,
             all_ranks: bool = False, worst: Optional[WorstImages] = None) -> ConfusionMatrix:
    """Predict every image of ``dataset`` (batch 1, full size) and accumulate the confusion matrix.

    ``aug_eval`` turns on multi-scale (``scales``) and flip averaging; ``is_slide`` predicts in
    ``crop_size`` windows moved by ``stride`` (both [width, height]). ``all_ranks``: every rank of a
    multi-process job calls this, evaluates its shard, and the matrices are summed; otherwise (as
    in training, where rank 0 alone evaluates) this process evaluates the whole set. ``worst``
    (:class:`~paddleseg.core.report.WorstImages`, for the report) is offered every image's own counts,
    prediction and label and keeps the lowest-scoring few (of all ranks); None costs nothing.
    """
    if not aug_eval:
        scales, flip_horizontal, flip_vertical = (1.0,), False, False
    scales = [scales] if isinstance(scales, (int, float)) else list(scales)
    world, rank = (paddle.distributed.get_world_size(), paddle.distributed.get_rank()) if all_ranks else (1, 0)
    loader = build_dataloader(dataset, 1, shuffle=False, drop_last=False, num_workers=num_workers,
                              num_replicas=world, rank=rank, use_shared_memory=use_shared_memory, pad=False)
    matrix = ConfusionMatrix(dataset.num_classes, dataset.ignore_index)
    model.eval()
    bar = tqdm(loader, total=len(loader), desc="eval", unit="img", disable=not progress or rank != 0,
               dynamic_ncols=True, leave=False)
    with paddle.no_grad():
        for batch in bar:
            with paddle.amp.auto_cast(enable=precision == "fp16", level="O1"):
                if aug_eval:
                    logits = aug_inference(model, batch["img"], scales=scales, flip_horizontal=flip_horizontal,
                                           flip_vertical=flip_vertical, is_slide=is_slide, crop_size=crop_size,
                                           stride=stride)
                else:
                    logits = inference(model, batch["img"], is_slide=is_slide, crop_size=crop_size, stride=stride)
            pred, label = paddle.argmax(logits, axis=1).numpy(), batch["label"].numpy()
            counts = matrix.update(pred, label)  # batch size 1: this image's own counts
            if worst is not None:
                worst.offer(batch["img_path"][0], counts, pred[0], label[0])
    if world > 1:
        total = paddle.to_tensor(matrix.matrix)
        paddle.distributed.all_reduce(total)
        matrix = ConfusionMatrix.from_matrix(total.numpy(), ignore_index=dataset.ignore_index)
        if worst is not None:
            worst.gather_ranks()
    return matrix


def evaluate_checkpoint(cfg, model_path, *, device: str = "cpu", num_workers: int = 0, precision: str = "fp32",
                        cpu_threads: Optional[int] = None, report: Optional[Path] = None,
                        report_images: int = GALLERY_IMAGES, **options) -> dict:
    """Build ``cfg``'s model, load ``model_path`` strictly, evaluate on ``cfg``'s val set; a report dict.

    ``report``: also write the HTML report there (:mod:`paddleseg.core.report`) with the
    ``report_images`` worst images; a folder that may not be replaced is refused before anything is built."""

    if report is not None:
        check_report_dir(report)
    device = set_device(device, cpu_threads)
    check_precision(precision, device)
    dataset = cfg.val_dataset
    model = cfg.model
    load_entire_model(model, model_path)
    world = paddle.distributed.get_world_size()
    if world > 1:
        paddle.distributed.init_parallel_env()
    worst = WorstImages(report_images) if report is not None else None
    matrix = evaluate(model, dataset, num_workers=num_workers, precision=precision, all_ranks=world > 1,
                      worst=worst, **options)
    iou = matrix.iou()
    result = {"miou": matrix.miou(), "acc": matrix.pixel_accuracy(), "kappa": matrix.kappa(),
              "dice": matrix.mean_dice(), "images": len(dataset),
              "class_iou": [None if v != v else float(v) for v in iou],
              "table": matrix.table(dataset.class_names)}
    if report is not None and paddle.distributed.get_rank() == 0:
        details = {"model": model_path, "config": cfg.path, "images": len(dataset)}
        result["report"] = str(write_report(report, matrix, worst, dataset.class_names,
                                            palette=class_palette(matrix.num_classes, dataset.palette),
                                            details=details))
    return result
