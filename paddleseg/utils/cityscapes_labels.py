"""The 19 Cityscapes training classes, read from cityscapesscripts' label table (not copied by hand).

The one home of the Cityscapes facts the package uses: class names, ids, palette and ignore index.
Train ids 0..18 index the model's outputs; label ids are what the official annotations, the
evaluator and the test server use; 255 marks ignored pixels.

    CITYSCAPES_CLASSES[13] == "car";  TRAIN_ID_TO_LABEL_ID[13] == 26;  PALETTE[13] == (0, 0, 142)
    train_id_table()[26] == 13;       class_names(19) == CITYSCAPES_CLASSES;  class_names(2) is None
"""
from typing import Optional, Tuple

import numpy as np
from cityscapesscripts.helpers.labels import labels

IGNORE_INDEX = 255
# The label id written for ignored pixels: 'unlabeled', which the evaluator ignores.
IGNORE_LABEL_ID = 0

_TRAIN_LABELS = sorted((label for label in labels if 0 <= label.trainId < IGNORE_INDEX), key=lambda entry: entry.trainId)
assert [label.trainId for label in _TRAIN_LABELS] == list(range(19)), "cityscapesscripts' train ids changed"

NUM_CLASSES = len(_TRAIN_LABELS)
CITYSCAPES_CLASSES: Tuple[str, ...] = tuple(label.name for label in _TRAIN_LABELS)
TRAIN_ID_TO_LABEL_ID: Tuple[int, ...] = tuple(label.id for label in _TRAIN_LABELS)
PALETTE: Tuple[Tuple[int, int, int], ...] = tuple(tuple(label.color) for label in _TRAIN_LABELS)


def class_names(num_classes: int) -> Optional[Tuple[str, ...]]:
    """The Cityscapes class names for a data set of ``num_classes`` classes, or None when it has
    another number of classes (then classes are shown by their index)."""
    return CITYSCAPES_CLASSES if num_classes == NUM_CLASSES else None


def train_id_table() -> np.ndarray:
    """uint8 table of 256 entries: label id → train id (255 where the class is not trained)."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[list(TRAIN_ID_TO_LABEL_ID)] = np.arange(NUM_CLASSES)
    return table


def _train_id_lookup(values, fill) -> np.ndarray:
    """A 256-entry table indexed by train id: ``values`` for 0..18, ``fill`` for 255 and the rest."""
    table = np.full((256,) + np.shape(fill), fill, dtype=np.uint8)
    table[:NUM_CLASSES] = values
    return table


def _check_train_ids(train_ids: np.ndarray) -> np.ndarray:
    train_ids = np.asarray(train_ids)
    invalid = (train_ids != IGNORE_INDEX) & ((train_ids < 0) | (train_ids >= NUM_CLASSES))
    if invalid.any():
        raise ValueError(f"not a Cityscapes train id: {np.unique(train_ids[invalid])[:10].tolist()} "
                         f"(valid: 0..{NUM_CLASSES - 1} and {IGNORE_INDEX})")
    return train_ids


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """A uint8 label-id map for a train-id map (ignored pixels → 0, 'unlabeled'); same shape."""
    return _train_id_lookup(TRAIN_ID_TO_LABEL_ID, IGNORE_LABEL_ID)[_check_train_ids(train_ids)]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """An RGB uint8 image (..., 3) of a train-id map in the Cityscapes colours (ignored pixels black)."""
    return _train_id_lookup(PALETTE, (0, 0, 0))[_check_train_ids(train_ids)]
