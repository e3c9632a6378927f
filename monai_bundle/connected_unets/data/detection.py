"""Whole-image datalists for the mass detector: one entry per mammogram, with the boxes of its lesions.

What a mass is, is decided as for segmentation: the reader's annotations go through
:func:`connected_unets.data.lesions.lesion_masks` (the same :class:`RegionRule` per dataset), and
each lesion mask gives one box (:func:`connected_unets.roi.mask_box`). Images that the reader
returns without annotations (``read_folder(..., negatives=True)``, ``read_inbreast(...,
negatives=True)``) have no mass: their entries have no boxes and teach the detector what is not one.
An image with a mass finding of which no lesion survives the rule is left out (skipped), not
counted as a negative: it holds a mass that no box describes.

The split is by patient, and it is the segmentation's: the patients of images with lesions are
split exactly as :func:`connected_unets.data.prepare.assign_splits` splits them for the ROI
datalist (same ratios, same seed), and a prepared segmentation ``datalist.json``, when given, has
the last word for the patients it lists, so no validation patient of the segmentation model is a
training patient of the detector. Patients with negative images only are split among themselves
with the same ratios and seed.

Written into ``out_dir``: ``datalist.json`` (splits of ``{"image", "boxes", "patient", "lesions",
"label"}`` entries and ``skipped``; paths relative to ``out_dir``) and ``labels/<id>.png``: each
positive image's lesions as a label map (lesion k = value k), which the end-to-end evaluation
compares the masks with.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io import ImageReadError, atomic_output, load_image
from ..roi import mask_box
from .lesions import AnnotationError, lesion_masks
from .prepare import DEFAULT_SPLITS, FREE_SPLITS, RESERVED_SPLITS, assign_splits, check_out_dir, check_split_names
from .records import ImageRecord, Skip, safe_name

logger = logging.getLogger(__name__)

__all__ = ["detection_splits", "lesion_label_map", "prepare_detection"]


def _segmentation_patients(datalist_file: str | Path) -> dict[str, str]:
    """patient -> split of a prepared segmentation datalist.json."""
    datalist = json.loads(Path(datalist_file).read_text())
    return {
        str(entry["patient"]): split
        for split, entries in datalist.items()
        if split not in RESERVED_SPLITS and isinstance(entries, list)
        for entry in entries
        if isinstance(entry, Mapping) and entry.get("patient")
    }


def detection_splits(
    records: Sequence[ImageRecord],
    splits: Mapping[str, float] | None = None,
    seed: int = 0,
    segmentation_datalist: str | Path | None = None,
) -> list[str]:
    """The split of each record, as the module says: the segmentation's for patients with lesions
    (the prepared ``segmentation_datalist`` first), the same ratios among negative-only patients."""
    splits = dict(splits or DEFAULT_SPLITS)
    free = [r.split in FREE_SPLITS for r in records]  # an official split (CBIS-DDSM's test) stays as it is
    positive = [r for r in records if r.annotations]
    by_patient = {r.patient: split for r, split in zip(positive, assign_splits(positive, splits, seed)) if r.split in FREE_SPLITS}
    if segmentation_datalist is not None:
        known = _segmentation_patients(segmentation_datalist)
        differ = sorted(p for p, split in known.items() if p in by_patient and by_patient[p] != split)
        if differ:
            logger.warning("%d patient(s) of %s have another split there than now, e.g. %s: the datalist's is kept", len(differ), segmentation_datalist, differ[0])
        by_patient.update({p: split for p, split in known.items() if p in by_patient or split in splits})
    negative_only = [r for r, f in zip(records, free) if f and not r.annotations and r.patient not in by_patient]
    by_patient.update({r.patient: split for r, split in zip(negative_only, assign_splits(negative_only, splits, seed))})
    return [by_patient[r.patient] if f else r.split for r, f in zip(records, free)]


def lesion_label_map(masks: Sequence[np.ndarray]) -> np.ndarray:
    """The lesions of one image as one uint8 label map: lesion k (1-based) = value k."""
    if len(masks) > 255:
        raise ValueError(f"{len(masks)} lesions in one image: a uint8 label map holds 255")
    label = np.zeros(np.asarray(masks[0]).shape, dtype=np.uint8)
    for index, mask in enumerate(masks, start=1):
        label[np.asarray(mask, dtype=bool)] = index
    return label


def _entry(record: ImageRecord, out_dir: Path) -> tuple[dict[str, Any] | None, list[Skip]]:
    """The datalist entry of one image (None when it is left out) and what was skipped."""
    try:
        shape = load_image(record.image).array.shape
    except ImageReadError as err:
        return None, [Skip(str(record.image), str(err), "unreadable image")]
    lesions: list[tuple[str, np.ndarray]] = []
    skips: list[Skip] = []
    for annotation in record.annotations:
        try:
            found, dropped = lesion_masks(annotation, shape, str(record.image))
        except AnnotationError as err:
            skips.append(Skip(str(annotation.mask or record.image), str(err), err.kind))
            continue
        skips.extend(dropped)
        lesions.extend(found)
    if record.annotations and not lesions:
        reason = f"{record.image}: a mass is annotated but no lesion of it passes the lesion rule; left out of detection (it is no negative)"
        return None, [*skips, Skip(str(record.image), reason, "no usable lesion")]
    entry: dict[str, Any] = {
        "image": os.path.relpath(record.image.resolve(), out_dir.resolve()),
        "boxes": [list(mask_box(mask)) for _, mask in lesions],
        "patient": record.patient,
        "lesions": [safe_name(lesion) for lesion, _ in lesions],
    }
    if lesions:
        name = f"labels/{safe_name(lesions[0][0])}.png"
        with atomic_output(out_dir / name) as tmp:
            Image.fromarray(lesion_label_map([mask for _, mask in lesions])).save(tmp, format="PNG")
        entry["label"] = name
    return entry, skips


def prepare_detection(
    records: Sequence[ImageRecord],
    out_dir: str | Path,
    splits: Mapping[str, float] | None = None,
    seed: int = 0,
    segmentation_datalist: str | Path | None = None,
    skipped: Sequence[Skip] = (),
    progress: Callable[[Iterable], Iterable] = iter,
) -> dict[str, list[dict[str, Any]]]:
    """Write the detection ``datalist.json`` (and the label maps) of ``records`` into ``out_dir``;
    return it. ``skipped`` (what the reader left out) is carried into its ``skipped`` list."""
    out_dir = Path(out_dir)
    splits = dict(splits or DEFAULT_SPLITS)
    check_split_names(splits)
    check_out_dir(out_dir, {path.parent for r in records for path in [r.image, *(a.mask for a in r.annotations if a.mask is not None)]})
    kept = [r for r in records if r.patient.strip()]
    all_skipped = [asdict(s) for s in skipped]
    all_skipped += [asdict(Skip(str(r.image), f"{r.image}: blank patient id; the split is by patient", "no patient id")) for r in records if not r.patient.strip()]
    assigned = detection_splits(kept, splits, seed, segmentation_datalist)
    datalist: dict[str, list[dict[str, Any]]] = {name: [] for name in dict.fromkeys([*splits, *assigned])}
    for record, split in progress(list(zip(kept, assigned))):
        entry, skips = _entry(record, out_dir)
        all_skipped.extend(asdict(s) for s in skips)
        if entry is not None:
            datalist[split].append(entry)
    result = {**datalist, "skipped": all_skipped}
    with atomic_output(out_dir / "datalist.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    for name, entries in datalist.items():
        logger.info("%s: %d images (%d with a mass, %d lesions), %d patients", name, len(entries), sum(bool(e["boxes"]) for e in entries),
                    sum(len(e["boxes"]) for e in entries), len({e["patient"] for e in entries}))  # fmt: skip
    return result
