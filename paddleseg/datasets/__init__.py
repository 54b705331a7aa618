"""Datasets: files on disk to samples; the loader turns samples into batches."""
from paddleseg.datasets.checks import check_contents
from paddleseg.datasets.cityscapes import Cityscapes
from paddleseg.datasets.dataset import Dataset, SegmentationDataset
from paddleseg.datasets.loader import build_dataloader

__all__ = ["Cityscapes", "Dataset", "SegmentationDataset", "build_dataloader", "check_contents"]
