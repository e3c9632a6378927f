"""Prepare the CDD-CESM DM lesion ROIs that the shipped weights are trained on.

Reads a CDD-CESM DM folder (manifest, images, masks; docs/data.md), keeps the mass images, splits
patients 80/20 into training/validation (seed 0; the shipped sample images are all validation
patients) and writes ROI crops + ``datalist.json``. Re-running skips what exists.
Usage: ``python scripts/prepare_shipped_training_data.py [SOURCE_DIR] [OUT_DIR]``; SOURCE_DIR defaults to
``shared/data/cdd_cesm_dm`` in the folder that holds the repository, OUT_DIR to ``runs/data/cdd_cesm_dm``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from connected_unets.data.folder import read_folder
from connected_unets.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "cdd_cesm_dm"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "runs" / "data" / "cdd_cesm_dm"
    found = read_folder(source)  # the CDD-CESM manifest: mass images only, mass-like components as lesions
    datalist = prepare(found.records, out, seed=0, source_root=source, progress=lambda r: tqdm(r, desc="images"))
    for split, items in datalist.items():
        print(f"{split}: {len(items)} skipped" if split == "skipped" else f"{split}: {len(items)} lesions, {len({i['patient'] for i in items})} patients")


if __name__ == "__main__":
    main()
