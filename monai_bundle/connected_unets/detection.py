"""Whole-mammogram mass detection: the image at a fixed working size, the boxes in MONAI's convention.

Two conventions meet here, and only here:

- ours (every front door, :mod:`connected_unets.roi`): ``(x0, y0, x1, y1)`` in pixels of the input
  picture, x = column, y = row, end exclusive;
- MONAI's detection stack (``monai.apps.detection``, ``StandardMode``): ``(min0, min1, max0, max1)``
  along the first and second spatial axis of a ``(C, H, W)`` tensor, i.e. (row, column, row, column),
  here in pixels of the working image.

:class:`WorkingGeometry` maps one to the other: the image is resized with ONE millimetre scale for
both axes (so a DICOM with non-square pixels is resampled to square ones), its longer physical side
to ``size`` pixels, and padded at the bottom and right to a ``size`` x ``size`` square. A 512 px JPEG
and a 4,000 x 3,000 16-bit DICOM thus reach the network alike; boxes found there are mapped back
to whole pixels of the input, rounded outward. :func:`working_image` also scales the grey values
to [0, 1] by their robust range (0.5th to 99.5th percentile), whatever the bit depth.

:class:`Detector` runs a trained ``RetinaNetDetector`` (built by ``configs/detect_inference.yaml``
after ``common.yaml``) on one picture and returns :class:`Detection` (box, score) tuples above its
operating threshold; ``Segmenter.detect`` and every front door call it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .bundle import detector_weights_file, no_detector_weights, open_config, parsed, resolve_device

logger = logging.getLogger(__name__)

__all__ = [
    "Detection",
    "Detector",
    "DetectorMissing",
    "MIN_IMAGE_SIDE",
    "WorkingGeometry",
    "build_detector",
    "detect_datalist",
    "from_monai_boxes",
    "operating_threshold",
    "retinanet",
    "to_monai_boxes",
    "working_image",
]

#: An image narrower or lower than this (in pixels) holds no mammogram to search: a one-line error.
MIN_IMAGE_SIDE = 32
#: The score record beside the detector's weights (written by training): the operating threshold.
THRESHOLD_KEY = "threshold_at_1fp"


class DetectorMissing(FileNotFoundError):
    """There is no detector weights file: every front door says so in one line, naming its own way
    of giving boxes by hand (:meth:`saying`)."""

    def __init__(self, path: str | Path, instead: str = "give --box") -> None:
        self.path = Path(path)
        super().__init__(no_detector_weights(self.path, instead))

    def saying(self, instead: str) -> str:
        """The message with ``instead`` as the way out (e.g. "draw ROI boxes")."""
        return no_detector_weights(self.path, instead)


class Detection(NamedTuple):
    """One detected mass: its box (x0, y0, x1, y1) in pixels of the input picture, end exclusive,
    and the detector's score (0..1)."""

    box: tuple[int, int, int, int]
    score: float


# --------------------------------------------------------------------------- conventions


def to_monai_boxes(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Our (x0, y0, x1, y1) boxes (x = column) as MONAI's (row0, col0, row1, col1), shape (N, 4)."""
    array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return array[:, [1, 0, 3, 2]]


def from_monai_boxes(boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor) -> np.ndarray:
    """MONAI's (row0, col0, row1, col1) boxes as ours (x0, y0, x1, y1), shape (N, 4) (the same swap)."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().float().cpu().numpy()
    array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return array[:, [1, 0, 3, 2]]


@dataclass(frozen=True)
class WorkingGeometry:
    """Where an input picture lies in the square working image: resized by ``scale`` (working pixels
    per input pixel, per axis (row, col)) into ``content`` (rows, cols) at the top left of a
    ``size`` x ``size`` canvas."""

    image_shape: tuple[int, int]
    content: tuple[int, int]
    size: int

    @classmethod
    def of(cls, shape: Sequence[int], size: int, spacing: Sequence[float] = (1.0, 1.0)) -> WorkingGeometry:
        """The geometry of a (rows, cols) picture with pixel ``spacing`` (row, col) in mm: one mm
        scale for both axes, the longer physical side at ``size`` pixels."""
        rows, cols = int(shape[0]), int(shape[1])
        if min(rows, cols) < MIN_IMAGE_SIDE:
            raise ValueError(f"the image is only {cols} x {rows} pixels; mass detection needs at least {MIN_IMAGE_SIDE} pixels per side")
        row_mm, col_mm = (float(s) for s in spacing)
        if not (row_mm > 0 and col_mm > 0 and math.isfinite(row_mm) and math.isfinite(col_mm)):
            row_mm = col_mm = 1.0
        mm_per_pixel = max(rows * row_mm, cols * col_mm) / size
        content = (min(size, max(1, round(rows * row_mm / mm_per_pixel))), min(size, max(1, round(cols * col_mm / mm_per_pixel))))
        return cls((rows, cols), content, int(size))

    @property
    def scale(self) -> tuple[float, float]:
        """Working pixels per input pixel along rows and columns (exactly the resize's)."""
        return self.content[0] / self.image_shape[0], self.content[1] / self.image_shape[1]

    def to_working(self, boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Our boxes in input pixels -> MONAI boxes (row0, col0, row1, col1) in working pixels."""
        monai = to_monai_boxes(boxes)
        row_scale, col_scale = self.scale
        return (monai * np.array([row_scale, col_scale, row_scale, col_scale], dtype=np.float32)).astype(np.float32)

    def to_image(self, monai_boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor) -> list[tuple[int, int, int, int] | None]:
        """MONAI boxes in working pixels -> our whole-pixel boxes in the input, rounded outward and
        clipped to it; a box that shrinks to nothing there (it lay in the padding) is dropped as None."""
        ours = from_monai_boxes(monai_boxes).astype(np.float64)
        row_scale, col_scale = self.scale
        ours /= np.array([col_scale, row_scale, col_scale, row_scale])
        rows, cols = self.image_shape
        boxes = []
        for x0, y0, x1, y1 in ours:
            box = (max(int(math.floor(x0 + 1e-6)), 0), max(int(math.floor(y0 + 1e-6)), 0), min(int(math.ceil(x1 - 1e-6)), cols), min(int(math.ceil(y1 - 1e-6)), rows))
            boxes.append(box if box[2] > box[0] and box[3] > box[1] else None)
        return boxes


def working_image(array: np.ndarray, geometry: WorkingGeometry) -> torch.Tensor:
    """The (1, size, size) float32 working image of a 2-D picture: resized with antialiasing
    (bilinear), grey values scaled to [0, 1] over their 0.5th-99.5th percentile, zero padding.
    A picture of one value (blank) becomes all zeros."""
    canvas = torch.zeros((1, geometry.size, geometry.size), dtype=torch.float32)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.size == 0 or float(array.min()) == float(array.max()):
        return canvas  # blank: resampling would only add rounding noise, which scaling would blow up
    tensor = torch.as_tensor(array)[None, None]
    if tuple(tensor.shape[-2:]) != geometry.content:
        tensor = F.interpolate(tensor, size=geometry.content, mode="bilinear", align_corners=False, antialias=True)
    content = tensor[0, 0]
    low, high = torch.quantile(content.flatten()[:: max(1, content.numel() // 1_000_000)], torch.tensor([0.005, 0.995])).tolist()
    if high <= low:
        low, high = float(content.min()), float(content.max())
    flat = high - low <= 1e-6 * max(1.0, abs(high), abs(low))  # float rounding, not image content
    scaled = torch.zeros_like(content) if flat else ((content - low) / (high - low)).clamp(0.0, 1.0)
    canvas[0, : geometry.content[0], : geometry.content[1]] = scaled
    return canvas


# --------------------------------------------------------------------------- the detector


def retinanet(
    network: torch.nn.Module,
    anchor_shapes: Sequence[Sequence[int]],
    feature_map_scales: Sequence[float],
    score_threshold: float = 0.02,
    nms_threshold: float = 0.3,
    detections_per_image: int = 20,
    atss_candidates: int = 4,
    negatives_per_image: int = 64,
    positive_fraction: float = 0.3,
) -> Any:
    """MONAI's ``RetinaNetDetector`` on ``network`` (:func:`connected_unets.networks.detector.detector_network`),
    set up for training and inference without torchvision: anchors of ``anchor_shapes`` (height,
    width in working pixels) times each ``feature_map_scales`` entry, MONAI's ATSS matcher and hard
    negative sampler (images without a mass give negatives only), and the box selection
    (``score_threshold`` keeps low-scoring candidates for the FROC curve; the operating threshold
    is applied by :class:`Detector`)."""
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape

    from .networks.detector import ATSSRetinaNetDetector

    anchors = AnchorGeneratorWithAnchorShape(feature_map_scales=tuple(feature_map_scales), base_anchor_shapes=tuple(tuple(s) for s in anchor_shapes))
    detector = ATSSRetinaNetDetector(network=network, anchor_generator=anchors)
    detector.set_atss_matcher(num_candidates=atss_candidates, center_in_gt=False)
    detector.set_hard_negative_sampler(batch_size_per_image=negatives_per_image, positive_fraction=positive_fraction, pool_size=20, min_neg=16)
    detector.set_target_keys(box_key="boxes", label_key="labels")
    detector.set_box_selector_parameters(
        score_thresh=score_threshold, topk_candidates_per_level=1000, nms_thresh=nms_threshold, detections_per_img=detections_per_image
    )
    return detector


def operating_threshold(value: float | str, weights: str | Path) -> float:
    """The score a detection needs: ``value``, or for ``auto`` the score at which the weights made one
    false positive per validation image (their record ``<weights>.json``, written by training),
    0.5 without a record."""
    if str(value) != "auto":
        threshold = float(value)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"detection threshold {value}: a score threshold must lie strictly between 0 and 1")
        return threshold
    try:
        recorded = json.loads(Path(weights).with_suffix(".json").read_text()).get(THRESHOLD_KEY)
    except (OSError, ValueError, AttributeError):
        recorded = None
    return float(recorded) if isinstance(recorded, (int, float)) and 0.0 < recorded < 1.0 else 0.5


class Detector:
    """A trained mass detector on whole pictures: :meth:`detect` returns the masses it finds."""

    def __init__(self, detector: Any, size: int, device: torch.device, threshold: float = 0.5, min_image_range: float = 0.0) -> None:
        self.detector = detector.to(device)
        self.detector.eval()
        self.size = int(size)
        self.device = device
        self.threshold = float(threshold)
        self.min_image_range = float(min_image_range)

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path | None = None,
        device: str | torch.device = "auto",
        weights: str | Path | None = None,
        threshold: float | None = None,
    ) -> Detector:
        """The detector of ``configs/common.yaml`` + ``detect_inference.yaml`` with its weights (the
        catalogue's ``models/detector.pt``, or ``weights``); a one-line FileNotFoundError without them."""
        weights = Path(weights) if weights is not None else detector_weights_file(bundle_dir)
        if not weights.is_file():
            raise DetectorMissing(weights)
        overrides: dict[str, Any] = {"device": resolve_device(device), "detector_file": str(weights)}
        if threshold is not None:
            overrides["detection_threshold"] = float(threshold)
        return parsed(open_config(["detect_inference.yaml"], bundle_dir, overrides), "detector")

    def detect(
        self,
        image: Any,
        spacing: Sequence[float] | None = None,
        source: str = "image",
        value_range: tuple[float, float] | None = None,
        threshold: float | None = None,
    ) -> list[Detection]:
        """The masses in ``image`` (a 2-D array, or a :class:`~connected_unets.io.LoadedImage`,
        whose pixel spacing and value range are then used), best first: boxes in pixels of the
        input, scores >= the operating threshold (or ``threshold``). A blank or near-black picture
        gives an empty list; what cannot be a 2-D picture is a one-line ValueError."""
        from .inference import _checked_image
        from .mass_check import image_range_fraction

        if hasattr(image, "array"):  # a LoadedImage
            spacing = spacing or (image.spacing if image.spacing_known else None)
            value_range = value_range or image.value_range
            source = source if source != "image" else str(image.path)
            image = image.array
        array = _checked_image(image, source)
        geometry = WorkingGeometry.of(array.shape, self.size, spacing or (1.0, 1.0))
        if array.min() == array.max():
            logger.info("%s: nothing to detect: every pixel has the value %g", source, float(array.min()))
            return []
        span = image_range_fraction(array, value_range)
        if span is not None and span < self.min_image_range:
            logger.info("%s: nothing to detect: the values span only %.1f%% of their range", source, 100 * span)
            return []
        found = self.predict([working_image(array, geometry)])[0]
        cut = self.threshold if threshold is None else float(threshold)
        detections = [
            Detection(box, score)
            for box, score in zip(geometry.to_image(found["boxes"]), found["scores"].tolist())
            if box is not None and score >= cut
        ]
        logger.info("%s: %d mass(es) detected (score >= %.2f)", source, len(detections), cut)
        return sorted(detections, key=lambda d: -d.score)

    def predict(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Raw candidates of working images (each (1, size, size)): MONAI boxes in working pixels
        and scores, every candidate above the box selector's low threshold (for FROC curves)."""
        batch = torch.stack([torch.as_tensor(i) for i in images]).to(self.device)
        was_training = self.detector.training
        self.detector.eval()
        try:
            with torch.inference_mode():
                outputs = self.detector(batch, use_inferer=False)
        finally:
            self.detector.train(was_training)
        return [{"boxes": o["boxes"].float().cpu(), "scores": o["labels_scores"].float().cpu()} for o in outputs]


def build_detector(
    detector: Any,
    weights: str | Path,
    size: int,
    device: torch.device,
    threshold: float | str = "auto",
    min_image_range: float = 0.0,
) -> Detector:
    """The :class:`Detector` of detect_inference.yaml (its ``detector`` entry): loads ``weights`` into
    the RetinaNet's network (one-line errors) and resolves the operating threshold."""
    from .inference import load_weights

    weights = Path(weights)
    if not weights.is_file():
        raise DetectorMissing(weights)
    load_weights(detector.network, weights)
    resolved = operating_threshold(threshold, weights)
    logger.info("detector %s on %s: working size %d, operating threshold %.3f", weights, device, size, resolved)
    return Detector(detector, size, device, resolved, min_image_range)


def detect_datalist(detector: Detector, datalist: Sequence[dict[str, Any]], output_dir: str | Path) -> dict[str, Any]:
    """Search every image of ``datalist`` (``{"image": path}``; boxes are ignored) and write
    ``detections.csv`` (one row per mass: image, box, score) into ``output_dir``. A bad image is
    logged in one line and skipped; ``detection_summary.json`` lists both."""
    from .io import ImageReadError, atomic_output, load_image
    from .preflight import check_writable
    from .writers import save_detection_table

    output_dir = check_writable(output_dir, what="output_dir")
    rows: list[dict[str, Any]] = []
    done, skipped = [], []
    for item in datalist:
        source = str(item.get("image", ""))
        try:
            found = detector.detect(load_image(source), source=source)
        except (ImageReadError, ValueError, OSError) as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            logger.error("skipped %s", message)
            skipped.append({"image": source, "reason": message})
            continue
        rows += [{"image": source, "detection": i + 1, **dict(zip(("x0", "y0", "x1", "y1"), d.box)), "score": round(d.score, 4)} for i, d in enumerate(found)]
        done.append({"image": source, "detections": len(found)})
    table = save_detection_table(rows, output_dir / "detections.csv")
    summary = {"threshold": detector.threshold, "searched": done, "skipped": skipped}
    with atomic_output(output_dir / "detection_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    logger.info("%d image(s) searched, %d mass(es) found, %d skipped -> %s", len(done), len(rows), len(skipped), table)
    return summary
