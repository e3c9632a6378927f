"""Reader for INbreast: ``AllDICOMs/*.dcm``, ``AllXML/*.xml`` and the ``INbreast.csv`` (or ``.xls``) table.

DICOM names read ``<file id>_<patient id>_MG_<laterality>_<view>_ANON.dcm``; the XML of an image is
``AllXML/<file id>.xml``, an Apple property list whose ``Images[0].ROIs`` each have a ``Name`` ("Mass",
"Calcification", ...) and ``Point_px``, a list of ``"(x, y)"`` strings in pixels. The table (columns
``File Name``, ``Laterality``, ``View``, ``ACR``, ``Bi-Rads``; ``;``-separated in the CSV) gives each
image's BI-RADS, kept as the lesion's pathology since INbreast has no biopsy column. INbreast has no
official split: ``prepare`` splits by patient id.
"""

from __future__ import annotations

import csv
import logging
import plistlib
import re
from pathlib import Path

from .records import Annotation, ImageRecord, ReadResult, Skip

logger = logging.getLogger(__name__)

_DICOM_NAME = re.compile(r"^(?P<file_id>\d+)_(?P<patient>[0-9a-fA-F]+)_MG_(?P<laterality>[LR])_(?P<view>[A-Z]+)", re.IGNORECASE)
_POINT = re.compile(r"^\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)\s*$")


class MalformedROI(ValueError):
    """An XML ROI whose points cannot be parsed."""


def read_inbreast(root: str | Path, roi_names: tuple[str, ...] = ("Mass",), negatives: bool = False) -> ReadResult:
    """Image records of an INbreast folder; ROIs whose ``Name`` is in ``roi_names`` (case-insensitive) are lesions.
    With ``negatives`` an image without such an ROI (no XML, or none of those names in it) becomes a
    record without annotations (an image without a mass, for the detector) instead of a skip."""
    root = Path(root)
    dicom_dir, xml_dir = root / "AllDICOMs", root / "AllXML"
    for folder in (dicom_dir, xml_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: INbreast folder not found (expected AllDICOMs/ and AllXML/ under {root})")
    birads = _read_table(root)
    wanted = {name.lower() for name in roi_names}
    result = ReadResult(folders={root, dicom_dir, xml_dir})  # the table lies in the root
    for dicom in sorted(dicom_dir.glob("*.dcm")):
        match = _DICOM_NAME.match(dicom.name)
        if match is None:
            result.skipped.append(Skip(str(dicom), f"{dicom}: name is not <file id>_<patient id>_MG_<L|R>_<view>_ANON.dcm", "unrecognised file name"))
            continue
        file_id = match["file_id"]
        xml = xml_dir / f"{file_id}.xml"
        extra = {"laterality": match["laterality"].upper(), "view": match["view"].upper(), "file_id": file_id}
        if not xml.is_file() and negatives:
            result.records.append(ImageRecord(dicom, match["patient"], (), "", extra))
            continue
        if not xml.is_file():
            result.skipped.append(Skip(str(dicom), f"{dicom}: no lesion annotated (no {xml.name})", "no lesion"))
            continue
        try:
            rois = read_rois(xml)
        except ValueError as err:
            result.skipped.append(Skip(str(xml), str(err), "unreadable annotation file"))
            continue
        pathology = f"BI-RADS {birads[file_id]}" if birads.get(file_id) else ""
        annotations = []
        for index, (name, points) in enumerate(rois, start=1):
            if name.strip().lower() not in wanted:
                continue
            if isinstance(points, MalformedROI):
                result.skipped.append(Skip(str(xml), f"{xml}: ROI {index} ({name}): {points}", "bad polygon"))
                continue
            annotations.append(Annotation(lesion=f"{file_id}_roi{index}", pathology=pathology, polygon=points))
        malformed = any(name.strip().lower() in wanted and isinstance(points, MalformedROI) for name, points in rois)
        if not annotations and negatives and not malformed:
            result.records.append(ImageRecord(dicom, match["patient"], (), "", extra))
            continue
        if not annotations:
            result.skipped.append(Skip(str(dicom), f"{dicom}: no {'/'.join(roi_names)} ROI in {xml.name}", "no lesion"))
            continue
        result.records.append(ImageRecord(dicom, match["patient"], tuple(annotations), "", extra))
    return result


def read_rois(xml: Path) -> list[tuple[str, tuple[tuple[float, float], ...] | MalformedROI]]:
    """(Name, points) of every ROI of the first image in an INbreast XML; bad points come as a MalformedROI."""
    try:
        with xml.open("rb") as handle:
            document = plistlib.load(handle)
        rois = document["Images"][0]["ROIs"]
    except Exception as err:  # ExpatError, InvalidFileException, KeyError, IndexError, TypeError ...
        raise ValueError(f"{xml}: not an INbreast ROI file ({' '.join(str(err).split()) or type(err).__name__})") from err
    result = []
    for roi in rois:
        name = str(roi.get("Name", "")) if isinstance(roi, dict) else ""
        try:
            points = _points(roi.get("Point_px") if isinstance(roi, dict) else None)
        except MalformedROI as err:
            points = err
        result.append((name, points))
    return result


def _points(raw: object) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list):
        raise MalformedROI("no Point_px list")
    points = []
    for item in raw:
        match = _POINT.match(str(item))
        if match is None:
            raise MalformedROI(f"point {str(item)!r} is not '(x, y)'")
        points.append((float(match[1]), float(match[2])))
    return tuple(points)


def _read_table(root: Path) -> dict[str, str]:
    """File id -> BI-RADS from INbreast.csv (any delimiter) or INbreast.xls; empty when neither exists."""
    csv_path, xls_path = root / "INbreast.csv", root / "INbreast.xls"
    if csv_path.is_file():
        rows, source = _csv_rows(csv_path), csv_path
    elif xls_path.is_file():
        rows, source = _xls_rows(xls_path), xls_path
    else:
        logger.warning("%s: no INbreast.csv or INbreast.xls; lesions get no BI-RADS", root)
        return {}
    if rows and ("File Name" not in rows[0] or "Bi-Rads" not in rows[0]):
        raise ValueError(f"{source}: expected columns 'File Name' and 'Bi-Rads'")
    return {row["File Name"].split(".")[0]: row["Bi-Rads"] for row in rows if row.get("File Name")}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of INbreast.csv, whatever its delimiter. Bytes that are not UTF-8 are replaced: the columns
    used (file names, BI-RADS) are ASCII, so a table in another encoding loses nothing that is used."""
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=";,\t")
    except (IndexError, csv.Error) as err:  # an empty file, or a header without any of the delimiters
        raise ValueError(f"{path}: not a table separated by ';', ',' or tabs") from err
    rows = csv.DictReader(lines, dialect=dialect, restval="")
    return [{key.strip(): value.strip() for key, value in row.items() if key is not None} for row in rows]  # None: cells past the header


def _xls_rows(path: Path) -> list[dict[str, str]]:
    import xlrd  # only the .xls table needs it

    try:
        sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
    except Exception as err:
        raise ValueError(f"{path}: not a readable .xls file ({err})") from err
    header = [str(cell.value).strip() for cell in sheet.row(0)]
    rows = []
    for index in range(1, sheet.nrows):
        values = [_cell_text(cell.value) for cell in sheet.row(index)]
        rows.append(dict(zip(header, values)))
    return rows


def _cell_text(value: object) -> str:
    """Spreadsheet numbers as written (22678622.0 -> '22678622')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
