"""The README's demo: segment the shipped sample mammograms with the shipped weights and score them."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from .bundle import bundle_dir as find_bundle
from .inference import Segmenter
from .io import atomic_output, load_image, load_mask, save_mask
from .metrics import dice, iou
from .overlay import side_by_side

logger = logging.getLogger(__name__)


def run_demo(out_dir: str | Path, segmenter: Segmenter, bundle_dir: str | Path | None = None) -> list[dict]:
    """Write ``<stem>_mask.png``, ``<stem>_overlay.png`` and ``dice.csv`` for every sample image;
    return the per-image rows (image, boxes, dice, iou)."""
    samples_file = find_bundle(bundle_dir) / "sample_data" / "samples.json"
    out_dir = Path(out_dir)
    rows = []
    for sample in json.loads(samples_file.read_text()):
        image = load_image(samples_file.parent / sample["image"])
        reference = load_mask(samples_file.parent / sample["mask"])
        mask = segmenter.segment(image.array, sample["boxes"], source=str(image.path))
        stem = image.path.stem
        save_mask(mask, out_dir / f"{stem}_mask.png")
        with atomic_output(out_dir / f"{stem}_overlay.png") as tmp:
            side_by_side(image.array, mask, reference, sample["boxes"]).save(tmp, format="PNG")
        rows.append({"image": image.path.name, "boxes": len(sample["boxes"]), "dice": dice(mask, reference), "iou": iou(mask, reference)})
        logger.info("%s: Dice %.3f", image.path.name, rows[-1]["dice"])
    with atomic_output(out_dir / "dice.csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "boxes", "dice", "iou"])
        writer.writeheader()
        writer.writerows(rows)
    return rows
