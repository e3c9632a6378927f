"""The detector's evaluation on a split of a detection datalist: FROC, and the pipeline end to end.

``connected-unets evaluate --detector`` runs it. Per image, the detector's candidates (every box
above its box selector's low score, for the curve) give the FROC (:mod:`.froc`: IoU >= 0.3, and
the centre-hit reading beside it); the detections at the operating threshold are segmented by the
Segmenter, as every front door does without boxes, and compared with the reference lesions:

- per lesion: found (a detection at the threshold overlaps it with IoU >= 0.3) and the IoU of the
  mask segmented inside that detection with the lesion's mask;
- per image: Dice of the union of the segmented masses with the union of the lesions (an image
  without a mass and without a detection scores 1, one with a detection 0);
- the paper's final segmentation accuracy: detection rate x IoU90 mean (the mean IoU of the
  found lesions whose IoU is at least 0.9), next to the paper's figures.

Written into ``output_dir``: ``detection.md`` (read first), ``detection_summary.json``,
``detection_images.csv``, ``detection_lesions.csv``, ``froc.png``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_output, load_image
from ..metrics import dice, final_segmentation_accuracy, iou, iou90
from .froc import FP_RATES, IOU_HIT, ImageDetections, froc_curve, match_image, sensitivity_at

logger = logging.getLogger(__name__)

__all__ = ["PAPER_FINAL_ACCURACY", "evaluate_detection", "detection_markdown"]

#: The paper's final segmentation accuracy (Table 4: YOLO detection rate x IoU90 of Connected-ResUNets).
PAPER_FINAL_ACCURACY = {"CBIS-DDSM": 0.8691, "INbreast": 0.9303}
FILES = ("detection.md", "detection_summary.json", "detection_images.csv", "detection_lesions.csv", "froc.png")


def _entries(datalist_file: Path, split: str, dataset_dir: Path) -> list[dict[str, Any]]:
    datalist = json.loads(datalist_file.read_text())
    if split not in datalist or split == "skipped":
        raise ValueError(f"{datalist_file}: no split '{split}' (splits: {', '.join(k for k in datalist if k != 'skipped') or 'none'})")
    entries = [dict(e) for e in datalist[split]]
    if not entries:
        raise ValueError(f"{datalist_file}: split '{split}' is empty")
    for entry in entries:
        for key in ("image", "label"):
            if entry.get(key):
                entry[key] = str(dataset_dir / entry[key])
    return entries


def _lesion_masks(entry: Mapping[str, Any], shape: tuple[int, int]) -> list[np.ndarray]:
    """The reference lesion masks of an entry (its label map: lesion k = value k)."""
    if not entry.get("boxes"):
        return []
    label = load_image(entry["label"]).array
    if label.shape != shape:
        raise ValueError(f"{entry['label']}: label map {label.shape} differs from the image {shape}")
    return [label == k for k in range(1, len(entry["boxes"]) + 1)]


def evaluate_detection(
    datalist_file: str | Path,
    split: str,
    output_dir: str | Path,
    segmenter: Any,
    dataset_dir: str | Path | None = None,
    info: Mapping[str, Any] | None = None,
    progress: Callable[[Iterable], Iterable] = iter,
) -> dict[str, Any]:
    """Score ``segmenter.detector`` and ``segmenter`` on ``split`` of the detection datalist and
    write the report; return its summary."""
    datalist_file = Path(datalist_file)
    if not datalist_file.is_file():
        raise FileNotFoundError(f"{datalist_file}: detection datalist not found (scripts/prepare_shipped_detection_data.py writes one)")
    dataset_dir = Path(dataset_dir) if dataset_dir is not None else datalist_file.parent
    entries = _entries(datalist_file, split, dataset_dir)
    detector = segmenter.detector
    operating = detector.threshold
    images, image_rows, lesion_rows = [], [], []
    found_ious: list[float] = []
    n_found = 0
    for entry in progress(entries):
        loaded = load_image(entry["image"])
        candidates = detector.detect(loaded, source=entry["image"], threshold=0.0)
        lesions = np.asarray(entry.get("boxes") or [], dtype=np.float64).reshape(-1, 4)
        images.append(ImageDetections(lesions, [d.box for d in candidates], [d.score for d in candidates], entry["image"]))
        kept = [d for d in candidates if d.score >= operating]
        results = segmenter.segment_rois(loaded.array, [d.box for d in kept], source=entry["image"], value_range=loaded.value_range) if kept else []
        references = _lesion_masks(entry, loaded.array.shape)
        matched = match_image(ImageDetections(lesions, [d.box for d in kept], [d.score for d in kept]))
        for k, reference in enumerate(references):
            hit = np.flatnonzero(matched == k)
            value = iou(results[hit[0]].mask, reference) if hit.size else 0.0
            if hit.size:
                n_found += 1
                found_ious.append(value)
            lesion_rows.append({
                "image": entry["image"], "patient": entry.get("patient", ""), "lesion": (entry.get("lesions") or [""] * len(references))[k],
                "box": " ".join(str(int(v)) for v in lesions[k]), "detected": int(hit.size > 0),
                "score": f"{kept[hit[0]].score:.4f}" if hit.size else "", "iou": f"{value:.6f}",
            })  # fmt: skip
        predicted = np.maximum.reduce([r.mask for r in results]) if results else np.zeros(loaded.array.shape, dtype=np.uint8)
        truth = np.logical_or.reduce(references) if references else np.zeros(loaded.array.shape, dtype=bool)
        image_rows.append({
            "image": entry["image"], "patient": entry.get("patient", ""), "lesions": len(references), "detections": len(kept),
            "true_positives": int((matched >= 0).sum()), "false_positives": int((matched < 0).sum()), "dice": f"{dice(predicted, truth):.6f}",
        })  # fmt: skip
    curve, centre = froc_curve(images), froc_curve(images, criterion="centre")
    points, centre_points = sensitivity_at(curve), sensitivity_at(centre)
    n_lesions = curve.n_lesions
    rate = n_found / n_lesions if n_lesions else float("nan")
    iou90_mean, iou90_share = iou90(found_ious) if found_ious else (float("nan"), float("nan"))
    dices = np.array([float(r["dice"]) for r in image_rows])
    positive = np.array([r["lesions"] > 0 for r in image_rows])
    summary: dict[str, Any] = {
        "info": {**dict(info or {}), "datalist": str(datalist_file), "split": split, "operating_threshold": operating, "iou_hit": IOU_HIT},
        "n_images": len(entries), "n_images_with_mass": int(positive.sum()), "n_lesions": n_lesions,
        "froc": {f"{r:g}": p for r, p in points.items()},
        "froc_mean_sensitivity": float(np.mean([p["sensitivity"] for p in points.values()])) if n_lesions else None,
        "froc_centre_hit": {f"{r:g}": p for r, p in centre_points.items()},
        "operating_point": {
            "detection_rate": None if math.isnan(rate) else rate,
            "false_positives_per_image": float(sum(r["false_positives"] for r in image_rows) / len(image_rows)),
        },
        "end_to_end": {
            "dice_mean_images_with_mass": float(dices[positive].mean()) if positive.any() else None,
            "dice_mean_all_images": float(dices.mean()),
            "iou90_mean": None if math.isnan(iou90_mean) else iou90_mean,
            "iou90_share_of_found": None if math.isnan(iou90_share) else iou90_share,
            "final_segmentation_accuracy": None if math.isnan(rate) or math.isnan(iou90_mean) else final_segmentation_accuracy(rate, iou90_mean),
            "paper_final_segmentation_accuracy": PAPER_FINAL_ACCURACY,
        },
    }  # fmt: skip
    _write(Path(output_dir), summary, image_rows, lesion_rows, curve, centre, points)
    return summary


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write(output_dir: Path, summary: dict[str, Any], image_rows: list, lesion_rows: list, curve: Any, centre: Any, points: dict) -> None:
    from .figures import plot_froc

    output_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(output_dir / "detection_images.csv", image_rows, ("image", "patient", "lesions", "detections", "true_positives", "false_positives", "dice"))
    _write_csv(output_dir / "detection_lesions.csv", lesion_rows, ("image", "patient", "lesion", "box", "detected", "score", "iou"))
    plot_froc(
        curve.fps_per_image, curve.sensitivity, {r: p["sensitivity"] for r, p in points.items()}, output_dir / "froc.png",
        title=f"FROC, {summary['n_images']} images, {summary['n_lesions']} lesions", second=(centre.fps_per_image, centre.sensitivity, "centre hit"),
    )  # fmt: skip
    with atomic_output(output_dir / "detection_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    with atomic_output(output_dir / "detection.md") as tmp:
        tmp.write_text(detection_markdown(summary))
    logger.info("detection report written to %s", output_dir)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def detection_markdown(summary: Mapping[str, Any]) -> str:
    """The page to read first: what was searched, the FROC points, the end-to-end figures."""
    info, e2e, op = summary["info"], summary["end_to_end"], summary["operating_point"]
    lines = [
        f"# Mass detection on the '{info['split']}' split",
        "",
        f"{summary['n_images']} images ({summary['n_images_with_mass']} with a mass, {summary['n_lesions']} lesions) from `{info['datalist']}`; "
        f"detector `{info.get('detector', '?')}`, segmentation `{info.get('network', '?')}`.",
        f"A lesion is found when a detection overlaps its box with IoU >= {info['iou_hit']}; the centre-hit column counts a detection "
        "whose centre lies in the lesion's box (or the lesion's centre in the detection).",
        "",
        "| false positives per image | sensitivity (IoU >= 0.3) | score threshold | sensitivity (centre hit) |",
        "|---|---|---|---|",
    ]
    for rate in FP_RATES:
        point, centre = summary["froc"][f"{rate:g}"], summary["froc_centre_hit"][f"{rate:g}"]
        lines.append(f"| {rate:g} | {_fmt(point['sensitivity'])} | {_fmt(point['threshold'])} | {_fmt(centre['sensitivity'])} |")
    paper = ", ".join(f"{name} {value:.2%}" for name, value in e2e["paper_final_segmentation_accuracy"].items())
    fsa = e2e["final_segmentation_accuracy"]
    lines += [
        "",
        f"At the operating threshold {info['operating_threshold']:.3f}: detection rate {_fmt(op['detection_rate'])}, "
        f"{op['false_positives_per_image']:.2f} false positives per image.",
        "",
        "End to end (detected boxes -> Segmenter masks):",
        "",
        "| metric | value |",
        "|---|---|",
        f"| Dice per image, images with a mass | {_fmt(e2e['dice_mean_images_with_mass'])} |",
        f"| Dice per image, all images (no mass and no detection = 1) | {_fmt(e2e['dice_mean_all_images'])} |",
        f"| IoU90 mean of the found lesions (share with IoU >= 0.9: {_fmt(e2e['iou90_share_of_found'])}) | {_fmt(e2e['iou90_mean'])} |",
        f"| final segmentation accuracy (detection rate x IoU90 mean) | {'n/a' if fsa is None else f'{fsa:.2%}'} |",
        f"| the paper's (YOLO + Connected-ResUNets) | {paper} |",
        "",
        "![FROC](froc.png)",
        "",
        "Files: `detection_images.csv` (per image: lesions, detections at the threshold, true and false positives, Dice), "
        "`detection_lesions.csv` (per lesion: found, score, IoU of its mask), `detection_summary.json` (these numbers), `froc.png`.",
        "",
    ]
    return "\n".join(lines)
