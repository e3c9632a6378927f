"""Copy the demo/test sample out of the CDD-CESM DM set (validation patients only) into the bundle.

Writes ``monai_bundle/sample_data/``: the full images, their mass-only masks (the dataset's masks
filtered by :func:`connected_unets.data.regions.mass_regions`), ``samples.json`` with one box per
lesion, and the dataset's CITATION, and ``rois/``: the sample prepared for training (two patients each in
training and validation) so the bundle's train config runs out of the box. Usage: ``python scripts/make_sample_data.py [SHARED_DATA_DIR]``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from connected_unets.data.manifest import read_manifest
from connected_unets.data.prepare import prepare
from connected_unets.data.records import ImageRecord
from connected_unets.data.regions import mass_regions
from connected_unets.roi import mask_box

SAMPLE = ["P60_L_DM_MLO", "P72_R_DM_CC", "P264_L_DM_CC", "P264_L_DM_MLO", "P304_R_DM_MLO", "P206_L_DM_CC"]
REPO = Path(__file__).resolve().parents[1]


def main(source: Path) -> None:
    out = REPO / "monai_bundle" / "sample_data"
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    records = {r.image.stem: r for r in read_manifest(source)}
    samples = []
    for name in SAMPLE:
        record = records[name]
        shutil.copyfile(record.image, out / "images" / record.image.name)
        regions = mass_regions(np.array(Image.open(record.mask)) > 127)
        Image.fromarray((np.any(regions, axis=0) * 255).astype(np.uint8)).save(out / "masks" / f"{name}.png")
        samples.append(
            {
                "image": f"images/{record.image.name}",
                "mask": f"masks/{name}.png",
                "patient": record.patient,
                "boxes": [list(mask_box(region)) for region in regions],
            }
        )
    (out / "samples.json").write_text(json.dumps(samples, indent=1))
    shutil.copyfile(source / "CITATION.txt", out / "CITATION.txt")
    sample_records = [ImageRecord(out / s["image"], out / s["mask"], s["patient"]) for s in samples]
    prepare(sample_records, out / "rois", splits={"training": 0.5, "validation": 0.5}, seed=0, source_root=out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "cdd_cesm_dm")
