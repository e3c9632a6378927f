"""Reader for a CSV manifest of images, masks and patients, like the shipped CDD-CESM one.

Columns: ``file`` (image name under ``images/``), ``patient``; optional ``pathology`` and ``is_mass``
(rows with ``is_mass`` = 0 are left out when ``mass_only``). Masks are ``masks_bin/<stem>.png``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .records import ImageRecord


def read_manifest(root: str | Path, manifest: str = "manifest.csv", mass_only: bool = True) -> list[ImageRecord]:
    """Records of a dataset folder holding ``manifest.csv``, ``images/`` and ``masks_bin/``."""
    root = Path(root)
    path = root / manifest
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"file", "patient"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return [
        ImageRecord(
            image=root / "images" / row["file"],
            mask=root / "masks_bin" / f"{Path(row['file']).stem}.png",
            patient=row["patient"],
            pathology=row.get("pathology", ""),
            extra={k: v for k, v in row.items() if k not in {"file", "patient", "pathology"}},
        )
        for row in rows
        if not mass_only or row.get("is_mass", "1") == "1"
    ]
