"""Specification of the per-image evaluation metrics, IoU90 and the final segmentation accuracy."""

import math

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE_DATA
from connected_unets.metrics import dice, final_segmentation_accuracy, iou, iou90, pixel_roc_auc

MASKS = SAMPLE_DATA / "masks"


def _real_mask(name: str = "P60_L_DM_MLO.png") -> np.ndarray:
    """A real single-mass 0/255 mask (shipped sample) as bool."""
    return np.asarray(Image.open(MASKS / name)) > 0


def _overlap_pair() -> tuple[np.ndarray, np.ndarray]:
    """pred has 3 px, target 4 px, 2 px overlap."""
    pred = np.zeros((4, 4), bool)
    target = np.zeros((4, 4), bool)
    pred[0, 0:3] = True
    target[0, 1:3] = True
    target[1, 1:3] = True
    return pred, target


# --- Dice / IoU ------------------------------------------------------------------------------


def test_dice_of_identical_masks_is_one():
    pred, _ = _overlap_pair()
    assert dice(pred, pred) == 1.0


def test_dice_and_iou_hand_computed():
    pred, target = _overlap_pair()
    assert dice(pred, target) == pytest.approx(4 / 7)
    assert iou(pred, target) == pytest.approx(2 / 5)


def test_disjoint_masks_score_zero():
    pred = np.zeros((4, 4), bool)
    target = np.zeros((4, 4), bool)
    pred[0, 0] = True
    target[3, 3] = True
    assert dice(pred, target) == 0.0
    assert iou(pred, target) == 0.0


def test_both_empty_counts_as_perfect():
    empty = np.zeros((4, 4), bool)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0


def test_prediction_on_empty_target_scores_zero():
    pred, _ = _overlap_pair()
    empty = np.zeros_like(pred)
    assert dice(pred, empty) == 0.0
    assert iou(pred, empty) == 0.0


def test_masks_may_be_0_255_uint8():
    pred, target = _overlap_pair()
    assert dice(pred.astype(np.uint8) * 255, target.astype(np.uint8)) == pytest.approx(4 / 7)


def test_dice_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        dice(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_real_mask_dice_with_itself_is_one():
    mask = _real_mask()
    assert dice(mask, mask) == 1.0
    assert iou(mask, mask) == 1.0


def test_real_mask_dice_with_shifted_copy_matches_numpy():
    mask = _real_mask()
    shifted = np.zeros_like(mask)
    shifted[:, 1:] = mask[:, :-1]
    inter = np.logical_and(mask, shifted).sum()
    expected_dice = 2 * inter / (mask.sum() + shifted.sum())
    expected_iou = inter / np.logical_or(mask, shifted).sum()
    assert dice(mask, shifted) < 1.0
    assert dice(mask, shifted) == pytest.approx(expected_dice, rel=1e-6)
    assert iou(mask, shifted) == pytest.approx(expected_iou, rel=1e-6)


# --- pixel ROC AUC ---------------------------------------------------------------------------


def test_auc_of_perfect_ranking_is_one():
    target = np.array([[0, 0, 1, 1]])
    assert pixel_roc_auc(np.array([[0.1, 0.2, 0.8, 0.9]]), target) == pytest.approx(1.0)


def test_auc_of_inverted_ranking_is_zero():
    target = np.array([[0, 0, 1, 1]])
    assert pixel_roc_auc(np.array([[0.9, 0.8, 0.2, 0.1]]), target) == pytest.approx(0.0)


def test_auc_counts_ties_as_half():
    # one positive tied with one negative, the other positive above both: (1 + 1 + 0.5 + 1) / 4
    target = np.array([0, 0, 1, 1])
    assert pixel_roc_auc(np.array([0.1, 0.5, 0.5, 0.9]), target) == pytest.approx(3.5 / 4)


def test_auc_of_single_class_target_is_nan():
    prob = np.array([[0.1, 0.9]])
    assert math.isnan(pixel_roc_auc(prob, np.zeros((1, 2))))
    assert math.isnan(pixel_roc_auc(prob, np.ones((1, 2))))


def test_auc_rejects_nan_probabilities():
    with pytest.raises(ValueError, match="NaN"):
        pixel_roc_auc(np.array([[np.nan, 0.5]]), np.array([[0, 1]]))


def test_auc_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        pixel_roc_auc(np.zeros(2), np.zeros(3))


def test_auc_of_real_mask_as_its_own_probability_is_one():
    mask = _real_mask()
    assert pixel_roc_auc(mask.astype(np.float32), mask) == pytest.approx(1.0)


# --- IoU_90 and final segmentation accuracy --------------------------------------------------


def test_iou90_averages_only_cases_at_or_above_threshold():
    mean, fraction = iou90([0.95, 0.9, 0.5, 0.2])
    assert mean == pytest.approx(0.925)
    assert fraction == pytest.approx(0.5)


def test_iou90_mean_is_nan_when_no_case_qualifies():
    mean, fraction = iou90([0.5, 0.89])
    assert math.isnan(mean)
    assert fraction == 0.0


def test_iou90_threshold_is_an_argument():
    assert iou90([0.85, 0.5], threshold=0.8) == (pytest.approx(0.85), pytest.approx(0.5))


def test_final_segmentation_accuracy_is_detection_rate_times_iou90_mean():
    assert final_segmentation_accuracy(0.98, 0.95) == pytest.approx(0.931)


def test_final_segmentation_accuracy_rejects_rate_outside_unit_interval():
    with pytest.raises(ValueError, match="detection_rate"):
        final_segmentation_accuracy(98.0, 0.95)
