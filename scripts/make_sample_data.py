"""Copy the demo/test sample out of the CDD-CESM DM set (validation patients only) into the bundle.

Writes ``monai_bundle/sample_data/``: the full images, their mass-only masks (the dataset's masks
filtered by :func:`connected_unets.data.regions.mass_regions`), ``samples.json`` with one box per
lesion, ``manifest.csv`` (image, mask, patient, pathology: a dataset ``connected-unets prepare --dataset
folder`` reads), the dataset's CITATION, and ``rois/``: the sample prepared for training by that same
reader and ``prepare`` (two patients each in training and validation) so the bundle's train config
runs out of the box. Usage: ``python scripts/make_sample_data.py [SOURCE_DIR]``: a CDD-CESM DM folder
(docs/data.md), by default ``shared/data/cdd_cesm_dm`` in the folder that holds the repository.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from connected_unets.data.folder import read_folder
from connected_unets.data.prepare import prepare
from connected_unets.data.regions import mass_regions
from connected_unets.roi import mask_box

SAMPLE = ["P60_L_DM_MLO", "P72_R_DM_CC", "P264_L_DM_CC", "P264_L_DM_MLO", "P304_R_DM_MLO", "P206_L_DM_CC"]
REPO = Path(__file__).resolve().parents[1]


def main(source: Path) -> None:
    out = REPO / "monai_bundle" / "sample_data"
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    records = {r.image.stem: r for r in read_folder(source).records}
    samples = []
    for name in SAMPLE:
        record = records[name]
        shutil.copyfile(record.image, out / "images" / record.image.name)
        regions = mass_regions(np.array(Image.open(record.annotations[0].mask)) > 127)
        Image.fromarray((np.any(regions, axis=0) * 255).astype(np.uint8)).save(out / "masks" / f"{name}.png")
        samples.append(
            {
                "image": f"images/{record.image.name}",
                "mask": f"masks/{name}.png",
                "patient": record.patient,
                "pathology": record.annotations[0].pathology,
                "boxes": [list(mask_box(region)) for region in regions],
            }
        )
    (out / "samples.json").write_text(json.dumps(samples, indent=1))
    shutil.copyfile(source / "CITATION.txt", out / "CITATION.txt")
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["image", "mask", "patient", "pathology"], extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(samples)
    found = read_folder(out)
    prepare(found.records, out / "rois", splits={"training": 0.5, "validation": 0.5}, seed=0, source_root=out)
    shutil.rmtree(out / "rois" / ".prepare")  # resume records: of no use in the shipped copy


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "cdd_cesm_dm")
