"""Patient-wise splits: every image of a patient lands in exactly one split, before any augmentation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from monai.data import partition_dataset


def split_patients(
    patients: Iterable[str], ratios: Sequence[float], names: Sequence[str], seed: int = 0
) -> dict[str, str]:
    """Assign each distinct patient id to one split name, seeded and reproducible.

    ``ratios`` are relative sizes (e.g. 0.7, 0.2, 0.1 for the paper's train/test/validation); the
    patients are sorted first so the result does not depend on the order records were read in.
    """
    if len(ratios) != len(names):
        raise ValueError(f"got {len(ratios)} ratios for {len(names)} split names")
    unique = sorted(set(patients))
    parts = partition_dataset(unique, ratios=list(ratios), shuffle=True, seed=seed)
    return {patient: name for name, part in zip(names, parts) for patient in part}
