"""Turn image records into lesion ROI files and a MONAI datalist, split by patient first.

Each lesion is written as a *context crop*: its box grown by the paper's margin plus enough extra
room (``context``, fraction of the box per side) for the training-time box loosening, so the
training transforms can crop any loosened ROI from it. The lesion box inside the crop is stored in
the datalist. Every file is written atomically, and each finished image leaves a small record in
``.prepare/`` with the size and modification time of its image and mask files, so an interrupted run
picks up where it stopped and a re-run redoes only the images whose inputs changed.
Whatever cannot be used is skipped with its file and reason, logged, and listed under ``skipped``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io import ImageReadError, atomic_output, load_image
from ..roi import MarginRule, expand_box, mask_box
from .augment import augmented_crops
from .lesions import AnnotationError, lesion_masks
from .records import ImageRecord, LesionRecord, Skip, safe_name
from .split import split_patients

logger = logging.getLogger(__name__)

DEFAULT_SPLITS: dict[str, float] = {"training": 0.8, "validation": 0.2}
FREE_SPLITS = ("", "training")  # official splits that are divided by ``splits``; others (e.g. "test") are kept
RESERVED_SPLITS = ("skipped",)  # datalist.json keys that are not splits


@dataclass(frozen=True)
class CropSettings:
    """How lesions become files; part of each image's resume key, so changing them redoes the work."""

    context: float = 0.75
    augment_offline: bool = False


def assign_splits(records: Sequence[ImageRecord], splits: dict[str, float], seed: int = 0) -> list[str]:
    """The split of each record: its official split when that is not divided (e.g. CBIS-DDSM "test"),
    else its patient's share of ``splits``, drawn over the patients of the divided records."""
    free = [record.patient for record in records if record.split in FREE_SPLITS]
    assignment = split_patients(free, list(splits.values()), list(splits), seed) if free else {}
    fixed = {record.patient for record in records if record.split not in FREE_SPLITS}
    both = fixed & set(assignment)
    if both:
        logger.warning("%d patient(s) have images on both sides of the official split, e.g. %s", len(both), sorted(both)[0])
    return [assignment[r.patient] if r.split in FREE_SPLITS else r.split for r in records]


def check_split_names(splits: Iterable[str]) -> None:
    """Refuse a split named like a datalist key that is not a split: its lesions would be overwritten."""
    for name in splits:
        if name in RESERVED_SPLITS:
            raise ValueError(f"split name '{name}' is reserved: datalist.json lists what was skipped under it; choose another name")


def check_out_dir(out_dir: str | Path, folders: Iterable[str | Path]) -> None:
    """Refuse an output folder that is, lies inside or holds a folder inputs are read from: crops written
    there could overwrite inputs, and a later read of the dataset would take them for data."""
    out = Path(out_dir).resolve()
    for folder in sorted({Path(path).resolve() for path in folders}):
        relation = "is" if out == folder else "lies inside" if folder in out.parents else "holds" if out in folder.parents else ""
        if relation:
            raise ValueError(f"{out_dir}: output folder {relation} the dataset folder {folder}; write the output outside the dataset")


def prepare(
    records: Sequence[ImageRecord],
    out_dir: str | Path,
    splits: dict[str, float] | None = None,
    seed: int = 0,
    settings: CropSettings = CropSettings(),
    progress: Callable[[Iterable], Iterable] = iter,
    source_root: str | Path | None = None,
    skipped: Sequence[Skip] = (),
) -> dict[str, list[dict]]:
    """Write ROI crops for every lesion of ``records`` and ``datalist.json`` in ``out_dir``.

    Patients are split before anything else; ``skipped`` (what the reader left out) is carried into
    the datalist's ``skipped`` list with what this step leaves out. ``source`` entries are relative
    to ``source_root`` when it is given (portable datalists). ``out_dir`` must lie outside the folders
    of the records' image and mask files.
    """
    out_dir = Path(out_dir)
    splits = splits or DEFAULT_SPLITS
    check_split_names(splits)
    check_out_dir(out_dir, _input_folders(records))
    records, no_patient = _with_patient(records)
    assigned = assign_splits(records, splits, seed)
    work, duplicates = _unique_lesion_ids(list(zip(records, assigned)))
    datalist: dict[str, list[dict]] = {name: [] for name in dict.fromkeys([*splits, *assigned])}
    all_skipped = [asdict(skip) for skip in (*skipped, *no_patient, *duplicates)]
    root = Path(source_root) if source_root else None
    for record, split in progress(work):
        done = _prepare_image(record, split, out_dir, settings, root)
        datalist[split].extend(done["lesions"])
        all_skipped.extend(done["skipped"])
    for skip in all_skipped:
        logger.warning("skipped %s", skip["reason"])
    result = {**datalist, "skipped": all_skipped}
    with atomic_output(out_dir / "datalist.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


def _input_folders(records: Sequence[ImageRecord]) -> set[Path]:
    return {path.parent for record in records for path in _input_files(record)}


def _input_files(record: ImageRecord) -> list[Path]:
    return [record.image, *(annotation.mask for annotation in record.annotations if annotation.mask is not None)]


def _with_patient(records: Sequence[ImageRecord]) -> tuple[list[ImageRecord], list[Skip]]:
    """The records with a patient id, and a Skip for each without: blank ids would all be one
    "patient", so unrelated images would be split together."""
    kept, skips = [], []
    for record in records:
        if record.patient.strip():
            kept.append(record)
        else:
            reason = f"{record.image}: blank patient id; the split is by patient, so every image needs one"
            skips.append(Skip(str(record.image), reason, "no patient id"))
    return kept, skips


def _unique_lesion_ids(work: list[tuple[ImageRecord, str]]) -> tuple[list[tuple[ImageRecord, str]], list[Skip]]:
    """Keep the first lesion of each id (as a file name, any case) and skip the others: crops are named
    by the id, so a second one would overwrite the first one's files and the datalist would point both
    lesions at one crop."""
    owners: dict[str, Path] = {}
    kept: list[tuple[ImageRecord, str]] = []
    skips: list[Skip] = []
    for record, split in work:
        annotations = []
        for annotation in record.annotations:
            key = safe_name(annotation.lesion).casefold()
            if key in owners:
                reason = f"{record.image}: lesion id '{annotation.lesion}' is taken by a lesion of {owners[key]}; rename one of the files"
                skips.append(Skip(str(annotation.mask or record.image), reason, "duplicate lesion id"))
                continue
            owners[key] = record.image
            annotations.append(annotation)
        if annotations:
            kept.append((dataclasses.replace(record, annotations=tuple(annotations)), split))
    return kept, skips


def _prepare_image(record: ImageRecord, split: str, out_dir: Path, settings: CropSettings, root: Path | None) -> dict:
    """Lesion entries and skips of one image, from its resume record when an earlier run finished it
    from the same input files."""
    source = record.image.relative_to(root).as_posix() if root and record.image.is_relative_to(root) else str(record.image)
    identity = (str(record.image), record.patient, record.annotations, source, split, settings)
    key = hashlib.sha1(repr(identity).encode()).hexdigest()
    done_file = out_dir / ".prepare" / f"{key}.json"
    inputs = _fingerprint(record)  # before reading, so a file changed while it is read is redone next time
    done = _finished(done_file, inputs, out_dir)
    if done is not None:
        return done
    lesions, skips = _lesions(record, split, out_dir, settings, source)
    done = {"inputs": inputs, "lesions": lesions, "skipped": [asdict(skip) for skip in skips]}
    with atomic_output(done_file) as tmp:
        tmp.write_text(json.dumps(done))
    return done


def _fingerprint(record: ImageRecord) -> dict[str, list[int] | None]:
    """Size and modification time (ns) of each input file, None when missing: editing, replacing,
    adding or deleting an image or mask changes it."""
    fingerprint: dict[str, list[int] | None] = {}
    for path in _input_files(record):
        try:
            stat = path.stat()
        except OSError:
            fingerprint[str(path)] = None
        else:
            fingerprint[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return fingerprint


def _finished(done_file: Path, inputs: dict[str, list[int] | None], out_dir: Path) -> dict | None:
    """The resume record of an image if it was made from these inputs and its crops are all still there."""
    try:
        done = json.loads(done_file.read_text())
    except (OSError, ValueError):  # none yet, or not one of ours: do the image
        return None
    if not isinstance(done, dict) or done.get("inputs") != inputs:
        return None
    if not all((out_dir / entry[key]).is_file() for entry in done["lesions"] for key in ("image", "label")):
        return None
    return done


def _lesions(record: ImageRecord, split: str, out_dir: Path, settings: CropSettings, source: str) -> tuple[list[dict], list[Skip]]:
    """Read one image and its annotations and write its lesions; their datalist entries and the skips."""
    lesions: list[dict] = []
    skips: list[Skip] = []
    try:
        image = load_image(record.image).array
    except ImageReadError as err:
        kind = "missing image file" if "file not found" in str(err) else "unreadable image"
        return [], [Skip(str(record.image), str(err), kind)]
    for annotation in record.annotations:
        try:
            masks, dropped = lesion_masks(annotation, image.shape, str(record.image))
        except AnnotationError as err:
            skips.append(Skip(str(annotation.mask or record.image), str(err), err.kind))
            continue
        skips.extend(dropped)
        for lesion, mask in masks:
            identity = {"patient": record.patient, "lesion": safe_name(lesion), "pathology": annotation.pathology, "source": source}
            lesions.extend(_write_lesion(image, mask, mask_box(mask), identity, split, out_dir, settings))
    if not lesions and not skips:
        skips.append(Skip(str(record.image), f"{record.image}: no lesion annotated", "no lesion"))
    return lesions, skips


def _write_lesion(
    image: np.ndarray,
    mask: np.ndarray,
    lesion_box: tuple[int, int, int, int],
    identity: dict[str, str],
    split: str,
    out_dir: Path,
    settings: CropSettings,
) -> list[dict]:
    """Write the context crop (and its augmented copies for training) of one lesion; their datalist
    entries. ``identity`` holds the :class:`LesionRecord` fields patient, lesion, pathology, source."""
    x0, y0, x1, y1 = expand_box(lesion_box, image.shape, MarginRule(), extra=(settings.context,) * 4)
    crop, label = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    box = (lesion_box[0] - x0, lesion_box[1] - y0, lesion_box[2] - x0, lesion_box[3] - y0)
    variants = [("", crop, label, box)]
    if settings.augment_offline and split == "training":
        variants.extend(augmented_crops(crop, label, box))
    entries = []
    for augmentation, crop_v, label_v, box_v in variants:
        name = f"{identity['lesion']}_{augmentation}" if augmentation else identity["lesion"]
        image_file, label_file = f"images/{name}.png", f"labels/{name}.png"
        _write_png(_to_png_array(crop_v), out_dir / image_file)
        _write_png(label_v.astype(np.uint8) * 255, out_dir / label_file)
        record = LesionRecord(image_file, label_file, box_v, **identity)
        entries.append({**asdict(record), "box": [int(v) for v in box_v], "augmentation": augmentation or "none"})
    return entries


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

