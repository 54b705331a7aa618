"""Cityscapes in its official layout: ``leftImg8bit/<mode>/<city>/*_leftImg8bit.png`` and
``gtFine/<mode>/<city>/*_gtFine_labelTrainIds.png`` (written by ``tools/convert_cityscapes.py`` from the
official ``*_gtFine_polygons.json`` or ``*_gtFine_labelIds.png``). The classes, ids and palette are in
:mod:`paddleseg.utils.cityscapes_labels`; the file names of the layout are here."""
from pathlib import Path

from paddleseg.cvlibs import manager
from paddleseg.datasets.dataset import SegmentationDataset
from paddleseg.errors import DatasetError
from paddleseg.utils.cityscapes_labels import CITYSCAPES_CLASSES, IGNORE_INDEX, NUM_CLASSES

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelTrainIds.png"  # what this data set reads
POLYGON_SUFFIX = "_gtFine_polygons.json"  # the official annotations it is converted from
LABEL_ID_SUFFIX = "_gtFine_labelIds.png"


@manager.DATASETS.add_component
class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations, 19 training classes (``class_names``: cityscapesscripts' names),
    ignore index 255.

    Args:
        dataset_root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        transforms: the transforms of each sample (built from the config's list).
        mode: train, val or test (test needs no labels).
    """

    def __init__(self, dataset_root: str, transforms: list, mode: str = "train"):
        super().__init__(transforms, NUM_CLASSES, mode, IGNORE_INDEX, CITYSCAPES_CLASSES)
        self.dataset_root = Path(dataset_root)
        self.validate()

    def validate(self) -> None:
        """Structural checks: root and split folders exist, images found, every image has its label."""
        root = self.dataset_root
        if not root.is_dir():
            raise DatasetError(f"Cityscapes dataset_root {root}: folder not found (run "
                               f"tools/make_synthetic_cityscapes.py, or point it at the official download)")
        image_dir, label_dir = root / "leftImg8bit" / self.mode, root / "gtFine" / self.mode
        if not image_dir.is_dir():
            raise DatasetError(f"Cityscapes {self.mode} split: folder not found: {image_dir}")
        images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not images:
            raise DatasetError(f"Cityscapes {self.mode} split: no images found matching "
                               f"{image_dir}/<city>/*{IMAGE_SUFFIX}")
        if self.mode == "test":
            self.file_list = [(str(p), None) for p in images]
            return
        if not label_dir.is_dir():
            raise DatasetError(f"Cityscapes {self.mode} split: label folder not found: {label_dir}")
        pairs = [(p, label_dir / p.parent.name / p.name.replace(IMAGE_SUFFIX, LABEL_SUFFIX)) for p in images]
        missing = [str(label) for _, label in pairs if not label.is_file()]
        if missing:
            hint = ""
            if any(Path(m.replace(LABEL_SUFFIX, POLYGON_SUFFIX)).is_file() for m in missing[:1]):
                hint = " (the polygons are there: run tools/convert_cityscapes.py to write the train-id labels)"
            raise DatasetError(f"Cityscapes {self.mode} split: {len(missing)} of {len(images)} images have no "
                               f"label, e.g. {', '.join(missing[:3])}{hint}")
        self.file_list = [(str(i), str(label)) for i, label in pairs]
