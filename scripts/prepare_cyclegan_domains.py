"""Prepare the CESM lesion ROIs (a CDD-CESM CESM folder, --cesm) as the CycleGAN's source domain, free of DM validation patients.

CDD-CESM's CESM and DM images are of the same patients. Translated CESM lesions become DM training
data, so every CESM image of a patient whose DM images the DM datalist keeps out of training (its
validation split, written by scripts/prepare_shipped_training_data.py) is left out here, listed under
``skipped`` as "held-out patient". The rest is prepared exactly as the DM data (same reader, lesion
rule and context crops), all in the ``training`` split. Re-running resumes.
Usage: ``python scripts/prepare_cyclegan_domains.py [--cesm DIR] [--dm DATALIST_DIR] [--out DIR]``;
``--cesm`` defaults to ``shared/data/cdd_cesm_cm`` in the folder that holds the repository (docs/data.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from connected_unets.data.domains import DATALIST, exclude_patients, held_out_patients
from connected_unets.data.folder import read_folder
from connected_unets.data.prepare import prepare
from connected_unets.data.summary import summary_table

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cesm", type=Path, default=REPO.parent / "shared" / "data" / "cdd_cesm_cm", help="CESM dataset folder (manifest, images, masks)")
    parser.add_argument("--dm", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm", help="the prepared DM datalist's folder")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_cm")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    dm_datalist = args.dm / DATALIST
    if not dm_datalist.is_file():
        print(f"{dm_datalist}: not found; prepare the DM data first (python scripts/prepare_shipped_training_data.py)", file=sys.stderr)
        return 2
    held_out = held_out_patients(dm_datalist)
    found = read_folder(args.cesm)
    records, excluded = exclude_patients(found.records, held_out, dm_datalist)
    datalist = prepare(
        records, args.out, splits={"training": 1.0}, seed=0, source_root=args.cesm,
        progress=lambda items: tqdm(items, desc="images"), skipped=[*found.skipped, *excluded],
    )  # fmt: skip
    used = {item["patient"] for item in datalist["training"]}
    leaked = sorted(used & set(held_out))
    if leaked:  # cannot happen: exclude_patients removed them; said loudly if it ever does
        print(f"error: CESM lesions of held-out DM patients were prepared: {', '.join(leaked)}", file=sys.stderr)
        return 1
    print(summary_table(datalist))
    print(f"\n{len(used)} CESM patients used; {len({r.patient for r in found.records} & set(held_out))} held out of DM training left out")
    print(f"datalist: {args.out / DATALIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
