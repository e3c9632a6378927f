"""Turn an image's annotations into one boolean full-size mask per lesion.

Every way an annotation can be unusable (missing or unreadable mask file, a mask of another size
than its image, an empty mask, a polygon with too few or out-of-image points) raises
:class:`AnnotationError` with a one-line reason naming the file and a short ``kind`` for the summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.draw import polygon2mask

from ..io import ImageReadError, load_mask
from .records import Annotation
from .regions import mass_regions

# Polygon vertices may sit on the outer edge of the border pixels (x = width - 0.5 in pixel-centre
# coordinates, or x = width when an annotation tool counts edges): up to one pixel outside is clipped.
OUTSIDE_TOLERANCE_PX = 1.0


class AnnotationError(ValueError):
    """An annotation that gives no lesion mask; ``kind`` groups such errors in the summary."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def lesion_masks(annotation: Annotation, shape: tuple[int, int], where: str) -> list[tuple[str, np.ndarray]]:
    """(lesion id, boolean mask of ``shape``) for each lesion of ``annotation``; ``where`` names its source."""
    if annotation.mask is not None:
        mask = _read_mask(annotation, shape)
        if annotation.components is None:
            return [(annotation.lesion, mask)]
        regions = mass_regions(mask, annotation.components)
        if not regions:
            raise AnnotationError(f"{annotation.mask}: no mass-like region in the mask", "no mass-like region")
        return [(f"{annotation.lesion}{index}", region) for index, region in enumerate(regions, start=1)]
    return [(annotation.lesion, polygon_mask(annotation.polygon, shape, f"{where} ROI {annotation.lesion}"))]


def _read_mask(annotation: Annotation, shape: tuple[int, int]) -> np.ndarray:
    try:
        mask = load_mask(annotation.mask)
    except ImageReadError as err:
        kind = "missing mask file" if "file not found" in str(err) else "unreadable mask"
        raise AnnotationError(str(err), kind) from err
    if mask.shape != tuple(shape):
        raise AnnotationError(
            f"{annotation.mask}: mask is {mask.shape[1]}x{mask.shape[0]} pixels but its image is {shape[1]}x{shape[0]}",
            "mask size differs from image",
        )
    if not mask.any():
        raise AnnotationError(f"{annotation.mask}: mask is empty", "empty mask")
    return mask


def polygon_mask(points: Sequence[tuple[float, float]], shape: tuple[int, int], where: str) -> np.ndarray:
    """Pixels whose centres lie inside or on the polygon of (x = column, y = row) vertices."""
    if len(points) < 3:
        raise AnnotationError(f"{where}: polygon has {len(points)} point(s); need at least 3", "bad polygon")
    xy = np.asarray(points, dtype=float)
    if not np.isfinite(xy).all():
        raise AnnotationError(f"{where}: polygon has non-finite coordinates", "bad polygon")
    rows, cols = shape
    low = -OUTSIDE_TOLERANCE_PX
    outside = (xy[:, 0] < low) | (xy[:, 0] > cols - 1 + OUTSIDE_TOLERANCE_PX)
    outside |= (xy[:, 1] < low) | (xy[:, 1] > rows - 1 + OUTSIDE_TOLERANCE_PX)
    if outside.any():
        x, y = xy[np.argmax(outside)]
        raise AnnotationError(
            f"{where}: {int(outside.sum())} polygon point(s) outside the {cols}x{rows} image, e.g. ({x:g}, {y:g})",
            "polygon outside image",
        )
    mask = polygon2mask(shape, xy[:, ::-1])
    if not mask.any():
        raise AnnotationError(f"{where}: polygon encloses no pixel centre", "bad polygon")
    return mask
