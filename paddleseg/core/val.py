"""Evaluation of a model on a labelled data set, scored as Cityscapes officially is.

One confusion matrix is accumulated over the whole set (not a mean of per-image or per-batch IoUs):
pixels whose ground truth is the ignore index do not count, and a class absent from both ground truth
and predictions is n/a and left out of the mean. Each image adds its counts and is dropped, so
memory stays flat however large the set.
"""
import logging
from typing import Optional, Sequence

import paddle
from tqdm import tqdm

from paddleseg.core.infer import aug_inference, inference
from paddleseg.datasets.loader import build_dataloader
from paddleseg.utils.metrics import ConfusionMatrix

logger = logging.getLogger(__name__)


def evaluate(model: paddle.nn.Layer, dataset, *, num_workers: int = 0, aug_eval: bool = False,
             scales: Sequence[float] = (1.0,), flip_horizontal: bool = False, flip_vertical: bool = False,
             is_slide: bool = False, crop_size: Optional[Sequence[int]] = None, stride: Optional[Sequence[int]] = None,
             precision: str = "fp32", progress: bool = True, use_shared_memory: bool = True,
             all_ranks: bool = False) -> ConfusionMatrix:
    """Predict every image of ``dataset`` (batch 1, full size) and accumulate the confusion matrix.

    ``aug_eval`` turns on multi-scale (``scales``) and flip averaging; ``is_slide`` predicts in
    ``crop_size`` windows moved by ``stride`` (both [width, height]). ``all_ranks``: every rank of a
    multi-process job calls this, evaluates its shard, and the matrices are summed; otherwise (as
    in training, where rank 0 alone evaluates) this process evaluates the whole set.
    """
    if not aug_eval:
        scales, flip_horizontal, flip_vertical = (1.0,), False, False
    scales = [scales] if isinstance(scales, (int, float)) else list(scales)
    world, rank = (paddle.distributed.get_world_size(), paddle.distributed.get_rank()) if all_ranks else (1, 0)
    loader = build_dataloader(dataset, 1, shuffle=False, drop_last=False, num_workers=num_workers,
                              num_replicas=world, rank=rank, use_shared_memory=use_shared_memory)
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
            pred = paddle.argmax(logits, axis=1)
            matrix.update(pred.numpy(), batch["label"].numpy())
    if world > 1:
        total = paddle.to_tensor(matrix.matrix)
        paddle.distributed.all_reduce(total)
        matrix = ConfusionMatrix.from_matrix(total.numpy(), ignore_index=dataset.ignore_index)
    return matrix


def evaluate_checkpoint(cfg, model_path, *, device: str = "cpu", num_workers: int = 0, precision: str = "fp32",
                        cpu_threads: Optional[int] = None, **options) -> dict:
    """Build ``cfg``'s model, load ``model_path`` strictly, evaluate on ``cfg``'s val set; a report dict."""
    from paddleseg.utils.device import check_precision, set_device
    from paddleseg.checkpoint import load_entire_model
    from paddleseg.utils.cityscapes_labels import CITYSCAPES_CLASSES

    check_precision(precision, device)
    set_device(device, cpu_threads)
    dataset = cfg.build("val_dataset")
    model = cfg.model
    load_entire_model(model, model_path)
    world = paddle.distributed.get_world_size()
    if world > 1:
        paddle.distributed.init_parallel_env()
    matrix = evaluate(model, dataset, num_workers=num_workers, precision=precision, all_ranks=world > 1, **options)
    names = CITYSCAPES_CLASSES if dataset.num_classes == len(CITYSCAPES_CLASSES) else None
    iou = matrix.iou()
    return {"miou": matrix.miou(), "acc": matrix.pixel_accuracy(), "kappa": matrix.kappa(),
            "dice": matrix.mean_dice(), "images": len(dataset),
            "class_iou": [None if v != v else float(v) for v in iou], "table": matrix.table(names)}
