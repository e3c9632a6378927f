"""FROC of a mass detector: sensitivity against false positives per image, over its score threshold.

A lesion counts as found when a detection overlaps its box with IoU >= 0.3 (``criterion="iou"``,
the figure the issue and ``docs/detection.md`` quote) or, as a looser second reading, when the
centre of a detection lies inside the lesion's box or the lesion's centre inside the detection
(``criterion="centre"``). Detections are matched greedily in score order, each to the unmatched
lesion it overlaps most; a detection that matches none (a second box on a lesion found already
included) is a false positive. Because the matching runs in score order, lowering the threshold
only adds detections, so one matching gives the whole curve. Images without a lesion count in
the false positives per image like every other.

Boxes are (x0, y0, x1, y1) of one image, in any one pixel grid (IoU and centres do not change
when both axes are scaled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CRITERIA", "FP_RATES", "FROC", "IOU_HIT", "ImageDetections", "box_iou", "froc_curve", "match_image", "sensitivity_at"]

#: A detection finds a lesion when their boxes overlap with at least this IoU.
IOU_HIT = 0.3
#: False positives per image at which sensitivity is reported.
FP_RATES = (0.25, 0.5, 1.0, 2.0)
CRITERIA = ("iou", "centre")


@dataclass
class ImageDetections:
    """One image's reference lesion boxes and its detector output (boxes and scores)."""

    lesions: np.ndarray  # (M, 4)
    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    name: str = ""

    def __post_init__(self) -> None:
        self.lesions = np.asarray(self.lesions, dtype=np.float64).reshape(-1, 4)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{self.name or 'image'}: {len(self.boxes)} boxes but {len(self.scores)} scores")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4): (N, M)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda boxes: (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _centre_hits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the centre of box a_i lies in b_j, or the centre of b_j in a_i (1.0), else 0.0."""
    def inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return (
            (points[:, None, 0] >= boxes[None, :, 0]) & (points[:, None, 0] < boxes[None, :, 2])
            & (points[:, None, 1] >= boxes[None, :, 1]) & (points[:, None, 1] < boxes[None, :, 3])
        )  # fmt: skip

    centre = lambda boxes: np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)  # noqa: E731
    return (inside(centre(a), b) | inside(centre(b), a).T).astype(np.float64)


def match_image(image: ImageDetections, iou_threshold: float = IOU_HIT, criterion: str = "iou") -> np.ndarray:
    """Per detection (in the image's order): the index of the lesion it finds, or -1 (a false positive)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
    found = np.full(len(image.boxes), -1, dtype=np.int64)
    if not len(image.boxes) or not len(image.lesions):
        return found
    overlap = box_iou(image.boxes, image.lesions)
    hits = overlap >= iou_threshold if criterion == "iou" else _centre_hits(image.boxes, image.lesions) > 0
    taken = np.zeros(len(image.lesions), dtype=bool)
    for index in np.argsort(-image.scores, kind="stable"):
        candidates = np.flatnonzero(hits[index] & ~taken)
        if candidates.size:
            lesion = candidates[np.argmax(overlap[index, candidates])]
            taken[lesion] = True
            found[index] = lesion
    return found


@dataclass
class FROC:
    """The FROC curve: at each threshold (descending), false positives per image and sensitivity."""

    thresholds: np.ndarray
    fps_per_image: np.ndarray
    sensitivity: np.ndarray
    n_images: int
    n_lesions: int
    criterion: str = "iou"
    lesion_scores: list[np.ndarray] = field(default_factory=list, repr=False)  # per image: the score that found each lesion (-inf: never)

    def at(self, fp_rate: float) -> tuple[float, float]:
        """(sensitivity, threshold): the highest sensitivity with at most ``fp_rate`` false positives
        per image, and the lowest score threshold that reaches it (1.0 when no threshold does)."""
        allowed = np.flatnonzero(self.fps_per_image <= fp_rate + 1e-12)
        if not allowed.size:
            return 0.0, 1.0
        best = allowed[np.argmax(self.sensitivity[allowed])]
        same = allowed[self.sensitivity[allowed] == self.sensitivity[best]]
        threshold = float(self.thresholds[same].min())
        return float(self.sensitivity[best]), threshold if np.isfinite(threshold) else 1.0


def froc_curve(images: Sequence[ImageDetections], iou_threshold: float = IOU_HIT, criterion: str = "iou") -> FROC:
    """The FROC curve of ``images`` (matching as the module says); sensitivity is NaN without lesions."""
    scores, hits, lesion_scores = [], [], []
    for image in images:
        found = match_image(image, iou_threshold, criterion)
        scores.append(image.scores)
        hits.append(found >= 0)
        per_lesion = np.full(len(image.lesions), -np.inf)
        per_lesion[found[found >= 0]] = image.scores[found >= 0]
        lesion_scores.append(per_lesion)
    n_images, n_lesions = len(images), int(sum(len(i.lesions) for i in images))
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_hits = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    order = np.argsort(-all_scores, kind="stable")
    all_scores, all_hits = all_scores[order], all_hits[order]
    tps, fps = np.cumsum(all_hits), np.cumsum(~all_hits)
    last = np.flatnonzero(np.append(all_scores[1:] != all_scores[:-1], True)) if all_scores.size else np.zeros(0, dtype=np.int64)  # the last detection of each score
    thresholds = np.concatenate([[np.inf], all_scores[last]])
    true_positives = np.concatenate([[0], tps[last]])
    false_positives = np.concatenate([[0], fps[last]])
    sensitivity = true_positives / n_lesions if n_lesions else np.full(len(thresholds), np.nan)
    return FROC(thresholds, false_positives / max(n_images, 1), sensitivity, n_images, n_lesions, criterion, lesion_scores)


def sensitivity_at(curve: FROC, rates: Sequence[float] = FP_RATES) -> dict[float, dict[str, float]]:
    """For each false-positive rate: the sensitivity reached and the threshold that reaches it."""
    result = {}
    for rate in rates:
        sensitivity, threshold = curve.at(rate)
        result[float(rate)] = {"sensitivity": sensitivity, "threshold": threshold}
    return result
