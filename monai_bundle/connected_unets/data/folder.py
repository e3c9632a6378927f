"""Reader for a folder of images and masks: paired by file name, or listed in a CSV manifest.

Three layouts, tried in this order:

1. ``manifest.csv`` (or ``--manifest``) with columns ``image``, ``mask``, ``patient`` and optionally
   ``pathology``: paths relative to the manifest's folder. Every connected component of a mask is one
   lesion.
2. The CDD-CESM manifest the shipped data comes with: columns ``file``, ``patient`` and optionally
   ``is_mass``, ``pathology``; images in ``images/``, masks in ``masks_bin/<stem>.png``. Its masks outline
   every finding, so only mass-like components are lesions (:class:`RegionRule`), and rows with
   ``is_mass`` = 0 are left out (counted as skipped).
3. No manifest: ``images/`` and ``masks/`` (or ``labels/``), paired by file stem; a mask may end in
   ``_mask``. Without patient ids every image is its own patient (logged: the split is then by image).

Lesion ids (and so the crops' file names) are ``<image stem>_lesion<n>``; images whose stems are
shared (``case1/image.jpg``, ``case2/image.jpg``) take their folders into the id
(``case1_image_lesion1``), so one image's crops never overwrite another's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from ..io import SUPPORTED_SUFFIXES
from .records import Annotation, ImageRecord, ReadResult, Skip, safe_name
from .regions import RegionRule
from .tables import read_csv_rows

logger = logging.getLogger(__name__)

# A clean lesion mask: every component counts, bar specks of a few pixels.
ALL_COMPONENTS = RegionRule(opening_radius=0, min_area=10, min_solidity=0.0, min_axis_ratio=0.0)


def read_folder(root: str | Path, manifest: str | Path | None = None, negatives: bool = False) -> ReadResult:
    """Records of a folder dataset in any of the three layouts above. With ``negatives`` the rows
    that a manifest marks ``is_mass = 0`` become records without annotations (images without a
    mass, for the detector's datalist, :mod:`connected_unets.data.detection`) instead of skips."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    path = Path(manifest) if manifest else root / "manifest.csv"
    if manifest and not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    if path.is_file():
        return _read_manifest(path, negatives)
    return _pair_by_name(root)


def _read_manifest(path: Path, negatives: bool = False) -> ReadResult:
    rows = read_csv_rows(path)
    columns = set(rows[0]) if rows else set()
    if {"image", "mask", "patient"} <= columns:
        entries = [(row["image"], row["mask"], row, ALL_COMPONENTS) for row in rows]
    elif {"file", "patient"} <= columns:
        entries = [(f"images/{row['file']}", f"masks_bin/{Path(row['file']).stem}.png", row, RegionRule()) for row in rows]
    else:
        raise ValueError(f"{path}: expected columns image, mask, patient (or file, patient); found {', '.join(sorted(columns)) or 'none'}")
    base = path.parent
    result = ReadResult(folders={base})
    lesions = _lesion_ids([image for image, *_ in entries])
    for (image, mask, row, rule), lesion in zip(entries, lesions):
        if row.get("is_mass", "1").strip() == "0" and negatives and (base / image).is_file():
            result.records.append(ImageRecord(image=base / image, patient=row["patient"].strip(), annotations=()))
            continue
        if row.get("is_mass", "1").strip() == "0":
            result.skipped.append(Skip(str(base / image), f"{base / image}: manifest marks no mass finding (is_mass = 0)", "not a mass"))
            continue
        _add(result, base / image, base / mask, lesion, row["patient"].strip(), row.get("pathology", "").strip(), rule)
    return result


def _pair_by_name(root: Path) -> ReadResult:
    images_dir = root / "images"
    masks_dir = next((root / name for name in ("masks", "labels") if (root / name).is_dir()), None)
    if not images_dir.is_dir() or masks_dir is None:
        raise FileNotFoundError(f"{root}: no manifest.csv, and no images/ with masks/ (or labels/) folder beside it")
    masks = {_mask_stem(path): path for path in _image_files(masks_dir)}
    logger.warning("%s: no manifest with patient ids; every image is its own patient, so the split is by image", root)
    result = ReadResult(folders={images_dir, masks_dir})
    images = _image_files(images_dir)
    for image, lesion in zip(images, _lesion_ids([image.relative_to(root).as_posix() for image in images])):
        stem = _stem(image)
        mask = masks.pop(stem, None)
        if mask is None:
            result.skipped.append(Skip(str(image), f"{image}: no mask named {stem}.* or {stem}_mask.* in {masks_dir}", "no mask for image"))
            continue
        _add(result, image, mask, lesion, stem, "", ALL_COMPONENTS)
    result.skipped.extend(Skip(str(m), f"{m}: mask without an image named {s}.* in {images_dir}", "mask without image") for s, m in masks.items())
    return result


def _lesion_ids(images: Sequence[str]) -> list[str]:
    """``<stem>_lesion`` for each image path (relative, as listed); the images whose stem, as a file name,
    another one shares take their folders too (``case1/image.jpg`` -> ``case1_image_lesion``)."""
    stems = [_stem(PurePosixPath(image)) for image in images]
    counts = Counter(safe_name(stem).casefold() for stem in stems)
    return [f"{_path_id(image) if counts[safe_name(stem).casefold()] > 1 else stem}_lesion" for image, stem in zip(images, stems)]


def _path_id(image: str) -> str:
    """``case1/image.jpg`` -> ``case1_image``: the listed path without its extension, ``..`` or root."""
    path = PurePosixPath(image)
    folders = [part for part in path.parent.parts if part not in ("/", ".", "..")]
    return "_".join([*folders, _stem(path)])


def _add(result: ReadResult, image: Path, mask: Path, lesion: str, patient: str, pathology: str, rule: RegionRule) -> None:
    for path, what in ((image, "image"), (mask, "mask")):
        if not path.is_file():
            result.skipped.append(Skip(str(path), f"{path}: {what} file not found", f"missing {what} file"))
            return
    annotation = Annotation(lesion=lesion, pathology=pathology, mask=mask, components=rule)
    result.records.append(ImageRecord(image=image, patient=patient, annotations=(annotation,)))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(SUPPORTED_SUFFIXES))


def _stem(path: PurePath) -> str:
    """File name without its (possibly double, as .nii.gz) image extension."""
    name = path.name
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _mask_stem(path: Path) -> str:
    stem = _stem(path)
    return stem[: -len("_mask")] if stem.endswith("_mask") else stem
