"""Per-image evaluation metrics on binarised masks, and their summary over a test set.

The authors' reported Dice/IoU were soft batch metrics from ``model.evaluate``; here, as in the
paper's Eqs. (1)-(2), Dice and IoU are computed per image on binary masks (after threshold and,
by default, largest-component post-processing). Masks may be bool, 0/1 or 0/255: nonzero is
foreground. Soft (interpolated) targets should be binarised by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_iou, compute_roc_auc

from connected_unets.postprocess import binarize, keep_largest_component

__all__ = [
    "case_scores",
    "dice",
    "final_segmentation_accuracy",
    "iou",
    "iou90",
    "pixel_roc_auc",
    "summarize",
]

_SUMMARY_KEYS = ("dice", "iou", "auc")


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


def case_scores(
    prob: np.ndarray, target: np.ndarray, threshold: float = 0.5, largest_component: bool = True
) -> dict[str, float]:
    """Scores of one image: ``{"dice", "iou", "auc"}``.

    AUC uses the probabilities; Dice and IoU use ``prob >= threshold``, reduced to its largest
    component when ``largest_component`` (the paper's post-processing).
    """
    prob, target = np.asarray(prob), np.asarray(target)
    _check_shapes(prob, target, ("prob", "target"))
    pred = binarize(prob, threshold)
    if largest_component:
        pred = keep_largest_component(pred)
    return {"dice": dice(pred, target), "iou": iou(pred, target), "auc": pixel_roc_auc(prob, target)}


def _nan_stats(values: np.ndarray) -> tuple[float, float]:
    """(mean, median) ignoring NaNs; NaN, without numpy's empty-slice warning, if all are NaN."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(np.median(finite))


def summarize(scores: list[dict[str, float]]) -> dict[str, float]:
    """Test-set summary of :func:`case_scores` outputs.

    Keys: ``{dice,iou,auc}_{mean,median}`` (NaN-aware, so single-class images drop out of the
    AUC), ``iou90_mean``, ``iou90_fraction`` and ``n`` (number of cases).
    """
    if not scores:
        raise ValueError("scores is empty")
    summary: dict[str, float] = {}
    for key in _SUMMARY_KEYS:
        summary[f"{key}_mean"], summary[f"{key}_median"] = _nan_stats(
            np.array([s[key] for s in scores], dtype=np.float64)
        )
    summary["iou90_mean"], summary["iou90_fraction"] = iou90([s["iou"] for s in scores])
    summary["n"] = len(scores)
    return summary
