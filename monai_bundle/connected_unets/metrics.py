"""Per-image evaluation metrics on binary masks, and the paper's IoU90 and final accuracy.

The authors' reported Dice/IoU were soft batch metrics from ``model.evaluate``; here, as in the
paper's Eqs. (1)-(2), Dice and IoU are computed per image on binary masks (the config's
post-processing: threshold, largest component). Masks may be bool, 0/1 or 0/255: nonzero is
foreground. Soft (interpolated) targets should be binarised by the caller. Summaries over a test
set, with their confidence intervals, are :mod:`connected_unets.evaluation`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_iou, compute_roc_auc

__all__ = ["dice", "final_segmentation_accuracy", "iou", "iou90", "pixel_roc_auc"]


def _check_shapes(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} shape {a.shape} does not match {names[1]} shape {b.shape}")


def _check_prob(prob: np.ndarray) -> None:
    if np.isnan(prob).any():
        raise ValueError("prob contains NaN")


def _mask_pair(pred: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Both masks as bool tensors of shape (1, 1, ...), the layout MONAI's metrics expect."""
    pred, target = np.asarray(pred), np.asarray(target)
    _check_shapes(pred, target, ("pred", "target"))
    return torch.from_numpy(pred != 0)[None, None], torch.from_numpy(target != 0)[None, None]


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice ``2|P∩T| / (|P| + |T|)`` of two binary masks; 1.0 when both are empty.

    Both-empty counts as a perfect match (nothing to find, nothing predicted); an empty
    target with a non-empty prediction scores 0.
    """
    return float(compute_dice(*_mask_pair(pred, target), ignore_empty=False).item())


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """IoU ``|P∩T| / |P∪T|`` of two binary masks; 1.0 when both are empty (as for :func:`dice`)."""
    return float(compute_iou(*_mask_pair(pred, target), ignore_empty=False).item())


def pixel_roc_auc(prob: np.ndarray, target: np.ndarray) -> float:
    """ROC AUC of ``prob`` ranking the pixels of the binary ``target``, over all pixels.

    Returns NaN (not an exception) when the target has one class only, since the AUC is then
    undefined and such images should not abort an evaluation; summaries skip NaNs. Only the
    ranking of ``prob`` matters, so logits give the same value as probabilities.
    """
    prob, target = np.asarray(prob), np.asarray(target)
    _check_shapes(prob, target, ("prob", "target"))
    _check_prob(prob)
    labels = (target != 0).ravel()
    if labels.all() or not labels.any():
        return float("nan")
    return float(
        compute_roc_auc(torch.from_numpy(prob.astype(np.float64).ravel()), torch.from_numpy(labels.astype(np.float64)))
    )


def iou90(ious: Sequence[float], threshold: float = 0.9) -> tuple[float, float]:
    """``(mean IoU of the cases with IoU >= threshold, fraction of such cases)``.

    The paper's IoU_90 (the authors' commented-out code keeps test images whose IoU is at
    least 0.9 and averages them). The mean is NaN when no case qualifies; both are NaN for
    no cases.
    """
    values = np.asarray(ious, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("ious contain NaN")
    if values.size == 0:
        return float("nan"), float("nan")
    good = values[values >= threshold]
    mean = float(good.mean()) if good.size else float("nan")
    return mean, good.size / values.size


def final_segmentation_accuracy(detection_rate: float, iou90_mean: float) -> float:
    """The paper's "final segmentation accuracy" (Table 4): detection rate × IoU_90 mean.

    It chains the detector's hit rate with the segmentation quality of the well-segmented
    cases, so it scores the whole detect-then-segment pipeline.
    """
    if not 0.0 <= detection_rate <= 1.0:
        raise ValueError(f"detection_rate must be in [0, 1], got {detection_rate}")
    return detection_rate * iou90_mean
