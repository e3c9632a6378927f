"""Every statistic of the evaluation, in one place: bootstrap confidence intervals resampling
lesions or patients, the IoU90 statistics, paired intervals of a gain, the pooled pixel ROC and
the whole-ROI reference.

Lesions of one patient (the CC and MLO views of one mass, several masses of one breast) are
correlated, so intervals that resample lesions as if independent are too narrow; the
patient-clustered ones resample patients with all their lesions. Both use numpy's
``default_rng(seed)``, so a rerun gives the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import dice, iou

if TYPE_CHECKING:
    from .cases import CaseResult

__all__ = [
    "IOU90_THRESHOLD",
    "bootstrap_ci",
    "final_accuracy_intervals",
    "iou90_intervals",
    "mean_intervals",
    "paired_bootstrap_ci",
    "patient_bootstrap_ci",
    "patient_totals",
    "pooled_mean",
    "pooled_roc",
    "whole_roi_reference",
]

IOU90_THRESHOLD = 0.9
Interval = tuple[float, float]
Statistic = Callable[[np.ndarray], np.ndarray]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Statistic = lambda s: s.mean(axis=1),
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap confidence interval of ``statistic`` over cases, reproducible by ``seed``.

    ``values`` has one row per case (shape (n,) or (n, k) for statistics of several columns, such
    as the final segmentation accuracy); ``statistic`` maps resamples of shape (B, n[, k]) to B
    values. Resamples where the statistic is NaN (e.g. the IoU90 mean when no resampled case
    reaches 0.9) are left out. One case gives a zero-width interval; no case, NaNs.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    chunk = max(1, 4_000_000 // max(n * (values.size // n), 1))  # bound memory for large test sets
    stats = []
    for start in range(0, n_resamples, chunk):
        indices = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        stats.append(np.asarray(statistic(values[indices]), dtype=np.float64))
    stats = np.concatenate(stats)
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


# --------------------------------------------------------------------------- resampling patients


def patient_totals(columns: Sequence[float] | np.ndarray, patients: Sequence[Hashable]) -> np.ndarray:
    """Per-patient sums of the per-lesion ``columns`` (shape (n,) or (n, k)), one row per patient in
    order of first appearance, summed in lesion order (so the same input gives the same bits)."""
    columns = np.asarray(columns, dtype=np.float64)
    columns = columns[:, None] if columns.ndim == 1 else columns
    if columns.shape[0] != len(patients):
        raise ValueError(f"{columns.shape[0]} lesions but {len(patients)} patient ids")
    order: dict[Hashable, int] = {}
    rows = np.array([order.setdefault(patient, len(order)) for patient in patients], dtype=np.intp)
    totals = np.zeros((len(order), columns.shape[1]))
    np.add.at(totals, rows, columns)  # unbuffered: adds lesion by lesion
    return totals


def _ratio(samples: np.ndarray, numerator: int, denominator: int) -> np.ndarray:
    """Per resample, the total of one column over the total of another; NaN where that is zero."""
    num, den = samples[..., numerator].sum(axis=1), samples[..., denominator].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def pooled_mean(samples: np.ndarray) -> np.ndarray:
    """Mean over the lesions of resampled patients, from patient rows of (sum of the values, number
    of lesions counted): a patient with more lesions weighs more, as in the lesion-level mean."""
    return _ratio(samples, 0, 1)


def patient_bootstrap_ci(
    columns: Sequence[float] | np.ndarray,
    patients: Sequence[Hashable],
    statistic: Statistic = pooled_mean,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap CI resampling patients, each with all its lesions.

    ``columns`` holds per-lesion values (shape (n, k)); they are summed per patient and
    ``statistic`` maps resamples of those patient rows, shape (B, m, k), to B values. The default
    is the mean of column 0 with column 1 the lesion count: pass ``np.stack([values, ones], 1)``.
    Patient ids are compared as they are (an empty id is one patient like any other).
    """
    return bootstrap_ci(patient_totals(columns, patients), statistic, n_resamples, confidence, seed)


# --------------------------------------------------------------------------- the report's intervals


def _with_count(*columns: np.ndarray) -> np.ndarray:
    """Per-lesion columns for :func:`patient_bootstrap_ci`, with a trailing column of ones."""
    return np.stack([*columns, np.ones_like(columns[0])], axis=1)


def mean_intervals(
    values: np.ndarray, patients: Sequence[Hashable], n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> tuple[Interval, Interval]:
    """(lesion-level, patient-level) bootstrap CIs of the mean of per-lesion ``values``."""
    values = np.asarray(values, dtype=np.float64)
    return (
        bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed),
        patient_bootstrap_ci(_with_count(values), patients, pooled_mean, n_resamples, confidence, seed),
    )


def _iou90_fraction(samples: np.ndarray) -> np.ndarray:
    return (samples >= IOU90_THRESHOLD).mean(axis=1)


def _iou90_mean(samples: np.ndarray) -> np.ndarray:
    good = samples >= IOU90_THRESHOLD
    counts = good.sum(axis=1)
    sums = np.where(good, samples, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _final_accuracy(samples: np.ndarray) -> np.ndarray:
    """Detection rate x IoU90 mean of resamples of (detected, iou) rows."""
    return samples[..., 0].mean(axis=1) * _iou90_mean(samples[..., 1])


def _good_columns(ious: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IoU where it reaches the IoU90 threshold else 0, 1 where it does else 0) per lesion."""
    good = (ious >= IOU90_THRESHOLD).astype(np.float64)
    return ious * good, good


def iou90_intervals(
    ious: np.ndarray, patients: Sequence[Hashable], n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> dict[str, tuple[Interval, Interval]]:
    """(lesion-level, patient-level) CIs of the IoU90 ``fraction`` (share of lesions with IoU >= 0.9)
    and ``mean`` (mean IoU of those lesions; resamples without one are left out)."""
    ious = np.asarray(ious, dtype=np.float64)
    good_iou, good = _good_columns(ious)
    boot = (n_resamples, confidence, seed)
    return {
        "fraction": (
            bootstrap_ci(ious, _iou90_fraction, *boot),
            patient_bootstrap_ci(_with_count(good), patients, pooled_mean, *boot),
        ),
        "mean": (
            bootstrap_ci(ious, _iou90_mean, *boot),
            patient_bootstrap_ci(np.stack([good_iou, good], axis=1), patients, pooled_mean, *boot),
        ),
    }


def _pooled_final_accuracy(samples: np.ndarray) -> np.ndarray:
    """Detection rate x IoU90 mean of resampled patient rows (detected, 1, good IoU, good)."""
    return _ratio(samples, 0, 1) * _ratio(samples, 2, 3)


def final_accuracy_intervals(
    detected: np.ndarray,
    ious: np.ndarray,
    patients: Sequence[Hashable],
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[Interval, Interval]:
    """(lesion-level, patient-level) joint CIs of the paper's final segmentation accuracy, detection
    rate x IoU90 mean, from per-lesion detection flags (0/1) and IoUs."""
    detected, ious = np.asarray(detected, dtype=np.float64), np.asarray(ious, dtype=np.float64)
    good_iou, good = _good_columns(ious)
    columns = np.stack([detected, np.ones_like(detected), good_iou, good], axis=1)
    return (
        bootstrap_ci(np.stack([detected, ious], axis=1), _final_accuracy, n_resamples, confidence, seed),
        patient_bootstrap_ci(columns, patients, _pooled_final_accuracy, n_resamples, confidence, seed),
    )


def paired_bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    base_values: Sequence[float] | np.ndarray,
    patients: Sequence[Hashable] | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """CI of the mean per-lesion difference ``values - base_values`` of two models on the same
    lesions, each lesion's two scores resampled together: the paired interval is the one that says
    whether a gain is resolved. Given ``patients``, patients are resampled with all their lesions."""
    differences = np.asarray(values, dtype=np.float64) - np.asarray(base_values, dtype=np.float64)
    if patients is None:
        return bootstrap_ci(differences, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return patient_bootstrap_ci(_with_count(differences), patients, pooled_mean, n_resamples, confidence, seed)


# --------------------------------------------------------------------------- pixels


def pooled_roc(cases: Sequence[CaseResult]) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve (fpr, tpr) and its AUC over the pixels of all cases pooled together.

    Exact for the stored float16 probabilities: for non-negative float16 values the bit pattern
    orders like the value, so per-value pixel counts come from one ``bincount`` (no sort of
    millions of pixels). Ties count half, as in the usual trapezoidal AUC.
    """
    positives = np.zeros(1 << 16, dtype=np.int64)
    negatives = np.zeros(1 << 16, dtype=np.int64)
    for case in cases:
        bits = np.clip(case.prob, 0, None).astype(np.float16).view(np.uint16).ravel()
        target = case.label.ravel()
        positives += np.bincount(bits[target], minlength=1 << 16)
        negatives += np.bincount(bits[~target], minlength=1 << 16)
    present = (positives + negatives) > 0
    tp = np.cumsum(positives[present][::-1])  # thresholds from the highest probability down
    fp = np.cumsum(negatives[present][::-1])
    if tp.size == 0 or tp[-1] == 0 or fp[-1] == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def whole_roi_reference(cases: Sequence[CaseResult]) -> dict[str, float]:
    """Mean Dice and IoU of a mask that fills every scored ROI: what a model that has learnt nothing
    but "the box is the mass" scores, so the report's numbers can be read against it (on the
    shipped validation ROIs it is about 0.57, far from zero)."""
    return {
        "dice": float(np.mean([dice(np.ones_like(c.label), c.label) for c in cases])),
        "iou": float(np.mean([iou(np.ones_like(c.label), c.label) for c in cases])),
    }
