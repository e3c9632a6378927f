"""Post-processing of predicted probability maps: threshold, then keep the largest component."""

from __future__ import annotations

import numpy as np
from monai.transforms import KeepLargestConnectedComponent

__all__ = ["binarize", "keep_largest_component"]

# connectivity=None is full connectivity, i.e. 8-connectivity in 2-D: the same default that a
# bundle config gets from a bare KeepLargestConnectedComponent entry.
_KEEP_LARGEST = KeepLargestConnectedComponent(applied_labels=[1], is_onehot=False, connectivity=None)


def binarize(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask ``prob >= threshold``.

    ``>=`` matches MONAI's ``AsDiscrete(threshold=...)``, so the bundle configs and this
    function agree on pixels lying exactly on the threshold.
    """
    prob = np.asarray(prob)
    if np.isnan(prob).any():
        raise ValueError("prob contains NaN")
    return prob >= threshold


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected foreground component of a 2-D mask.

    Nonzero pixels are foreground; the result has the input's dtype and values, with the
    other components set to 0. An empty mask stays empty. Ties between equal-sized
    components are broken arbitrarily.

    8-connectivity because the paper keeps the "largest contour", and contour tracing
    (OpenCV ``findContours``) follows diagonal neighbours, so pixels touching only at a corner
    belong to one object. It is also MONAI's default (full connectivity), which the bundle
    configs use, and how the dataset manifest counts mask components.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    foreground = (mask != 0).astype(np.uint8)[None]
    keep = np.asarray(_KEEP_LARGEST(foreground))[0].astype(bool)
    out = mask.copy()
    out[~keep] = 0
    return out
