"""The common records every dataset reader produces, and what ``prepare`` derives from them.

A reader turns one dataset's quirks (CBIS-DDSM CSV paths, INbreast XML contours, a folder of
masks) into :class:`ImageRecord`: one full image, its patient, the dataset's official split if it
has one, and its lesion outlines as :class:`Annotation` (a mask file or a polygon). Everything a
reader or ``prepare`` cannot use becomes a :class:`Skip` with the file and the reason, so nothing is
dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .regions import RegionRule

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Annotation:
    """One outline of an image: a full-size mask file or a polygon of (x, y) pixel vertices.

    ``components`` says how a mask file is read: None = the whole mask is one lesion (a CBIS-DDSM
    ROI mask), a :class:`RegionRule` = every component it accepts is a lesion of its own (a mask
    that outlines all findings of an image, as CDD-CESM's).
    """

    lesion: str
    pathology: str = ""
    mask: Path | None = None
    polygon: tuple[tuple[float, float], ...] = ()
    components: RegionRule | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One full image with its annotations, as every reader returns it."""

    image: Path
    patient: str
    annotations: tuple[Annotation, ...]
    split: str = ""  # the dataset's own split ("training", "test"), "" when it has none
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """Something left out, with the file it concerns, a one-line reason and a short kind for counting."""

    file: str
    reason: str
    kind: str


@dataclass
class ReadResult:
    """What a reader found: usable image records, what it had to leave out, and the folders it read
    (or searched) besides those of the records' files, where ``prepare`` must not write."""

    records: list[ImageRecord] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    folders: set[Path] = field(default_factory=set)


@dataclass(frozen=True)
class LesionRecord:
    """One lesion ROI as written by :mod:`connected_unets.data.prepare` (paths relative to the datalist)."""

    image: str
    label: str
    box: tuple[int, int, int, int]
    patient: str
    lesion: str
    pathology: str
    source: str


def safe_name(lesion: str) -> str:
    """The file-name form of a lesion id (crops are named by it): runs of other characters become ``_``."""
    return _UNSAFE.sub("_", lesion)
