"""ConfusionMatrix: counts, scores against hand-computed values, and agreement with the official
Cityscapes evaluator (cityscapesscripts) on generated label maps."""
import math
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from paddleseg.errors import DatasetError
from paddleseg.utils.cityscapes_labels import CITYSCAPES_CLASSES, NUM_CLASSES, train_ids_to_label_ids
from paddleseg.utils.metrics import ConfusionMatrix

IGNORE = 255
# ground truth / prediction of a 3-class toy case, one ignored pixel predicted as class 2
LABEL = np.array([[0, 0, 1, 1], [0, 1, 1, IGNORE]])
PRED = np.array([[0, 1, 1, 1], [0, 1, 0, 2]])


def _toy() -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes=3)
    cm.update(PRED, LABEL)
    return cm


def test_update_counts_ground_truth_rows_and_prediction_columns():
    expected = np.array([[2, 1, 0], [1, 3, 0], [0, 0, 0]])
    np.testing.assert_array_equal(_toy().matrix, expected)
    assert _toy().matrix.dtype == np.int64


def test_predictions_on_ignored_ground_truth_are_not_false_positives():
    cm = _toy()
    assert cm.matrix[:, 2].sum() == 0  # the class-2 prediction sat on an ignored pixel
    assert math.isnan(cm.iou()[2])


def test_scores_of_the_toy_case():
    cm = _toy()
    np.testing.assert_allclose(cm.iou()[:2], [2 / 4, 3 / 5])
    assert cm.miou() == pytest.approx((2 / 4 + 3 / 5) / 2)  # class 2 (absent everywhere) left out
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    np.testing.assert_allclose(cm.class_precision()[:2], [2 / 3, 3 / 4])
    np.testing.assert_allclose(cm.class_recall()[:2], [2 / 3, 3 / 4])
    np.testing.assert_allclose(cm.dice()[:2], [4 / 6, 6 / 8])
    assert cm.mean_dice() == pytest.approx((4 / 6 + 6 / 8) / 2)
    p_o, p_e = 5 / 7, (3 * 3 + 4 * 4) / 49
    assert cm.kappa() == pytest.approx((p_o - p_e) / (1 - p_e))


def test_class_predicted_but_absent_from_ground_truth_has_iou_zero():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(np.array([0, 2]), np.array([0, 0]))
    np.testing.assert_array_equal(cm.iou(), [0.5, np.nan, 0.0])
    assert cm.miou() == pytest.approx(0.25)


def test_empty_matrix_scores_are_nan_without_warnings():
    cm = ConfusionMatrix(num_classes=2)
    with np.errstate(all="raise"):
        assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy()) and math.isnan(cm.kappa())


def test_batches_tensors_and_images_accumulate_alike():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (3, 5, 6))
    label[rng.random(label.shape) < 0.2] = IGNORE
    pred = rng.integers(0, 4, (3, 5, 6))
    batched, per_image = ConfusionMatrix(4), ConfusionMatrix(4)
    batched.update(paddle.to_tensor(pred), paddle.to_tensor(label))
    for p, lab in zip(pred.astype(np.uint8), label.astype(np.uint8)):
        per_image.update(p, lab)
    np.testing.assert_array_equal(batched.matrix, per_image.matrix)
    assert batched.matrix.sum() == (label != IGNORE).sum()


def test_merge_and_from_matrix_give_the_whole_set_matrix():
    first, second, whole = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    first.update(PRED[0], LABEL[0])
    second.update(PRED[1], LABEL[1])
    whole.update(PRED, LABEL)
    reduced = ConfusionMatrix.from_matrix(first.matrix + second.matrix)  # what an all-reduce returns
    first += second
    np.testing.assert_array_equal(first.matrix, whole.matrix)
    np.testing.assert_array_equal(reduced.matrix, whole.matrix)
    with pytest.raises(ValueError, match="cannot merge a 4-class"):
        whole.merge(ConfusionMatrix(4))


def test_out_of_range_values_are_clear_errors():
    with pytest.raises(DatasetError, match=r"label values \[7\]"):
        ConfusionMatrix(3).update(np.array([0, 1]), np.array([0, 7]))
    with pytest.raises(ValueError, match=r"prediction values \[3\]"):
        ConfusionMatrix(3).update(np.array([3, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="differ"):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_table_lists_every_class_and_marks_absent_ones():
    text = _toy().table(["road", "car", "bus"])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in text.splitlines() if line.startswith("|")}
    assert rows["road"] == ["0.5000", "0.6667", "0.6667"]
    assert rows["bus"] == ["n/a", "n/a", "n/a"]
    assert rows["mean"][0] == "0.5500"
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        _toy().table(["road", "car"])


# ---- agreement with the official Cityscapes evaluator -----------------------------------------
def _write_pairs(root: Path, count: int = 4, shape=(24, 32)):
    """Generated train-id ground truth and predictions, written as label-id PNGs in Cityscapes naming."""
    rng = np.random.default_rng(42)
    gt_files, pred_files, ours = [], [], ConfusionMatrix(NUM_CLASSES)
    for i in range(count):
        label = rng.integers(0, 17, shape)  # classes 17 (motorcycle) and 18 (bicycle) never in the ground truth
        label[rng.random(shape) < 0.15] = IGNORE
        pred = np.where(rng.random(shape) < 0.6, label, rng.integers(0, 18, shape))  # 18 never predicted
        pred[pred == IGNORE] = rng.integers(0, 18)
        stem = f"frankfurt_{i:06d}_{19 * i:06d}"
        gt_file, pred_file = root / f"{stem}_gtFine_labelIds.png", root / f"{stem}_pred_labelIds.png"
        Image.fromarray(train_ids_to_label_ids(label)).save(gt_file)
        Image.fromarray(train_ids_to_label_ids(pred)).save(pred_file)
        gt_files.append(str(gt_file))
        pred_files.append(str(pred_file))
        ours.update(pred, label)
    return pred_files, gt_files, ours


def test_iou_agrees_with_the_official_cityscapes_evaluator(tmp_path, monkeypatch):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    pred_files, gt_files, ours = _write_pairs(tmp_path)
    monkeypatch.chdir(tmp_path)  # the evaluator writes nothing with these settings; if it did, not into the repo
    for name, value in {"quiet": True, "evalInstLevelScore": False, "JSONOutput": False,
                        "evalPixelAccuracy": False, "exportFile": str(tmp_path / "result.json")}.items():
        monkeypatch.setattr(official.args, name, value)
    result = official.evaluateImgLists(pred_files, gt_files, official.args)

    # Tolerance 1e-4: both sides are exact ratios of the same integer counts; the slack only absorbs float
    # rounding. The cases that differ between careless implementations are present: ignored ground truth
    # under predictions, a class predicted but absent (IoU 0) and a class absent everywhere (NaN).
    theirs = np.array([result["classScores"][name] for name in CITYSCAPES_CLASSES])
    iou = ours.iou()
    np.testing.assert_array_equal(np.isnan(iou), np.isnan(theirs))
    assert np.isnan(iou[18]) and iou[17] == 0.0
    np.testing.assert_allclose(iou[~np.isnan(iou)], theirs[~np.isnan(theirs)], atol=1e-4)
    assert ours.miou() == pytest.approx(result["averageScoreClasses"], abs=1e-4)
