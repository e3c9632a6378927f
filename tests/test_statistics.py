"""connected_unets.evaluation.statistics: lesion- and patient-level bootstrap intervals on arrays
whose answer is known (hand-computable totals, degenerate resamples, the sqrt(2) widening of
pairs of correlated lesions)."""

from __future__ import annotations

import numpy as np
import pytest

from connected_unets.evaluation.statistics import (
    final_accuracy_intervals,
    iou90_intervals,
    mean_intervals,
    paired_bootstrap_ci,
    patient_bootstrap_ci,
    patient_totals,
    pooled_mean,
)


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def two_views(n_patients: int, between: float, within: float, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """Dice of two lesions (say the CC and MLO views of one mass) per patient: a patient effect with
    sd ``between`` shared by both, plus per-lesion noise with sd ``within``."""
    rng = np.random.default_rng(seed)
    values = np.repeat(rng.normal(0.8, between, n_patients), 2) + rng.normal(0.0, within, 2 * n_patients)
    return values, [f"P{i}" for i in range(n_patients) for _ in range(2)]


def test_patient_totals_sum_each_patients_lesions_in_order_of_first_appearance():
    totals = patient_totals(np.array([[0.5, 1], [0.7, 1], [0.2, 1], [0.9, 1]]), ["B", "A", "B", "C"])
    np.testing.assert_array_equal(totals, [[0.7, 2], [0.7, 1], [0.9, 1]])


def test_the_pooled_mean_of_all_patients_is_the_mean_over_lesions():
    """A patient with three lesions weighs three times, as in the lesion-level mean."""
    values, patients = np.array([0.9, 0.8, 0.7, 0.2]), ["A", "A", "A", "B"]
    totals = patient_totals(np.stack([values, np.ones(4)], axis=1), patients)
    assert pooled_mean(totals[None])[0] == pytest.approx(values.mean())


def test_patient_ids_must_match_the_lesions():
    with pytest.raises(ValueError, match="3 lesions but 2 patient ids"):
        patient_totals(np.zeros(3), ["A", "B"])


def test_one_lesion_per_patient_gives_the_lesion_interval():
    values = np.random.default_rng(0).uniform(size=40)
    lesion_ci, patient_ci = mean_intervals(values, [f"P{i}" for i in range(40)])
    assert patient_ci == pytest.approx(lesion_ci, abs=1e-12)


def test_correlated_lesions_of_a_patient_widen_the_patient_interval_by_about_sqrt_2():
    """Two near-identical lesions per patient carry the information of one: resampling lesions
    counts 40 independent cases where there are 20, so its interval is ~sqrt(2) too narrow."""
    values, patients = two_views(20, between=0.08, within=0.01)
    lesion_ci, patient_ci = mean_intervals(values, patients)
    assert 1.25 < width(patient_ci) / width(lesion_ci) < 1.65
    assert patient_ci[0] < values.mean() < patient_ci[1]


def test_independent_lesions_of_a_patient_leave_the_interval_as_it_is():
    """Grouping alone does not widen: lesions of one patient that share nothing give ~ the lesion CI."""
    values, patients = two_views(200, between=0.0, within=0.08)
    lesion_ci, patient_ci = mean_intervals(values, patients)
    assert 0.85 < width(patient_ci) / width(lesion_ci) < 1.15


def test_the_same_seed_gives_the_same_patient_interval():
    values, patients = two_views(15, between=0.05, within=0.03)
    columns = np.stack([values, np.ones_like(values)], axis=1)
    assert patient_bootstrap_ci(columns, patients, seed=4) == patient_bootstrap_ci(columns, patients, seed=4)
    assert patient_bootstrap_ci(columns, patients, seed=4) != patient_bootstrap_ci(columns, patients, seed=5)


def test_iou90_of_resampled_patients():
    """Patient A has both its lesions at IoU >= 0.9, patient B none. Resampling the two patients the
    share runs from 0 (B twice) to 1 (A twice); the mean IoU of the good lesions is always A's
    (resamples of B alone have none and are left out)."""
    ious = np.array([0.95, 0.93, 0.5, 0.6])
    intervals = iou90_intervals(ious, ["A", "A", "B", "B"])
    assert intervals["fraction"][1] == pytest.approx((0.0, 1.0))
    assert intervals["mean"][1] == pytest.approx((0.94, 0.94))
    assert intervals["mean"][0] == pytest.approx((0.93, 0.95))  # lesions resampled: one good lesion can repeat


def test_final_accuracy_of_resampled_patients_is_rate_times_iou90_mean():
    """Every lesion detected and at IoU 0.92: the final accuracy is 0.92 in every resample."""
    detected, ious = np.ones(6), np.full(6, 0.92)
    lesion_ci, patient_ci = final_accuracy_intervals(detected, ious, ["A", "A", "B", "C", "C", "C"])
    assert lesion_ci == pytest.approx((0.92, 0.92)) and patient_ci == pytest.approx((0.92, 0.92))


def test_final_accuracy_interval_contains_its_value():
    rng = np.random.default_rng(2)
    detected = (rng.uniform(size=30) < 0.8).astype(float)
    ious = rng.uniform(0.7, 0.99, size=30)
    patients = [f"P{i // 3}" for i in range(30)]
    good = ious >= 0.9
    value = detected.mean() * ious[good].mean()
    for low, high in final_accuracy_intervals(detected, ious, patients):
        assert 0.0 <= low < value < high <= 1.0


def test_a_paired_interval_resolves_a_gain_that_separate_intervals_do_not():
    """Lesions vary a lot, the gain little: ours = base + 0.03 on every lesion, up to noise."""
    rng = np.random.default_rng(6)
    base = rng.uniform(0.5, 0.95, size=30)
    ours = base + 0.03 + rng.normal(0.0, 0.01, size=30)
    patients = [f"P{i // 2}" for i in range(30)]
    (ours_low, _), (_, base_high) = mean_intervals(ours, patients)[1], mean_intervals(base, patients)[1]
    assert ours_low < base_high  # the two intervals overlap
    for by_patient in (None, patients):
        low, high = paired_bootstrap_ci(ours, base, by_patient)
        assert 0.02 < low < 0.03 < high < 0.04
