"""ROI geometry: boxes, the paper's context margin, box loosening, and pasting a ROI mask back.

A box is ``(x0, y0, x1, y1)`` in pixels of the full image: x is the column, y the row, the end is
exclusive (``image[y0:y1, x0:x1]`` is the box). Every front door (CLI, bundle, Slicer)
hands boxes in this convention to the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class MarginRule:
    """Context added around a lesion box before it is cropped (our reading of the paper's ROI step).

    Each side grows by ``max(relative * side length, min_fraction * longest image side)``: large
    masses get a relative margin, small ones a fixed minimum of context, i.e. a larger relative
    margin, as the paper does for small masses (its exact figures are not published; see docs).
    """

    relative: float = 0.1
    min_fraction: float = 0.01


def validate_box(box: Sequence[float], image_shape: Sequence[int], source: str = "image") -> Box:
    """Round a box outward to whole pixels and check it; raise a one-line ValueError if unusable.

    A box partly outside the image is clipped; one wholly outside, empty or inverted is an error.
    """
    if len(box) != 4 or not all(np.isfinite(v) for v in box):
        raise ValueError(f"{source}: a box needs 4 finite numbers (x0, y0, x1, y1), got {list(box)}")
    height, width = int(image_shape[0]), int(image_shape[1])
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{source}: box {list(box)} is empty (need x0 < x1 and y0 < y1)")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"{source}: box {list(box)} lies outside the image ({width} x {height} pixels)")
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def expand_box(
    box: Box,
    image_shape: Sequence[int],
    rule: MarginRule = MarginRule(),
    extra: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
) -> Box:
    """The ROI to crop: the box plus the context margin plus ``extra`` (left, top, right, bottom)
    fractions of the box size (box loosening), clipped to the image."""
    height, width = int(image_shape[0]), int(image_shape[1])
    x0, y0, x1, y1 = box
    box_w, box_h = x1 - x0, y1 - y0
    floor = rule.min_fraction * max(height, width)
    margin_x = max(rule.relative * box_w, floor)
    margin_y = max(rule.relative * box_h, floor)
    left, top, right, bottom = extra
    return (
        max(int(round(x0 - margin_x - left * box_w)), 0),
        max(int(round(y0 - margin_y - top * box_h)), 0),
        min(int(round(x1 + margin_x + right * box_w)), width),
        min(int(round(y1 + margin_y + bottom * box_h)), height),
    )


def mask_box(mask: np.ndarray) -> Box:
    """Tight bounding box of the non-zero pixels; ValueError for an empty mask."""
    rows = np.flatnonzero(np.any(mask, axis=1))
    cols = np.flatnonzero(np.any(mask, axis=0))
    if rows.size == 0:
        raise ValueError("mask is empty: no lesion pixel to put a box around")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def paste(roi_mask: np.ndarray, roi_box: Box, image_shape: Sequence[int]) -> np.ndarray:
    """A full-size uint8 mask, zero outside ``roi_box``, holding ``roi_mask`` (already at the box size)."""
    x0, y0, x1, y1 = roi_box
    if roi_mask.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"ROI mask of shape {roi_mask.shape} does not fit box {roi_box}")
    full = np.zeros(tuple(int(s) for s in image_shape[:2]), dtype=np.uint8)
    full[y0:y1, x0:x1] = roi_mask
    return full
