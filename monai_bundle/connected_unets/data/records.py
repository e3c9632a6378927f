"""The common record every dataset reader produces, and the lesion records derived from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ImageRecord:
    """One full image with its lesion mask: what the CBIS-DDSM, INbreast and folder readers return."""

    image: Path
    mask: Path
    patient: str
    pathology: str = ""
    extra: dict[str, str] = field(default_factory=dict)


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
