"""Dataset readers (CBIS-DDSM, INbreast, a folder) and the ``prepare`` step that turns them into ROI training data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cbis_ddsm import read_cbis_ddsm
from .folder import read_folder
from .inbreast import read_inbreast
from .records import ReadResult

DATASETS = ("cbis-ddsm", "inbreast", "folder")

# Splits ``prepare`` makes when the user names none. CBIS-DDSM keeps its official test set and takes
# validation patients from its training side; INbreast has no split: the paper's 70/20/10 by patient.
DEFAULT_SPLITS: dict[str, dict[str, float]] = {
    "cbis-ddsm": {"training": 0.8, "validation": 0.2},
    "inbreast": {"training": 0.7, "test": 0.2, "validation": 0.1},
    "folder": {"training": 0.8, "validation": 0.2},
}


def read_dataset(dataset: str, root: str | Path, **options: Any) -> ReadResult:
    """Records of ``root`` read by the reader of ``dataset``; ``options`` go to that reader."""
    readers = {"cbis-ddsm": read_cbis_ddsm, "inbreast": read_inbreast, "folder": read_folder}
    if dataset not in readers:
        raise ValueError(f"unknown dataset '{dataset}'; choose one of {', '.join(DATASETS)}")
    return readers[dataset](root, **options)
