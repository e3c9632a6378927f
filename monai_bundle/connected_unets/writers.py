"""Writing a segmentation result in the field's interchange formats, each file atomically.

PNG and NIfTI hold the union of the ROI masks (:func:`connected_unets.io.save_mask`); a DICOM SEG
(highdicom) and 3D Slicer's ``.seg.nrrd`` (slicerio) hold one "Mass N" segment per ROI, so that
viewers and archives keep the ROIs apart. Every result also gets a per-ROI table beside it
(``mask_rois.csv`` and ``mask_rois.json``): box, area and maximum diameter, in mm when the image
gave a pixel size.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import LoadedImage, atomic_output, save_mask

OUTPUT_SUFFIXES = (".png", ".nii", ".nii.gz", ".seg.nrrd", ".dcm")  # union of the ROI masks, or one segment per ROI
ROI_COLUMNS = ("roi", "x0", "y0", "x1", "y1", "found", "area_px", "area_mm2", "max_diameter_px", "max_diameter_mm", "confidence", "note")

# What a DICOM SEG references of its source (must have values) and copies from it (may be empty).
_SOURCE_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
_SOURCE_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID", "AccessionNumber")
# SNOMED CT "Morphologically Altered Structure" / "Mass", as DICOM SEG and Slicer's terminology name them.
_CATEGORY = ("49755003", "SCT", "Morphologically Altered Structure")
_TYPE = ("4147007", "SCT", "Mass")
_SLICER_TERMINOLOGY = {
    "contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
    "category": [_CATEGORY[1], _CATEGORY[0], _CATEGORY[2]],
    "type": [_TYPE[1], _TYPE[0], _TYPE[2]],
    "anatomicContextName": "Anatomic codes - DICOM master list",
}
# Segment colours, the Slicer module's palette, so a file and a Slicer run look alike.
_PALETTE = (
    (0.90, 0.20, 0.20), (0.20, 0.70, 0.95), (0.95, 0.75, 0.15), (0.40, 0.85, 0.35),
    (0.80, 0.40, 0.90), (1.00, 0.55, 0.20), (0.30, 0.90, 0.80), (0.95, 0.45, 0.70),
)  # fmt: skip


@dataclass(frozen=True)
class Algorithm:
    """The model that made the masks, as a DICOM SEG's algorithm identification names it."""

    name: str
    version: str


def segment_name(index: int) -> str:
    """The name of ROI ``index``'s (0-based) segment: "Mass 1", "Mass 2", ..."""
    return f"Mass {index + 1}"


def check_output(path: str | Path, image: LoadedImage) -> None:
    """Raise a one-line ValueError when ``path`` cannot take this image's result, so that the
    caller can refuse before it spends time on the model."""
    target = Path(path)
    name = target.name.lower()
    if not name.endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"{target}: cannot save a segmentation as '{target.suffix}'; use {', '.join(OUTPUT_SUFFIXES)}")
    if name.endswith(".dcm"):
        _check_dicom_source(target, image)
    _check_folder(target)
    if _same_file(target, image.path):
        raise ValueError(f"{target}: is the input image; choose another --out so that the image is not overwritten")
    for table in roi_table_paths(target):
        if _same_file(table, image.path):
            raise ValueError(f"{table}: is the input image; choose another --out so that the image is not overwritten")


def save_results(
    masks: Sequence[np.ndarray],
    boxes: Sequence[Sequence[int]],
    path: str | Path,
    image: LoadedImage,
    algorithm: Algorithm,
    confidences: Sequence[float | None] | None = None,
    notes: Sequence[str] | None = None,
) -> list[Path]:
    """Write the masks (one per box, image-sized, 0/1) in the format ``path`` names, and the
    per-ROI tables beside it; return the paths written, the mask file first."""
    check_output(path, image)
    target = Path(path)
    name = target.name.lower()
    if name.endswith(".dcm"):
        written = save_dicom_seg(masks, target, image, algorithm)
    elif name.endswith(".seg.nrrd"):
        written = save_seg_nrrd(masks, target, image)
    else:
        written = save_mask(np.maximum.reduce([np.asarray(m, dtype=np.uint8) for m in masks]), target, reference=image)
    return [written, *save_roi_tables(roi_rows(masks, boxes, image, confidences, notes), target, image.path)]


def save_dicom_seg(masks: Sequence[np.ndarray], path: str | Path, image: LoadedImage, algorithm: Algorithm) -> Path:
    """A BINARY DICOM SEG of the DICOM ``image``: one frame and one "Mass N" segment per ROI, in ROI order.

    Every segment keeps its frame, even an empty one, so that frame N is ROI N for every reader.
    """
    import highdicom as hd  # deferred: only this format needs it
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    _check_dicom_source(Path(path), image)
    stack = _checked_masks(masks, image)
    source = copy.deepcopy(image.dicom)  # the image's own header stays as read
    for keyword in _SOURCE_TYPE2:
        if keyword not in source:
            setattr(source, keyword, None)
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name, version=algorithm.version, family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=index + 1,
            segment_label=segment_name(index),
            segmented_property_category=Code(*_CATEGORY),
            segmented_property_type=Code(*_TYPE),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
            **_display_color(hd, index),
        )
        for index in range(len(stack))
    ]
    with warnings.catch_warnings():
        # highdicom copies the patient's name as it is and warns when it has one component only
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name", category=UserWarning)
        seg = hd.seg.Segmentation(
            source_images=[source],
            pixel_array=np.moveaxis(stack, 0, -1)[None],  # (frames, rows, cols, segments)
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=int(source.get("SeriesNumber") or 0) + 1000,
            series_description=f"{algorithm.name} masses",
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="Connected-UNets",
            manufacturer_model_name=algorithm.name,
            software_versions=algorithm.version,
            device_serial_number="0",
            content_label="MASSES",
            content_description=f"breast masses segmented by {algorithm.name} inside ROI boxes",
            omit_empty_frames=False,
        )
    target = Path(path)
    with atomic_output(target) as tmp:
        seg.save_as(tmp)
    return target


def _display_color(hd: Any, index: int) -> dict[str, Any]:
    """The ``display_color`` argument of ROI ``index``'s segment description (the palette colour);
    none with highdicom < 0.23 (the pydicom 2 of the MONAI Label environment), which has no RGB colours."""
    if not hasattr(hd.color.CIELabColor, "from_rgb"):
        return {}
    return {"display_color": hd.color.CIELabColor.from_rgb(*(255 * c for c in _PALETTE[index % len(_PALETTE)]))}


def save_seg_nrrd(masks: Sequence[np.ndarray], path: str | Path, image: LoadedImage) -> Path:
    """A 3D Slicer segmentation (.seg.nrrd) on ``image``'s pixel grid: one "Mass N" segment per ROI.

    The grid is the one io.save_mask gives NIfTI masks (columns along L, rows along P, the image's
    spacing and origin), which is how Slicer places the image itself; overlapping ROIs go to separate
    layers as Slicer stores them.
    """
    import slicerio  # deferred: only this format needs it

    stack = _checked_masks(masks, image)
    (row_mm, col_mm), (row_origin, col_origin) = image.spacing, image.origin
    ijk_to_lps = np.diag([col_mm, row_mm, 1.0, 1.0])
    ijk_to_lps[:2, 3] = col_origin, row_origin
    segmentation = slicerio.create_segmentation((stack.shape[2], stack.shape[1], 1), ijk_to_lps)
    segmentation["containedRepresentationNames"] = ["Binary labelmap"]
    for index, mask in enumerate(stack):
        segment = {
            "id": f"Segment_{index + 1}",
            "name": segment_name(index),
            "color": list(_PALETTE[index % len(_PALETTE)]),
            "terminology": _SLICER_TERMINOLOGY,
            "nameAutoGenerated": False,  # the name and colour are ours: a terminology edit in Slicer keeps them
            "colorAutoGenerated": False,
        }
        slicerio.add_segment(segmentation, mask.T[:, :, None].astype(bool), segment)
    target = Path(path)
    with atomic_output(target) as tmp:
        slicerio.write_segmentation(str(tmp), segmentation)
    return target


def roi_rows(
    masks: Sequence[np.ndarray],
    boxes: Sequence[Sequence[int]],
    image: LoadedImage,
    confidences: Sequence[float | None] | None = None,
    notes: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per ROI (columns :data:`ROI_COLUMNS`): 1-based index, box (x0, y0, x1, y1, end
    exclusive), whether a mass was found (a non-empty mask), area, maximum Feret diameter,
    confidence (4 decimals) and a note (e.g. why nothing was found). The mm columns are None when
    the image gave no pixel size; a confidence is None where the caller has none."""
    if len(boxes) != len(masks):
        raise ValueError(f"{len(masks)} masks for {len(boxes)} boxes")
    if confidences is not None and len(confidences) != len(masks):
        raise ValueError(f"{len(confidences)} confidences for {len(masks)} ROIs")
    if notes is not None and len(notes) != len(masks):
        raise ValueError(f"{len(notes)} notes for {len(masks)} ROIs")
    stack = _checked_masks(masks, image)
    row_mm, col_mm = image.spacing
    rows = []
    for index, (mask, box) in enumerate(zip(stack, boxes)):
        area = int(mask.sum())
        x0, y0, x1, y1 = (int(v) for v in box)
        rows.append({
            "roi": index + 1, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
            "found": area > 0,
            "area_px": area,
            "area_mm2": round(area * row_mm * col_mm, 4) if image.spacing_known else None,
            "max_diameter_px": round(_max_diameter(mask, (1.0, 1.0)), 4),
            "max_diameter_mm": round(_max_diameter(mask, image.spacing), 4) if image.spacing_known else None,
            "confidence": None if confidences is None or confidences[index] is None else round(float(confidences[index]), 4),
            "note": "" if notes is None else notes[index],
        })  # fmt: skip
    return rows


def roi_table_paths(mask_path: str | Path) -> tuple[Path, Path]:
    """``mask_rois.csv`` and ``mask_rois.json`` beside ``mask.png`` (or .nii.gz, .seg.nrrd, .dcm)."""
    target = Path(mask_path)
    name = target.name
    stem = next((name[: -len(s)] for s in OUTPUT_SUFFIXES if name.lower().endswith(s)), target.stem)
    return target.with_name(f"{stem}_rois.csv"), target.with_name(f"{stem}_rois.json")


def save_roi_tables(rows: Sequence[dict[str, Any]], mask_path: str | Path, image_path: str | Path) -> tuple[Path, Path]:
    """The per-ROI rows as CSV (empty cells for None) and as JSON (null, with the image and mask
    names so that the file explains itself), beside the mask."""
    csv_path, json_path = roi_table_paths(mask_path)
    with atomic_output(csv_path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROI_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps({"image": str(image_path), "mask": Path(mask_path).name, "rois": list(rows)}, indent=1) + "\n")
    return csv_path, json_path


def _check_dicom_source(target: Path, image: LoadedImage) -> None:
    """Raise a one-line ValueError unless ``image`` is a DICOM image a SEG can reference."""
    if image.dicom is None:
        raise ValueError(f"{target}: a DICOM SEG must reference a DICOM image, and {image.path} is not DICOM; use .seg.nrrd, .nii.gz or .png")
    missing = [keyword for keyword in _SOURCE_UIDS if not image.dicom.get(keyword)]
    if missing:
        raise ValueError(f"{target}: {image.path} has no {', '.join(missing)}, which a DICOM SEG must reference; use .seg.nrrd, .nii.gz or .png")


def _check_folder(target: Path) -> None:
    """Raise a one-line ValueError naming ``target`` when its folder can be neither found nor made
    and written (a file in the way, a read-only folder or mount); creates nothing, so a refusal
    leaves no empty folder behind. Without it the write fails after the model ran, naming only a
    temporary file."""
    folder = target.parent
    existing = next((path for path in (folder, *folder.parents) if os.path.lexists(path)), Path("."))
    if not existing.is_dir():
        raise ValueError(f"{target}: cannot write there: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{target}: cannot write there: the folder {existing} is read-only")


def _same_file(a: Path, b: Path) -> bool:
    """True when both names lead to one file (also through links), so writing ``a`` would replace ``b``."""
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _checked_masks(masks: Sequence[np.ndarray], image: LoadedImage) -> np.ndarray:
    """The masks as one (rois, rows, cols) uint8 stack, after checking each is 0/1 and image-sized."""
    if len(masks) == 0:
        raise ValueError("no ROI masks to write")
    stack = np.stack([np.asarray(m) for m in masks])
    if stack.shape[1:] != image.array.shape:
        raise ValueError(f"mask shape {stack.shape[1:]} differs from image shape {image.array.shape}")
    if not np.isin(stack, (0, 1)).all():
        raise ValueError("mask values must be 0 or 1")
    return stack.astype(np.uint8)


def _max_diameter(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """The widest caliper of the mask's convex hull in the spacing's unit (skimage's feret_diameter_max), 0 when empty."""
    from skimage.measure import regionprops

    regions = regionprops(mask.astype(np.uint8), spacing=spacing)
    return float(regions[0].feret_diameter_max) if regions else 0.0



#: Columns of a detections table (``connected-unets segment --detections-out``, detect_inference.yaml's
#: detections.csv): one row per detected mass, box in pixels of the image (viewer pixels), the
#: detector's score and, where the mass was segmented, the Segmenter's confidence and the area.
DETECTION_COLUMNS = ("image", "detection", "x0", "y0", "x1", "y1", "score", "found", "confidence", "area_px", "area_mm2", "note")


def save_detection_table(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write detection rows (columns :data:`DETECTION_COLUMNS`; a missing one stays empty) as CSV,
    atomically; a header alone when nothing was detected."""
    target = Path(path)
    with atomic_output(target) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=DETECTION_COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])
    return target


def detection_rows(
    image: LoadedImage,
    boxes: Sequence[Sequence[int]],
    scores: Sequence[float],
    masks: Sequence[np.ndarray] | None = None,
    confidences: Sequence[float | None] | None = None,
    notes: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One :data:`DETECTION_COLUMNS` row per detected box: the box and score, and when the masses
    were segmented (``masks``), whether a mass was found in it, the confidence, area and note of
    :func:`roi_rows`."""
    if len(scores) != len(boxes):
        raise ValueError(f"{len(scores)} scores for {len(boxes)} boxes")
    rows = roi_rows(masks, boxes, image, confidences, notes) if masks is not None and len(masks) else [{} for _ in boxes]
    return [
        {
            **{k: row.get(k) for k in ("found", "confidence", "area_px", "area_mm2", "note")},
            "image": str(image.path), "detection": index + 1,
            **dict(zip(("x0", "y0", "x1", "y1"), (int(v) for v in box))), "score": round(float(score), 4),
        }
        for index, (box, score, row) in enumerate(zip(boxes, scores, rows))
    ]  # fmt: skip


def detections_path(mask_path: str | Path) -> Path:
    """``mask_detections.csv`` beside ``mask.png`` (or .nii.gz, .seg.nrrd, .dcm): what was detected."""
    csv_path, _ = roi_table_paths(mask_path)
    return csv_path.with_name(csv_path.name[: -len("_rois.csv")] + "_detections.csv")


def save_nothing_found(path: str | Path, image: LoadedImage) -> list[Path]:
    """What a whole-image search that found no mass writes: an all-zero mask where the format holds
    one without segments (.png, .nii, .nii.gz; a DICOM SEG and a .seg.nrrd need at least one
    segment, so nothing is written there) and the per-ROI tables without rows; the paths written."""
    check_output(path, image)
    target = Path(path)
    written = []
    if target.name.lower().endswith((".png", ".nii", ".nii.gz")):
        written.append(save_mask(np.zeros(image.array.shape, dtype=np.uint8), target, reference=image))
    return [*written, *save_roi_tables([], target, image.path)]
