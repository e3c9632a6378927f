"""The Segmenter's test-time options on the validation lesions: box refinement and TTA, off and on,
with tight and loosened boxes, their latency, and how the per-ROI confidence goes with Dice.

Every lesion of the split is segmented through the front doors' own path (``Segmenter.segment_rois``
on the prepared lesion image with its box) and scored at the image's resolution against its mask,
so the options are compared with each other under one metric (it is not the ROI-level metric of
``connected-unets evaluate``; the baseline row gives the reference here). Loose boxes grow by
``--loose`` x the box size per side, as a loosely drawn box.

    python scripts/evaluate_test_time.py --out docs/test_time.md
    python scripts/evaluate_test_time.py --weights runs/connected_resunets/model.pt --limit 5
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from connected_unets.bundle import DEFAULT_NETWORK
from connected_unets.evaluation import bootstrap_ci
from connected_unets.inference import Segmenter
from connected_unets.io import atomic_output, load_image, load_mask
from connected_unets.metrics import dice, iou
from connected_unets.precision import cpu_model

REPO = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, dict[str, Any]] = {
    "baseline": {"tta": 1, "refine_rounds": 0},
    "refine 1": {"tta": 1, "refine_rounds": 1},
    "refine 2": {"tta": 1, "refine_rounds": 2},
    "refine 1 below 0.5": {"tta": 1, "refine_rounds": 1, "refine_below": 0.5},
    "refine 1 below 0.6": {"tta": 1, "refine_rounds": 1, "refine_below": 0.6},
    "refine 1 below 0.7": {"tta": 1, "refine_rounds": 1, "refine_below": 0.7},
    "tta 4": {"tta": 4, "refine_rounds": 0},
    "tta 8": {"tta": 8, "refine_rounds": 0},
    "refine 2 + tta 8": {"tta": 8, "refine_rounds": 2},
}


def loosened(box: list[int], fraction: float, shape: tuple[int, ...]) -> list[float]:
    x0, y0, x1, y1 = box
    dx, dy = fraction * (x1 - x0), fraction * (y1 - y0)
    return [max(x0 - dx, 0), max(y0 - dy, 0), min(x1 + dx, shape[1]), min(y1 + dy, shape[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--dataset-dir", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--model", default=DEFAULT_NETWORK)
    parser.add_argument("--weights", type=Path, default=None, help="default: the bundle's shipped weights")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--loose", type=float, default=0.3, help="loosening per side for the loose boxes (default %(default)s)")
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N lesions (a quick look)")
    parser.add_argument("--out", type=Path, default=None, help="markdown table; per-lesion CSV and JSON beside it")
    args = parser.parse_args()

    entries = json.loads((args.dataset_dir / "datalist.json").read_text())[args.split][: args.limit]
    lesions = []
    for entry in entries:
        image = load_image(args.dataset_dir / entry["image"]).array
        label = load_mask(args.dataset_dir / entry["label"]) > 0
        lesions.append((entry, image, label))

    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, Any]] = {}
    for name in args.settings:
        segmenter = Segmenter.from_bundle(model=args.model, device="cpu", weights=args.weights, precision=args.precision, **SETTINGS[name])
        segmenter.segment_rois(lesions[0][1], [entries[0]["box"]])  # warm-up
        for boxes in ("tight", "loose"):
            dices, ious, times = [], [], []
            for entry, image, label in tqdm(lesions, desc=f"{name}, {boxes} boxes", unit="lesion"):
                box = entry["box"] if boxes == "tight" else loosened(entry["box"], args.loose, image.shape)
                started = time.perf_counter()
                (result,) = segmenter.segment_rois(image, [box], source=entry["image"])
                times.append(time.perf_counter() - started)
                d, j = dice(result.mask, label), iou(result.mask, label)
                dices.append(d)
                ious.append(j)
                rows.append({"setting": name, "boxes": boxes, "lesion": entry.get("lesion", entry["image"]), "patient": entry.get("patient", ""),
                             "dice": round(d, 6), "iou": round(j, 6), "confidence": round(result.confidence, 6), "passes": len(result.boxes), "seconds": round(times[-1], 4)})  # fmt: skip
            confidences = [r["confidence"] for r in rows if r["setting"] == name and r["boxes"] == boxes]
            summary[f"{name}|{boxes}"] = {
                "dice": statistics.mean(dices), "dice_ci": bootstrap_ci(dices), "iou": statistics.mean(ious),
                "iou90": float(np.mean(np.array(ious) >= 0.9)), "seconds_median": statistics.median(times),
                "spearman_confidence_dice": float(spearmanr(confidences, dices).statistic),
            }  # fmt: skip
    cpu = cpu_model()
    lines = [
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"precision {args.precision}, weights `{args.weights or 'shipped'}`, {len(lesions)} '{args.split}' lesions of `{args.dataset_dir.name}`; "
        f"loose = +{args.loose:.0%} of the box per side. Dice/IoU per lesion at the lesion image's resolution.",
        "",
        "| setting | boxes | Dice (95 % CI) | IoU | share IoU >= 0.9 | s per ROI (median) | Spearman(confidence, Dice) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, block in summary.items():
        name, boxes = key.split("|")
        low, high = block["dice_ci"]
        lines.append(f"| {name} | {boxes} | {block['dice']:.3f} ({low:.3f}-{high:.3f}) | {block['iou']:.3f} | {block['iou90']:.3f} | {block['seconds_median']:.3f} | {block['spearman_confidence_dice']:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        with atomic_output(args.out) as tmp:
            tmp.write_text(table)
        with atomic_output(args.out.with_suffix(".csv")) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        with atomic_output(args.out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
