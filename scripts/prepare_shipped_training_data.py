"""Prepare the CDD-CESM DM lesion ROIs that the shipped weights are trained on.

Reads ``shared/data/cdd_cesm_dm`` (manifest, images, masks), keeps the mass images, splits
patients 80/20 into training/validation (seed 0; the shipped sample images are all validation
patients) and writes ROI crops + ``datalist.json``. Re-running skips what exists.
Usage: ``python scripts/prepare_shipped_training_data.py [SOURCE_DIR] [OUT_DIR]``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from connected_unets.data.manifest import read_manifest
from connected_unets.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "cdd_cesm_dm"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "runs" / "data" / "cdd_cesm_dm"
    records = read_manifest(source)
    datalist = prepare(records, out, seed=0, source_root=source, progress=lambda r: tqdm(r, desc="images"))
    for split, items in datalist.items():
        print(f"{split}: {len(items)} {'images' if split == 'skipped' else 'lesions'}, {len({i.get('patient') for i in items})} patients")


if __name__ == "__main__":
    main()
