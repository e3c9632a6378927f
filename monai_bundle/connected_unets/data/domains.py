"""The two image domains a CycleGAN learns between, and the patients a translation must leave out.

A domain is a ``datalist.json`` written by ``connected-unets prepare`` (the lesion ROIs of some
splits) or a folder of ROI images (its ``images/`` subfolder when it has one). Both become a
:class:`Domain`: items with an absolute ``image`` path (and the datalist's other fields, the mask
among them), so training, generation and the checks below never care which it was.

Patients: translated lesions are training data of the target datalist, so a source domain must
hold no patient that the target datalist keeps out of training (validation, test); otherwise a
restyled copy of a validation patient's lesion would be trained on. :func:`held_out_patients` and
:func:`exclude_patients` keep them out when the source domain is prepared.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io import SUPPORTED_SUFFIXES, ImageReadError, load_image
from .records import ImageRecord, Skip

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_SPLITS",
    "DATALIST",
    "Domain",
    "check_channels",
    "exclude_patients",
    "held_out_patients",
    "image_channels",
    "read_domain",
]

DATALIST = "datalist.json"
TRAINING = "training"
NOT_SPLITS = ("skipped",)  # datalist.json keys that are no split (prepare's list of what it left out)
ALL_SPLITS = "all"
FILE_KEYS = ("image", "label")  # item fields that name files, relative to the datalist's folder
GREY_TOLERANCE = 8  # grey levels an RGB pixel's channels may differ by and still be grey (JPEG chroma noise)


@dataclass
class Domain:
    """One domain: its name in messages (``A``, ``B``), where it was read, its items, and the
    folders its files lie in (where no output may be written)."""

    name: str
    source: Path
    items: list[dict[str, Any]]
    folders: set[Path] = field(default_factory=set)


def read_domain(path: str | Path, splits: str | Sequence[str] = (TRAINING,), name: str = "A") -> Domain:
    """The images of a datalist (a ``datalist.json`` or the folder holding one; the items of
    ``splits``, ``"all"`` for every split) or of a folder of ROI images. One-line errors for a
    path that is neither, a split the datalist lacks, and a domain without images."""
    path = Path(path)
    if path.is_dir() and (path / DATALIST).is_file():
        path = path / DATALIST
    if path.is_file():
        domain = _datalist_domain(path, splits, name)
    elif path.is_dir():
        domain = _folder_domain(path, name)
    else:
        raise FileNotFoundError(f"domain {name}: {path}: no such datalist or folder")
    if not domain.items:
        raise ValueError(f"domain {name} ({path}): no images{_what_was_read(path, splits)}")
    logger.info("domain %s: %d images from %s", name, len(domain.items), path)
    return domain


def _what_was_read(path: Path, splits: str | Sequence[str]) -> str:
    if path.is_dir():
        return f" ({', '.join(SUPPORTED_SUFFIXES)} files in it or in its images/ folder)"
    return f" in split(s) {splits if isinstance(splits, str) else ', '.join(splits)}"


def _datalist_domain(path: Path, splits: str | Sequence[str], name: str) -> Domain:
    try:
        datalist = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"domain {name}: {path}: not a readable datalist JSON ({' '.join(str(err).split())})") from err
    if not isinstance(datalist, dict):
        raise ValueError(f"domain {name}: {path}: not a datalist (expected a JSON object of splits)")
    available = [key for key, value in datalist.items() if key not in NOT_SPLITS and isinstance(value, list)]
    chosen = available if splits == ALL_SPLITS else [splits] if isinstance(splits, str) else list(splits)
    missing = [split for split in chosen if split not in available]
    if missing:
        raise ValueError(f"domain {name}: {path} has no split '{missing[0]}' (it has {', '.join(available) or 'none'})")
    items = []
    for split in chosen:
        for entry in datalist[split]:
            if not isinstance(entry, dict) or "image" not in entry:
                raise ValueError(f"domain {name}: {path}: an item of split '{split}' names no image")
            item = {**entry, "split": split}
            for key in FILE_KEYS:
                if key in item:
                    item[key] = str((path.parent / item[key]).resolve())
            items.append(item)
    return Domain(name, path, items, {Path(item["image"]).parent for item in items} | {path.parent.resolve()})


def _folder_domain(folder: Path, name: str) -> Domain:
    images = folder / "images" if (folder / "images").is_dir() else folder
    files = sorted(p for p in images.iterdir() if p.is_file() and p.name.lower().endswith(SUPPORTED_SUFFIXES))
    return Domain(name, folder, [{"image": str(p.resolve())} for p in files], {folder.resolve(), images.resolve()})


def image_channels(path: str | Path) -> int:
    """Colour channels of an image file: 1 for grey levels (also an RGB file whose three channels
    agree within ``GREY_TOLERANCE`` levels, as grey pictures saved as colour JPEGs do), 3 for
    colour; alpha does not count. ImageReadError when the file cannot be read at all."""
    path = Path(path)
    try:
        with Image.open(path) as opened:
            opened.load()  # a file cut short fails here, not later in training
            image = opened.convert("RGBA") if opened.mode == "P" else opened
            if len([band for band in image.getbands() if band != "A"]) == 1:
                return 1
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError):  # not a PIL format (DICOM, NIfTI, NRRD) or unreadable
        load_image(path)  # ImageReadError for a file no reader takes
        return _dicom_samples(path)
    spread = np.ptp(pixels.astype(np.int16), axis=-1).max()  # the largest difference between a pixel's channels
    return 1 if spread <= GREY_TOLERANCE else 3


def _dicom_samples(path: Path) -> int:
    """SamplesPerPixel of a DICOM file, 1 for any other format load_image reads (they are grey here)."""
    import pydicom

    try:
        return int(pydicom.dcmread(path, stop_before_pixels=True).get("SamplesPerPixel", 1))
    except Exception:  # not DICOM: NIfTI, NRRD, ... (read as one grey plane)
        return 1


def check_channels(domains: Iterable[Domain], channels: int = 1) -> None:
    """Refuse, in one line, a domain holding an image of another channel count than the networks'
    ``channels`` (a colour ROI among grey ones, or a colour domain beside a grey one), or an image
    that cannot be read; before training, so that nothing is written."""
    for domain in domains:
        for item in domain.items:
            try:
                found = image_channels(item["image"])
            except ImageReadError as err:
                raise ValueError(f"domain {domain.name}: {err}") from None
            if found != channels:
                raise ValueError(
                    f"images of different channel counts: {item['image']} (domain {domain.name}) has {found} channels, the "
                    f"networks take {channels}-channel (grey-level) images; convert colour ROIs to grey levels first"
                )


def held_out_patients(datalist_file: str | Path, training: str = TRAINING) -> dict[str, str]:
    """Patient -> split of every patient that ``datalist_file`` keeps out of ``training``."""
    path = Path(datalist_file)
    if path.is_dir():
        path = path / DATALIST
    try:
        datalist = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable datalist JSON ({' '.join(str(err).split())})") from err
    return {
        str(entry["patient"]): split
        for split, entries in datalist.items()
        if split != training and split not in NOT_SPLITS and isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict) and entry.get("patient") not in (None, "")
    }


def exclude_patients(records: Sequence[ImageRecord], held_out: Mapping[str, str], reference: str | Path) -> tuple[list[ImageRecord], list[Skip]]:
    """The records whose patient ``held_out`` does not name, and a Skip saying why for each other."""
    kept, skips = [], []
    for record in records:
        split = held_out.get(record.patient)
        if split is None:
            kept.append(record)
            continue
        reason = f"{record.image}: patient {record.patient} is in the '{split}' split of {reference}; a translated copy would leak into training"
        skips.append(Skip(str(record.image), reason, "held-out patient"))
    logger.info("%d of %d images left out: their patients are held out in %s", len(skips), len(records), reference)
    return kept, skips
