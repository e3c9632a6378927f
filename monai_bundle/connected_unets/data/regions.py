"""Pick the mass lesions out of a mask that also outlines non-mass findings.

The CDD-CESM masks outline every finding of a malignant case: masses, but also thin arcs along the
skin line (skin thickening, oedema), lines and tiny fragments. For mass segmentation we keep each
*compact blob* as one lesion: after a small morphological opening (which cuts thin bridges between
a blob and a skin arc), a connected component is a mass when it is big enough and solid
(area / convex-hull area). Skin arcs have a solidity well under 0.3; masses, even spiculated ones,
mostly above 0.6 (measured on the shipped set; see docs/data.md). Straight lines and short arc
pieces can be solid, so a lesion must also be roundish: minor / major axis >= 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage import measure, morphology


@dataclass(frozen=True)
class RegionRule:
    """Thresholds of :func:`mass_regions`; pixel sizes are for the image's own resolution."""

    opening_radius: int = 2
    min_area: int = 30
    min_solidity: float = 0.6
    min_axis_ratio: float = 0.3


def mass_regions(mask: np.ndarray, rule: RegionRule = RegionRule()) -> list[np.ndarray]:
    """Split a binary mask into one boolean mask per compact lesion, largest first."""
    mask = np.asarray(mask, dtype=bool)
    if rule.opening_radius > 0:
        mask = morphology.opening(mask, morphology.disk(rule.opening_radius))
    labels = measure.label(mask, connectivity=2)
    regions = [
        labels == region.label
        for region in measure.regionprops(labels)
        if region.area >= rule.min_area
        and region.solidity >= rule.min_solidity
        and region.axis_minor_length >= rule.min_axis_ratio * region.axis_major_length
    ]
    return sorted(regions, key=lambda region: -int(region.sum()))
