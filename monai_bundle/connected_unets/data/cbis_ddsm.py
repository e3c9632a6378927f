"""Reader for CBIS-DDSM as downloaded from TCIA: a DICOM tree plus the official description CSVs.

The CSVs (``mass_case_description_train_set.csv``, ``..._test_set.csv``, and the ``calc_`` ones) have one
row per abnormality: ``patient_id``, ``left or right breast``, ``image view``, ``abnormality id``,
``abnormality type``, ``pathology``, ``image file path``, ``cropped image file path``, ``ROI mask file path``.
Their paths (``Mass-Training_P_00001_LEFT_CC/<study UID>/<series UID>/000000.dcm``) match the old
download layout; the NBIA Data Retriever's layout (``Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-74994/
1.000000-full mammogram images-24515/1-1.dcm``) keeps only the first folder name. So a path is taken as
written when it exists under the root, else by that first folder name, found anywhere in the tree.

The ROI folder of an abnormality holds both its cropped image and its ROI mask, and the CSV swaps the
two file names in some rows: the mask is chosen by content, the file that has the full image's size
(and, if two do, the one with at most two grey levels).
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom

from .lesions import AnnotationError
from .records import Annotation, ImageRecord, ReadResult, Skip
from .tables import read_csv_rows

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = (
    "patient_id", "left or right breast", "image view", "abnormality id", "abnormality type",
    "pathology", "image file path", "cropped image file path", "ROI mask file path",
)
ABNORMALITY_TYPES = {"mass": ("mass",), "calcification": ("calcification",), "all": ("mass", "calcification")}
_CSV_NAME = re.compile(r"(mass|calc)_case_description_(train|test)_set.*\.csv$", re.IGNORECASE)


def find_description_csvs(root: Path) -> list[Path]:
    """The official description CSVs anywhere under ``root``, sorted."""
    return sorted(path for path in root.rglob("*.csv") if _CSV_NAME.search(path.name))


def read_cbis_ddsm(root: str | Path, abnormality: str = "mass", csv_files: list[Path] | None = None) -> ReadResult:
    """Image records of the CBIS-DDSM download under ``root``, one annotation per abnormality row.

    The official split is kept: rows of a ``train`` CSV get split ``training`` (to be divided into
    training and validation by patient), rows of a ``test`` CSV split ``test``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if abnormality not in ABNORMALITY_TYPES:
        raise ValueError(f"unknown abnormality type '{abnormality}'; choose one of {', '.join(ABNORMALITY_TYPES)}")
    csv_files = csv_files or find_description_csvs(root)
    if not csv_files:
        raise FileNotFoundError(f"{root}: no CBIS-DDSM description CSV (mass_case_description_train_set.csv, ...) found")
    tree = _DicomTree(root)
    result = ReadResult(folders={root})  # the whole tree is searched for DICOMs and CSVs
    annotations: dict[Path, list[Annotation]] = defaultdict(list)
    first_row: dict[Path, tuple[dict[str, str], str]] = {}
    for csv_file in csv_files:
        split = "test" if "test" in csv_file.name.lower() else "training"
        for row in _rows(csv_file):
            if row["abnormality type"].strip().lower() not in ABNORMALITY_TYPES[abnormality]:
                continue
            full = tree.resolve(row["image file path"])
            if full is None:
                result.skipped.append(Skip(_where(csv_file, row), f"{_where(csv_file, row)}: full image '{row['image file path'].strip()}' not found under {root}", "missing image file"))
                continue
            try:
                mask = _roi_mask(tree, row, full)
            except AnnotationError as err:
                result.skipped.append(Skip(_where(csv_file, row), f"{_where(csv_file, row)}: {err}", err.kind))
                continue
            annotations[full].append(Annotation(lesion=_lesion_id(row), pathology=row["pathology"].strip(), mask=mask))
            first_row.setdefault(full, (row, split))
    for full, items in annotations.items():
        row, split = first_row[full]
        extra = {"laterality": row["left or right breast"].strip(), "view": row["image view"].strip()}
        result.records.append(ImageRecord(full, row["patient_id"].strip(), tuple(items), split, extra))
    return result


def _rows(csv_file: Path) -> list[dict[str, str]]:
    rows = read_csv_rows(csv_file)
    missing = [c for c in REQUIRED_COLUMNS if rows and c not in rows[0]]
    if missing or not rows:
        raise ValueError(f"{csv_file}: not a CBIS-DDSM description CSV (missing column(s): {', '.join(missing) or 'all rows'})")
    return rows


def _where(csv_file: Path, row: dict[str, str]) -> str:
    return f"{csv_file.name} {_lesion_id(row)}"


def _lesion_id(row: dict[str, str]) -> str:
    """The ROI folder's name, e.g. ``Mass-Training_P_00001_LEFT_CC_1``: unique across the four CSVs."""
    first = _clean(row["ROI mask file path"]).split("/")[0]
    if first:
        return first
    return f"{row['patient_id'].strip()}_{row['left or right breast'].strip()}_{row['image view'].strip()}_{row['abnormality id'].strip()}"


def _clean(path: str) -> str:
    """A CSV path without the stray quotes, line breaks and backslashes some rows carry."""
    return path.strip().strip('"').strip().replace("\\", "/")


def _roi_mask(tree: "_DicomTree", row: dict[str, str], full: Path) -> Path:
    """The ROI mask DICOM of a row: among the files named by the ROI and cropped-image columns, the full-size binary one."""
    candidates: list[Path] = []
    for column in ("ROI mask file path", "cropped image file path"):
        for path in tree.candidates(row[column]):
            if path not in candidates and path != full:
                candidates.append(path)
    if not candidates:
        raise AnnotationError(f"ROI mask '{_clean(row['ROI mask file path'])}' not found", "missing mask file")
    size = _dicom_size(full)
    same_size = [path for path in candidates if _dicom_size(path) == size]
    if len(same_size) > 1:
        same_size = [path for path in same_size if _is_binary(path)]
    if len(same_size) != 1:
        names = ", ".join(str(p) for p in candidates)
        raise AnnotationError(f"no single full-size binary ROI mask among {names} (image is {size[1]}x{size[0]})", "no full-size ROI mask")
    return same_size[0]


def _dicom_size(path: Path) -> tuple[int, int]:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
        return int(ds.Rows), int(ds.Columns)
    except Exception:  # an unreadable candidate is simply not the mask; the image itself fails later with its reason
        return (-1, -1)


def _is_binary(path: Path) -> bool:
    try:
        return np.unique(pydicom.dcmread(path).pixel_array).size <= 2
    except Exception:
        return False


class _DicomTree:
    """Every DICOM file under a root, findable by CSV path or by the CSV path's first folder name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_folder: dict[str, list[Path]] = defaultdict(list)
        for folder, _, files in os.walk(root):
            dicoms = [Path(folder) / name for name in sorted(files) if name.lower().endswith(".dcm")]
            if not dicoms:
                continue
            parts = Path(folder).relative_to(root).parts
            for name in set(parts):
                self.by_folder[name].extend(dicoms)

    def candidates(self, csv_path: str) -> list[Path]:
        """The file the CSV names if the tree has it at that relative path (at any depth), else all
        DICOMs below its first folder. Index lookups only: no file-system call per CSV row."""
        relative = _clean(csv_path)
        if not relative:
            return []
        found = self.by_folder.get(relative.split("/")[0], [])
        exact = [path for path in found if path.as_posix().endswith(f"/{relative}")]
        return exact[:1] or list(found)

    def resolve(self, csv_path: str) -> Path | None:
        """The one full image a CSV path names: as written, else the only DICOM (or largest image) of its folder."""
        found = self.candidates(csv_path)
        if len(found) <= 1:
            return found[0] if found else None
        sizes = {path: _dicom_size(path) for path in found}
        return max(found, key=lambda path: sizes[path][0] * sizes[path][1])
