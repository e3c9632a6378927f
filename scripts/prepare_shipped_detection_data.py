"""Prepare the detection datalist of the shipped CDD-CESM DM mammograms (the detector's training data).

Reads a CDD-CESM DM folder (SOURCE_DIR, docs/data.md) with its manifest: the images with a mass finding give boxes (the
segmentation's lesion rule), the images marked ``is_mass = 0`` are negatives. Patients keep the
split of the segmentation data (``runs/data/cdd_cesm_dm/datalist.json`` when it was prepared, else
the same 80/20 patient split with seed 0), so no validation patient of the shipped segmentation
model trains the detector. Writes ``datalist.json`` and the lesion label maps.
Usage: ``python scripts/prepare_shipped_detection_data.py [SOURCE_DIR] [OUT_DIR] [SEGMENTATION_DATALIST]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from connected_unets.data.detection import prepare_detection
from connected_unets.data.folder import read_folder

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "cdd_cesm_dm", help="the CDD-CESM DM folder")
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm_detection", help="where datalist.json goes")
    parser.add_argument(
        "segmentation", nargs="?", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm" / "datalist.json",
        help="the segmentation datalist whose patient split wins (used when it exists)",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    source, out, segmentation = args.source, args.out, args.segmentation
    try:
        found = read_folder(source, negatives=True)
    except (OSError, ValueError) as err:
        sys.exit(f"prepare_shipped_detection_data: {err}")
    datalist = prepare_detection(
        found.records, out, seed=0, segmentation_datalist=segmentation if segmentation.is_file() else None,
        skipped=found.skipped, progress=lambda r: tqdm(r, desc="images"),
    )  # fmt: skip
    for split, items in datalist.items():
        if split == "skipped":
            print(f"skipped: {len(items)}")
        else:
            positives = sum(bool(i["boxes"]) for i in items)
            print(f"{split}: {len(items)} images ({positives} with a mass, {len(items) - positives} without), {len({i['patient'] for i in items})} patients")
    print(f"datalist: {out / 'datalist.json'} (train with scripts/train_detector.sh)")


if __name__ == "__main__":
    main()
