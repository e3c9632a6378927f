"""One inference function for every front door: ``Segmenter.segment(image, boxes)``.

The Segmenter takes its network, pre-processing, inferer and post-processing from the bundle's
``configs/inference.yaml`` so that the CLI, ``monai.bundle run`` and Slicer produce the
same mask for the same image and boxes.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.inferers import Inferer

from .bundle import DEFAULT_NETWORK, check_flags, display_name, open_config, parsed, resolve_device, shipped_weights
from .fast import FastNetwork, fast_if_equivalent
from .fast_verdicts import verdict_key
from .io import file_sha256
from .precision import resolve_precision
from .mass_check import covers_image, image_range_fraction, mass_contrast
from .roi import MarginRule, expand_box, mask_box, validate_box
from .test_time import VIEWS, averaged_views, box_moved, confidence, view_agreement

if TYPE_CHECKING:  # the detector is loaded when first asked for (connected_unets.detection)
    from .detection import Detection, Detector

logger = logging.getLogger(__name__)

#: inference.yaml keys that Segmenter.from_bundle(**options) may override
TEST_TIME_KEYS = ("tta", "refine_rounds", "refine_below", "precision", "min_mass_contrast", "min_image_range", "max_box_fraction")

class ROIBatchInferer(Inferer):
    """Run a (B, N, C, H, W) stack of N ROIs per image through the network as one (B*N) batch."""

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        if inputs.ndim == 4:
            return network(inputs, *args, **kwargs)
        batch, rois = inputs.shape[:2]
        logits = network(inputs.reshape(batch * rois, *inputs.shape[2:]), *args, **kwargs)
        return logits.reshape(batch, rois, *logits.shape[1:])


def samples_datalist(samples_file: str | Path) -> list[dict[str, Any]]:
    """The inference datalist of a ``samples.json`` (image, boxes), paths made absolute."""
    samples_file = Path(samples_file)
    samples = json.loads(samples_file.read_text())
    return [{"image": str(samples_file.parent / s["image"]), "boxes": s["boxes"]} for s in samples]


def load_weights(network: torch.nn.Module, weights: str | Path) -> None:
    """Load a plain state_dict (``weights_only``), keys matching exactly; one-line errors."""
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights not found (train them with scripts/train.sh, see README)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (RuntimeError, KeyError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        logger.debug("torch.load(%s) failed: %s", weights, err)  # torch's own text is long and internal
        raise ValueError(f"{weights}: not a PyTorch weights file (expected a state_dict saved by torch.save)") from err
    if not isinstance(state, Mapping):
        raise ValueError(f"{weights}: holds a {type(state).__name__}, not a state_dict of {type(network).__name__}")
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{weights}: not weights of {type(network).__name__} ({first_line})") from err


@dataclass
class ROIResult:
    """What the Segmenter says about one box: its mask and how sure it is.

    ``found`` is False (and the mask empty) when the box holds nothing mass-like; ``reason`` then
    says why. ``boxes`` lists the box of every pass: the user's, then the refined ones."""

    box: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False)  # uint8 0/1 of the image's shape
    confidence: float
    found: bool
    reason: str = ""
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def area(self) -> int:
        """Mass pixels."""
        return int(self.mask.sum())


class Segmenter:
    """Segments masses inside ROI boxes of a full mammogram, with the bundle's pipeline.

    The test-time options of ``inference.yaml`` (:mod:`connected_unets.test_time`): ``tta_views``
    dihedral views averaged (1 = off), ``refine_rounds`` re-crops around the predicted mask, and
    ``precision`` ``bf16`` (autocast) where the weights' record says bf16 masks match fp32.

    Without boxes, :meth:`detect` finds the masses of a whole picture with the bundle's detector
    (``configs/detect_inference.yaml``, loaded on first use, so that segmenting inside given boxes
    needs no detector weights), and :meth:`segment_image` segments what it found."""

    def __init__(
        self,
        network: torch.nn.Module,
        preprocessing: Callable[[dict], dict],
        inferer: Callable[..., torch.Tensor],
        roi_postprocessing: Callable[[dict], dict],
        device: torch.device,
        amp: bool = False,
        roi_mask: Callable[[dict], dict] | None = None,
        threshold: float = 0.5,
        tta_views: int = 1,
        refine_rounds: int = 0,
        refine_below: float = 1.0,
        precision: str = "fp32",
        min_mass_contrast: float = 0.0,
        min_image_range: float = 0.0,
        max_box_fraction: float = 1.0,
        bundle_dir: str | Path | None = None,
        detector_weights: str | Path | None = None,
        detection_threshold: float | str | None = None,
    ) -> None:
        self.network = network.to(device).eval()
        self.preprocessing = preprocessing
        self.inferer = inferer
        self.roi_postprocessing = roi_postprocessing
        self.device = device
        self.amp = amp and device.type == "cuda"
        self.roi_mask = roi_mask
        self.threshold = float(threshold)
        self.tta_views = int(tta_views)
        self.refine_rounds = int(refine_rounds)
        if self.refine_rounds not in (0, 1, 2):
            raise ValueError(f"refine_rounds {refine_rounds}: 0 (off), 1 or 2")
        self.refine_below = float(refine_below)
        if not 0.0 < self.refine_below <= 1.0:
            raise ValueError(f"refine_below {refine_below}: a share of the box's area, above 0 and at most 1")
        self.precision = precision
        self.min_mass_contrast = float(min_mass_contrast)
        self.min_image_range = float(min_image_range)
        self.max_box_fraction = float(max_box_fraction)
        self.bundle_dir = bundle_dir
        self.detector_weights: str | Path | None = detector_weights  # None: the bundle's models/detector.pt
        self.detection_threshold: float | str | None = detection_threshold  # None or "auto": the weights' record (common.yaml)
        self._detector: Detector | None = None

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path | None = None,
        model: str = DEFAULT_NETWORK,
        device: str | torch.device = "auto",
        weights: str | Path | None = None,
        threshold: float | None = None,
        fast: bool = True,
        detector_weights: str | Path | None = None,
        detection_threshold: float | None = None,
        **options: Any,
    ) -> Segmenter:
        """Build the network, transforms and inferer of ``configs/common.yaml`` + ``inference.yaml``
        and load the weights (the catalogue's file of ``model``, :mod:`connected_unets.bundle`, or ``weights``).

        ``fast`` runs a BatchNorm-folded channels_last copy of the network (faster on CPU, see
        :mod:`connected_unets.fast`) when its probabilities match the plain network's within 1e-4
        on a probe input, else the plain network. ``options`` override inference.yaml's test-time
        keys (``tta``, ``refine_rounds``, ``precision``). ``detector_weights`` and
        ``detection_threshold`` choose the detector :meth:`detect` loads (default: the bundle's
        ``models/detector.pt`` and detect_inference.yaml's operating threshold)."""
        if weights is None:
            weights = shipped_weights(model, bundle_dir)
        unknown = set(options) - set(TEST_TIME_KEYS)
        if unknown:
            raise ValueError(f"unknown inference option(s) {', '.join(sorted(unknown))}; known: {', '.join(TEST_TIME_KEYS)}")
        torch_device = resolve_device(device)
        overrides: dict[str, Any] = {"network_name": model, "device": torch_device, "model_file": str(weights), "fast": fast, **options}
        if threshold is not None:
            if not 0.0 < float(threshold) < 1.0:
                raise ValueError(f"threshold {threshold}: a probability threshold must lie strictly between 0 and 1")
            overrides["threshold"] = float(threshold)
        if detector_weights is not None:
            overrides["detector_file"] = str(detector_weights)
        if detection_threshold is not None:
            overrides["detection_threshold"] = float(detection_threshold)
        return parsed(open_config(["inference.yaml"], bundle_dir, overrides), "segmenter")

    # ------------------------------------------------------------------ whole pictures: detect, then segment

    @property
    def detector(self) -> Detector:
        """The mass detector, loaded from the bundle on first use (:class:`connected_unets.detection.Detector`);
        :class:`~connected_unets.detection.DetectorMissing` (a one-line FileNotFoundError) without weights."""
        if self._detector is None:
            from .detection import Detector

            threshold = None if self.detection_threshold in (None, "auto") else float(self.detection_threshold)
            self._detector = Detector.from_bundle(self.bundle_dir, self.device, self.detector_weights, threshold)
        return self._detector

    def use_detector(self, detector: Detector | None) -> None:
        """Detect with ``detector`` from now on (None: load the bundle's again when next asked)."""
        self._detector = detector

    def detect(
        self, image: Any, source: str = "image", spacing: Sequence[float] | None = None, value_range: tuple[float, float] | None = None
    ) -> list[Detection]:
        """The masses of a whole picture as (box, score) pairs, best first: boxes (x0, y0, x1, y1) in
        pixels of ``image`` (a 2-D array, or a :class:`~connected_unets.io.LoadedImage`, whose pixel
        spacing is then used: a DICOM with non-square pixels is searched in square ones), scores
        at or above the detector's operating threshold. A blank picture gives an empty list."""
        return self.detector.detect(image, spacing=spacing, source=source, value_range=value_range)

    def segment_detections(
        self, image: Any, source: str = "image", spacing: Sequence[float] | None = None, value_range: tuple[float, float] | None = None
    ) -> list[tuple[Detection, ROIResult]]:
        """Each detected mass with its :class:`ROIResult`: :meth:`detect`, then every detected box
        through :meth:`segment_rois` as one batch; an empty list when nothing was detected."""
        if hasattr(image, "array"):  # a LoadedImage: its spacing, value range and name
            spacing = spacing or (image.spacing if image.spacing_known else None)
            value_range = value_range or image.value_range
            source = source if source != "image" else str(image.path)
        detections = self.detect(image, source=source, spacing=spacing, value_range=value_range)
        if not detections:
            return []
        array = image.array if hasattr(image, "array") else image
        results = self.segment_rois(array, [d.box for d in detections], source=source, value_range=value_range)
        return list(zip(detections, results))

    def segment_image(
        self, image: Any, source: str = "image", spacing: Sequence[float] | None = None, value_range: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, list[Detection]]:
        """``(mask, detections)`` of a whole picture: the union of the masks of the detected masses
        (uint8 0/1, the picture's shape; all zeros when nothing was detected) and the detections."""
        pairs = self.segment_detections(image, source=source, spacing=spacing, value_range=value_range)
        array = _checked_image(image.array if hasattr(image, "array") else image, source)
        mask = np.maximum.reduce([r.mask for _, r in pairs]) if pairs else np.zeros(array.shape, dtype=np.uint8)
        return mask, [d for d, _ in pairs]

    def segment(self, image: np.ndarray, boxes: Sequence[Sequence[float]], source: str = "image") -> np.ndarray:
        """Mask (uint8, 0 background / 1 mass) of ``image``'s shape for the masses in ``boxes``:
        the union of :meth:`segment_each`. All boxes go through the network as one batch."""
        return np.maximum.reduce(self.segment_each(image, boxes, source))

    def segment_each(self, image: np.ndarray, boxes: Sequence[Sequence[float]], source: str = "image") -> list[np.ndarray]:
        """One mask (uint8 0/1, ``image``'s shape) per box: the masks of :meth:`segment_rois`."""
        return [result.mask for result in self.segment_rois(image, boxes, source)]

    def segment_rois(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]], source: str = "image", value_range: tuple[float, float] | None = None
    ) -> list[ROIResult]:
        """One :class:`ROIResult` per box, all boxes through the network as ONE batch per pass.

        ``image`` is a 2-D array of any dtype (a full mammogram); ``boxes`` are (x0, y0, x1, y1)
        pixel boxes, end exclusive. Each ROI's prediction is post-processed alone (the Slicer
        module makes one segment per ROI from these). ``value_range`` is what the pixel type can
        hold (``LoadedImage.value_range``; an integer array's dtype says it by itself), for the
        "nothing to segment" check of a near-black image.
        """
        array = _checked_image(image, source)
        if len(boxes) == 0:
            raise ValueError(f"{source}: no ROI box given")
        checked = [validate_box(box, array.shape, source) for box in _box_list(boxes, source)]
        refused = self._nothing_to_segment(array, checked, value_range)
        todo = [index for index, reason in enumerate(refused) if not reason]
        history = [[box] for box in checked]
        masks = [np.zeros(array.shape, dtype=np.uint8) for _ in checked]
        scores = [0.0] * len(checked)
        if todo:
            done, done_scores = self._one_pass(array, [checked[i] for i in todo], source)
            for index, mask, score in zip(todo, done, done_scores):
                masks[index], scores[index] = mask, score
        for _ in range(self.refine_rounds):
            moving = []
            for index, mask in enumerate(masks):
                if mask.any():
                    new = mask_box(mask)
                    if box_moved(history[index][-1], new) and _area(new) < self.refine_below * _area(history[index][-1]):
                        moving.append((index, new))
            if not moving:
                break
            again, again_scores = self._one_pass(array, [box for _, box in moving], source)
            for (index, box), mask, score in zip(moving, again, again_scores):
                history[index].append(box)
                masks[index], scores[index] = mask, score
        results = []
        for box, mask, score, boxes_used, reason in zip(checked, masks, scores, history, refused):
            if not reason and mask.any() and self.min_mass_contrast > 0:
                contrast = mass_contrast(array, mask, expand_box(boxes_used[-1], array.shape, MarginRule()))
                if contrast < self.min_mass_contrast:
                    reason = f"no mass-like region: the outline is not brighter than its surroundings (contrast {contrast:.2f} < {self.min_mass_contrast:g})"
            if not reason and not mask.any():
                reason = "no mass-like region: the network outlined nothing"
            found = not reason
            results.append(ROIResult(box, mask if found else np.zeros_like(mask), score if found else 0.0, found, reason, boxes_used))
            if not found:
                logger.info("%s: box %s: %s", source, list(box), reason)
        return results

    def _nothing_to_segment(self, array: np.ndarray, boxes: Sequence[Sequence[int]], value_range: tuple[float, float] | None) -> list[str]:
        """Per box, why there is nothing to segment ("" when the network should look): a flat box,
        an image with (almost) no value range, a box over (nearly) the whole image."""
        span = image_range_fraction(array, value_range)
        reasons = []
        for box in boxes:
            x0, y0, x1, y1 = box
            inside = array[y0:y1, x0:x1]
            if inside.min() == inside.max():  # e.g. a box drawn on the black background
                reasons.append(f"nothing to segment: the box covers only pixels of one value ({inside.min():g})")
            elif span is not None and span < self.min_image_range:
                reasons.append(f"nothing to segment: the image's values span only {span:.1%} of their range (near black or faint noise)")
            elif covers_image(box, array.shape, self.max_box_fraction):
                reasons.append(f"the box covers {self.max_box_fraction:.0%} or more of the image: draw it around one mass")
            else:
                reasons.append("")
        return reasons

    def _one_pass(self, array: np.ndarray, boxes: Sequence[Sequence[int]], source: str) -> tuple[list[np.ndarray], list[float]]:
        """Full-size masks and confidences of ``boxes`` from one batch through the network."""
        data = self.preprocessing({"image": array.astype(np.float32), "boxes": [list(b) for b in boxes], "image_path": source})
        inputs = torch.as_tensor(data["image"]).to(self.device)  # (N, C, H, W)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=self.amp or self.precision == "bf16"):
            prob, per_view = averaged_views(lambda x: self.inferer(x[None], self.network)[0], inputs, self.tta_views)
        prob = prob.float().cpu()
        roi_masks = torch.stack([torch.as_tensor(self._roi_mask(p)) for p in prob])
        agreement = view_agreement(per_view.float().cpu(), roi_masks, self.threshold) if self.tta_views > 1 else None
        scores = confidence(prob, roi_masks, agreement)
        masks = []
        for index in range(len(boxes)):
            one = {"pred": prob[index], "roi_box": data["roi_box"][index], "image_size": data["image_size"]}
            masks.append(np.asarray(torch.as_tensor(self.roi_postprocessing(one)["pred"]))[0].astype(np.uint8))
        return masks, scores

    def _roi_mask(self, prob: torch.Tensor) -> torch.Tensor:
        """The (1, H, W) ROI-level mask of one probability map: the config's threshold and largest component."""
        if self.roi_mask is None:
            return prob >= self.threshold
        return torch.as_tensor(self.roi_mask({"pred": prob})["pred"]).bool()


def _area(box: Sequence[int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def build_segmenter(
    network: torch.nn.Module,
    weights: str | Path,
    preprocessing: Callable[[dict], dict],
    inferer: Callable[..., torch.Tensor],
    roi_postprocessing: Callable[[dict], dict],
    roi_mask: Callable[[dict], dict],
    device: torch.device,
    threshold: float = 0.5,
    fast: bool = True,
    amp: bool = False,
    precision: str = "auto",
    tta: bool | int = False,
    refine_rounds: int = 0,
    refine_below: float = 1.0,
    min_mass_contrast: float = 0.0,
    min_image_range: float = 0.0,
    max_box_fraction: float = 1.0,
    bundle_dir: str | Path | None = None,
    detector_weights: str | Path | None = None,
    detection_threshold: float | str | None = None,
) -> Segmenter:
    """The Segmenter of inference.yaml's parts (its ``segmenter`` entry): loads ``weights`` into
    ``network`` (one-line errors), swaps in the checked fast copy when ``fast``, and runs bf16 where
    ``precision`` allows it (``auto``: only with the weights' bf16 record, :func:`bf16_verified`).
    ``detector_weights`` and ``detection_threshold`` (a number, or ``auto``: the weights' record)
    are what :meth:`Segmenter.detect` loads when first asked (common.yaml's ``detector_file`` and
    ``detection_threshold``)."""
    check_flags(fast=fast, amp=amp)
    if not isinstance(tta, (bool, int)):
        raise ValueError(f"tta {tta!r}: True, False or a number of views 1..{len(VIEWS)}")
    load_weights(network, weights)
    if fast:
        network = fast_if_equivalent(network, device, key=verdict_key(weights, network, device))
    resolved = resolve_precision(str(precision), device)
    if str(precision) == "auto" and resolved == "bf16" and not bf16_verified(weights):
        logger.info("%s: no record that bf16 masks match fp32 for these weights; inference runs in fp32", weights)
        resolved = "fp32"
    views = (len(VIEWS) if tta else 1) if isinstance(tta, bool) else int(tta)
    logger.info(
        "%s on %s: %s path, %s, TTA views %d, refinement rounds %d", weights, device,
        "fast" if isinstance(network, FastNetwork) else "plain", resolved, views, refine_rounds,
    )  # fmt: skip
    return Segmenter(
        network=network, preprocessing=preprocessing, inferer=inferer, roi_postprocessing=roi_postprocessing, device=device,
        amp=amp, roi_mask=roi_mask, threshold=threshold, tta_views=views, refine_rounds=refine_rounds, refine_below=refine_below, precision=resolved,
        min_mass_contrast=min_mass_contrast, min_image_range=min_image_range, max_box_fraction=max_box_fraction,
        bundle_dir=bundle_dir, detector_weights=detector_weights, detection_threshold=detection_threshold,
    )  # fmt: skip


def mask_names(images: Sequence[str | Path], suffix: str = "_mask.png") -> list[str]:
    """One output file name per input image, never the same twice: ``<stem><suffix>``; inputs that
    share a stem get their folder's name in front, and whatever still clashes a number."""
    paths = [Path(str(p)) for p in images]
    stems = [p.stem.lower() for p in paths]  # case-insensitive: some file systems are
    used: set[str] = set()
    names = []
    for path in paths:
        base = path.stem if stems.count(path.stem.lower()) == 1 or not path.parent.name else f"{path.parent.name}_{path.stem}"
        name, number = base, 1
        while name.lower() in used:
            name, number = f"{base}_{number}", number + 1
        used.add(name.lower())
        names.append(name + suffix)
    return names


def segment_datalist(segmenter: Segmenter, datalist: Sequence[Mapping[str, Any]], output_dir: str | Path, network_name: str = DEFAULT_NETWORK) -> dict[str, Any]:
    """Segment every item of ``datalist`` (``{"image": path, "boxes": [...]}``) into ``output_dir``:
    ``<stem>_mask.png`` and the per-ROI tables the CLI writes (``_mask_rois.csv``/``.json``). An
    item without boxes is searched by the detector first (:meth:`Segmenter.segment_detections`)
    and also gets ``<stem>_mask_detections.csv`` (box, score, confidence, area per mass); without
    detector weights it is skipped with the one line that says so. A bad item is logged in one
    line and skipped, the others are written; ``inference_summary.json`` lists both. This is what
    ``monai.bundle run`` with inference.yaml runs, so an ``output_dir`` that cannot be written is
    refused before the first image as training refuses one
    (:func:`connected_unets.preflight.check_writable`: a one-line
    :class:`~connected_unets.preflight.SetupError`, exit status 1), not by a skip per image and a
    traceback at the end."""
    from . import __version__
    from .detection import DetectorMissing
    from .io import ImageReadError, atomic_output, load_image
    from .preflight import check_writable
    from .writers import Algorithm, detection_rows, detections_path, save_detection_table, save_nothing_found, save_results

    output_dir = check_writable(output_dir, what="output_dir")
    algorithm = Algorithm(display_name(network_name), __version__)
    written, skipped = [], []
    for item, name in zip(datalist, mask_names([str(item.get("image", "")) for item in datalist])):
        source = str(item.get("image", ""))
        try:
            image = load_image(source)
            boxes = item.get("boxes")
            detections = None
            if boxes:
                results = segmenter.segment_rois(image.array, boxes, source=source, value_range=image.value_range)
            else:  # no boxes: find the masses first
                pairs = segmenter.segment_detections(image, source=source)
                detections, results = [d for d, _ in pairs], [r for _, r in pairs]
            target = output_dir / name
            if results:
                masks = [r.mask for r in results]
                save_results(masks, [r.box for r in results], target, image, algorithm, [r.confidence for r in results], [r.reason for r in results])
            else:
                masks = [np.zeros(image.array.shape, dtype=np.uint8)]
                save_nothing_found(target, image)
            entry = {"image": source, "mask": str(target), "rois": len(results), "found": sum(r.found for r in results)}
            if detections is not None:
                rows = detection_rows(image, [d.box for d in detections], [d.score for d in detections], [r.mask for r in results],
                                      [r.confidence for r in results], [r.reason for r in results])  # fmt: skip
                entry["detections"] = str(save_detection_table(rows, detections_path(target)))
            written.append(entry)
            logger.info("%s: %d mass pixels in %d ROI(s) -> %s", source, int(np.maximum.reduce(masks).sum()), len(results), target)
        except DetectorMissing as err:
            message = f"{source}: " + err.saying('give the item its "boxes"')  # names the image, as every skip does
            logger.error("skipped %s", message)
            skipped.append({"image": source, "reason": message})
        except (ImageReadError, ValueError, OSError) as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            logger.error("skipped %s", message)
            skipped.append({"image": source, "reason": message})
    summary = {"written": written, "skipped": skipped}
    with atomic_output(output_dir / "inference_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    logger.info("%d image(s) segmented, %d skipped%s", len(written), len(skipped), "".join(f"\n  skipped {s['reason']}" for s in skipped))
    return summary


def _checked_image(image: np.ndarray, source: str) -> np.ndarray:
    """A 2-D view of ``image`` (a singleton channel axis dropped); one-line errors otherwise."""
    array = np.asarray(image)
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = np.squeeze(array, axis=0 if array.shape[0] == 1 else -1)
    if array.ndim != 2:
        raise ValueError(f"{source}: expected a 2-D grayscale image, got an array of shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{source}: the image is empty")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"{source}: pixel values include NaN or infinity")
    return array


def _box_list(boxes: Sequence[Sequence[float]] | Sequence[float], source: str) -> list[Sequence[float]]:
    """``boxes`` as a list of boxes; a single un-nested (x0, y0, x1, y1) is taken as one box."""
    items = list(boxes)
    if items and all(isinstance(v, (int, float, np.integer, np.floating)) for v in items):
        return [items]
    for box in items:
        if not isinstance(box, (Sequence, np.ndarray)) or isinstance(box, (str, bytes)):
            raise ValueError(f"{source}: a box is 4 numbers (x0, y0, x1, y1), got {box!r}")
    return items


def bf16_verified(weights: str | Path) -> bool:
    """True when the score record beside ``weights`` (``<weights>.json``, key ``bf16``) says bf16
    masks matched fp32 on the validation ROIs for exactly these weights (sha256) and this torch.

    The record is written by ``scripts/check_inference_precision.py``."""
    record_file = Path(weights).with_suffix(".json")
    try:
        record = json.loads(record_file.read_text()).get("bf16")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(record, Mapping) or not record.get("passed"):
        return False
    return record.get("weights_sha256") == file_sha256(weights) and record.get("torch") == torch.__version__
