"""Turn image records into lesion ROI files and a MONAI datalist, split by patient first.

Each lesion is written as a *context crop*: its box grown by the paper's margin plus enough extra
room (``context``, fraction of the box per side) for the training-time box loosening, so the
training transforms can crop any loosened ROI from it. The lesion box inside the crop is stored in
the datalist. Files are written atomically; a re-run skips what exists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from ..io import ImageReadError, atomic_output, load_image, load_mask
from ..roi import MarginRule, expand_box, mask_box
from .records import ImageRecord, LesionRecord
from .regions import RegionRule, mass_regions
from .split import split_patients

logger = logging.getLogger(__name__)

DEFAULT_SPLITS: dict[str, float] = {"training": 0.8, "validation": 0.2}


def _to_png_array(array: np.ndarray) -> np.ndarray:
    """8-bit when the pixels are 8-bit integers already, else 16-bit scaled over the crop's range."""
    if array.min() >= 0 and array.max() <= 255 and np.all(np.mod(array, 1) == 0):
        return array.astype(np.uint8)
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / max(high - low, 1e-6) * 65535.0
    return np.round(scaled).astype(np.uint16)


def _write_png(array: np.ndarray, path: Path) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def lesions_of(
    record: ImageRecord, out_dir: Path, region_rule: RegionRule, context: float, source_root: Path | None = None
) -> list[LesionRecord]:
    """Write the context crops of one image's lesions (skipping existing files) and describe them."""
    mask = load_mask(record.mask)
    image = load_image(record.image).array
    if mask.shape != image.shape:
        raise ValueError(f"{record.mask}: mask is {mask.shape[::-1]} pixels but its image is {image.shape[::-1]}")
    lesions = []
    for index, region in enumerate(mass_regions(mask, region_rule), start=1):
        box = mask_box(region)
        x0, y0, x1, y1 = expand_box(box, image.shape, MarginRule(), extra=(context,) * 4)
        name = f"{record.image.stem}_lesion{index}"
        image_file, label_file = Path("images") / f"{name}.png", Path("labels") / f"{name}.png"
        if not (out_dir / image_file).exists():
            _write_png(_to_png_array(image[y0:y1, x0:x1]), out_dir / image_file)
        if not (out_dir / label_file).exists():
            _write_png(region[y0:y1, x0:x1].astype(np.uint8) * 255, out_dir / label_file)
        lesions.append(
            LesionRecord(
                image=image_file.as_posix(),
                label=label_file.as_posix(),
                box=(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0),
                patient=record.patient,
                lesion=name,
                pathology=record.pathology,
                source=record.image.relative_to(source_root).as_posix() if source_root else str(record.image),
            )
        )
    return lesions


def prepare(
    records: Sequence[ImageRecord],
    out_dir: str | Path,
    splits: dict[str, float] | None = None,
    seed: int = 0,
    region_rule: RegionRule = RegionRule(),
    context: float = 0.75,
    progress: Callable[[Iterable[ImageRecord]], Iterable[ImageRecord]] = iter,
    source_root: str | Path | None = None,
) -> dict[str, list[dict]]:
    """Write ROI crops for every lesion of ``records`` and ``datalist.json`` in ``out_dir``.

    Patients are split before anything else; images that fail to read are skipped with a logged
    reason, and listed under ``skipped`` in the returned datalist. ``source`` entries are relative
    to ``source_root`` when it is given (portable datalists).
    """
    out_dir = Path(out_dir)
    splits = splits or DEFAULT_SPLITS
    assignment = split_patients((r.patient for r in records), list(splits.values()), list(splits), seed)
    datalist: dict[str, list[dict]] = {name: [] for name in splits}
    skipped: list[dict] = []
    for record in progress(records):
        try:
            lesions = lesions_of(record, out_dir, region_rule, context, Path(source_root) if source_root else None)
        except (ImageReadError, ValueError, OSError) as err:
            logger.warning("skipped %s: %s", record.image, err)
            skipped.append({"image": str(record.image), "reason": str(err)})
            continue
        if not lesions:
            skipped.append({"image": str(record.image), "reason": "no mass-like region in the mask"})
        datalist[assignment[record.patient]].extend(
            {**asdict(lesion), "box": list(lesion.box)} for lesion in lesions
        )
    result = {**datalist, "skipped": skipped}
    with atomic_output(out_dir / "datalist.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result
