"""The paper's offline augmentation: each training ROI also as 3 rotations and 2 CLAHE variants (x6).

Applied to the lesion's context crop, so the bundle's transforms still cut the ROI (with its margin
and box loosening) from the augmented crop. Only the training split is augmented, after the
patient-wise split, so no rotated copy of a validation or test lesion lands in training.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..roi import Box, mask_box
from ..transforms import CLAHE_VARIANTS, clahe

AUGMENTATIONS = ("rot90", "rot180", "rot270", *(f"clahe{index}" for index in range(1, len(CLAHE_VARIANTS) + 1)))


def augmented_crops(crop: np.ndarray, label: np.ndarray, box: Box) -> Iterator[tuple[str, np.ndarray, np.ndarray, Box]]:
    """(name, crop, label, lesion box) of each variant; rotations are counter-clockwise by k x 90 degrees."""
    box_mask = np.zeros(crop.shape, dtype=bool)
    box_mask[box[1] : box[3], box[0] : box[2]] = True
    for k in (1, 2, 3):
        yield f"rot{90 * k}", np.rot90(crop, k).copy(), np.rot90(label, k).copy(), mask_box(np.rot90(box_mask, k))
    low, high = float(crop.min()), float(crop.max())
    unit = (crop.astype(np.float64) - low) / max(high - low, 1e-6)
    for index, (clip, tiles) in enumerate(CLAHE_VARIANTS, start=1):
        yield f"clahe{index}", clahe(unit, clip, tiles).astype(np.float32), label, box
