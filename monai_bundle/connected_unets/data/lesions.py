"""Turn an image's annotations into one boolean full-size mask per lesion.

Every way an annotation can be unusable (missing or unreadable mask file, a mask of another size
than its image, an empty mask, a polygon with too few or out-of-image points) raises
:class:`AnnotationError` with a one-line reason naming the file and a short ``kind`` for the summary.

A mask file's pixel values say what it outlines. Values <= 0 are background. A mask with at most
:data:`MAX_LABELS` distinct positive values is a label map: each value is an outline of its own
(a binary 0/1 or 0/255 mask has one), so the lesions of labels 1 and 2 both survive, even where they
touch. A mask with more values is a grey-level picture of one outline (a JPEG-compressed or
anti-aliased 0/255 mask): the pixels above half its peak, the rest being compression noise along the
outline. A label that gives no lesion is reported as a :class:`Skip` of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.draw import polygon2mask

from ..io import ImageReadError, load_image
from .records import Annotation, Skip
from .regions import mass_regions

# Polygon vertices may sit on the outer edge of the border pixels (x = width - 0.5 in pixel-centre
# coordinates, or x = width when an annotation tool counts edges): up to one pixel outside is clipped.
OUTSIDE_TOLERANCE_PX = 1.0

# Label maps of lesions have a few labels; JPEG masks have many grey levels (CDD-CESM's: 130 to 255).
MAX_LABELS = 16


class AnnotationError(ValueError):
    """An annotation that gives no lesion mask; ``kind`` groups such errors in the summary."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def lesion_masks(annotation: Annotation, shape: tuple[int, int], where: str) -> tuple[list[tuple[str, np.ndarray]], list[Skip]]:
    """(lesion id, boolean mask of ``shape``) for each lesion of ``annotation``, and the labels of its
    mask file that gave none; ``where`` names the annotation's source."""
    if annotation.mask is None:
        return [(annotation.lesion, polygon_mask(annotation.polygon, shape, f"{where} ROI {annotation.lesion}"))], []
    labels = _read_labels(annotation, shape)
    if annotation.components is None:  # the file outlines one lesion, whatever its labels
        return [(annotation.lesion, np.logical_or.reduce([mask for _, mask in labels]))], []
    regions, dropped = _label_regions(annotation, labels)
    if not regions:
        raise AnnotationError(f"{annotation.mask}: no mass-like region in the mask", "no mass-like region")
    return [(f"{annotation.lesion}{index}", region) for index, region in enumerate(regions, start=1)], dropped


def _mask_labels(values: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(label value, boolean mask) of each outline in a mask file's pixels, as the module says."""
    labels = np.unique(values[values > 0])
    if labels.size > MAX_LABELS:
        return [(float(labels[-1]), values > 0.5 * labels[-1])]
    return [(float(label), values == label) for label in labels]


def _read_labels(annotation: Annotation, shape: tuple[int, int]) -> list[tuple[float, np.ndarray]]:
    try:
        values = load_image(annotation.mask).array
    except ImageReadError as err:
        kind = "missing mask file" if "file not found" in str(err) else "unreadable mask"
        raise AnnotationError(str(err), kind) from err
    if values.shape != tuple(shape):
        raise AnnotationError(
            f"{annotation.mask}: mask is {values.shape[1]}x{values.shape[0]} pixels but its image is {shape[1]}x{shape[0]}",
            "mask size differs from image",
        )
    labels = _mask_labels(values)
    if not labels:
        raise AnnotationError(f"{annotation.mask}: mask is empty", "empty mask")
    return labels


def _label_regions(annotation: Annotation, labels: list[tuple[float, np.ndarray]]) -> tuple[list[np.ndarray], list[Skip]]:
    """The lesions of each label in turn (largest first within a label); a label of a label map with
    none is a Skip, so a label never vanishes unreported."""
    regions: list[np.ndarray] = []
    dropped: list[Skip] = []
    for value, mask in labels:
        found = mass_regions(mask, annotation.components)
        regions.extend(found)
        if not found and len(labels) > 1:
            reason = f"{annotation.mask}: label {value:g} of the mask has no mass-like region"
            dropped.append(Skip(str(annotation.mask), reason, "no mass-like region"))
    return regions, dropped


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
