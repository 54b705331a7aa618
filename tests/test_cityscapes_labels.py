"""Cityscapes class names, train id ↔ label id mappings and palette, as read from cityscapesscripts."""
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, labels, name2label

from paddleseg.utils.cityscapes_labels import (
    CITYSCAPES_CLASSES,
    NUM_CLASSES,
    PALETTE,
    TRAIN_ID_TO_LABEL_ID,
    class_names,
    colorize,
    train_id_table,
    train_ids_to_label_ids,
)


def test_the_19_training_classes_in_train_id_order():
    assert NUM_CLASSES == 19 and len(CITYSCAPES_CLASSES) == 19
    assert CITYSCAPES_CLASSES[:3] == ("road", "sidewalk", "building")
    assert CITYSCAPES_CLASSES[-1] == "bicycle"
    assert all(name2label[name].trainId == i for i, name in enumerate(CITYSCAPES_CLASSES))


def test_class_names_only_for_a_data_set_of_the_19_classes():
    assert class_names(19) == CITYSCAPES_CLASSES
    assert class_names(2) is None and class_names(20) is None


def test_train_ids_map_to_the_label_ids_of_the_same_class():
    assert TRAIN_ID_TO_LABEL_ID[0] == 7 and TRAIN_ID_TO_LABEL_ID[13] == 26 and TRAIN_ID_TO_LABEL_ID[18] == 33
    assert all(id2label[label_id].name == name for label_id, name in zip(TRAIN_ID_TO_LABEL_ID, CITYSCAPES_CLASSES))


def test_train_id_map_converts_to_label_ids_with_ignored_as_unlabeled():
    train_ids = np.array([[0, 13, 255], [18, 1, 255]], np.uint8)
    label_ids = train_ids_to_label_ids(train_ids)
    assert label_ids.dtype == np.uint8
    np.testing.assert_array_equal(label_ids, [[7, 26, 0], [33, 8, 0]])
    assert id2label[0].ignoreInEval


def test_palette_and_colorize_use_the_official_colours():
    assert PALETTE[0] == (128, 64, 128) and PALETTE[13] == (0, 0, 142)
    rgb = colorize(np.array([[0, 255]], np.int64))
    assert rgb.shape == (1, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0], [[128, 64, 128], [0, 0, 0]])


def test_values_that_are_no_train_id_are_rejected():
    with pytest.raises(ValueError, match=r"not a Cityscapes train id: \[19, 33\]"):
        train_ids_to_label_ids(np.array([0, 19, 33, 255]))


def test_train_id_table_follows_cityscapesscripts():
    table = train_id_table()
    for label in labels:
        if label.id >= 0:
            expected = label.trainId if 0 <= label.trainId < 255 else 255
            assert table[label.id] == expected, label.name
    assert sorted(set(table.tolist()) - {255}) == list(range(19))
