"""What an infer request may say, checked before any work: one readable message per mistake.

A malformed request is refused before an image is read or the network runs, with the HTTP status
the server answers (422 for a request that cannot be served as written, 404 for something that is
not there). :class:`RequestError` is a FastAPI ``HTTPException``, so MONAI Label's own endpoints
(``PUT /datastore/label`` saving a label through this app's datastore) answer it the same way:
the status and ``{"detail": "<one line>"}``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import HTTPException

#: the most ROI boxes one request may carry (each is one crop through the network)
MAX_BOXES = 64
#: label image formats a client may ask for with params ``result_extension``
RESULT_EXTENSIONS = (".nii.gz", ".nii", ".png", ".nrrd", ".seg.nrrd")
_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
BOXES_HELP = 'params={"boxes": [[x0, y0, x1, y1], ...]} in pixels of the stored image (x = column, y = row, end exclusive)'


class RequestError(HTTPException):
    """A request the server refuses: ``status`` is the HTTP status, ``message`` says why in one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


def parse_params(text: str | None) -> dict[str, Any]:
    """The infer request's ``params`` form field as a dict; RequestError(422) unless it is a JSON object."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        where = f" ({err.msg} at column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        raise RequestError(422, f"params is not valid JSON{where}; send {BOXES_HELP}") from None
    if not isinstance(value, dict):
        raise RequestError(422, f"params must be a JSON object, got a {type(value).__name__}; send {BOXES_HELP}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_or_float(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _boxes_from_text(text: str) -> Any:
    """Boxes typed as text (a client's option field): JSON, or 'x0 y0 x1 y1; x0 y0 x1 y1' (commas allowed)."""
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise RequestError(422, f"boxes {text!r} is not a JSON list; send {BOXES_HELP}") from None
    boxes = []
    for part in re.split(r"[;\n]", text):
        if part.strip():
            try:
                boxes.append([_int_or_float(v) for v in re.split(r"[,\s]+", part.strip())])
            except ValueError:
                raise RequestError(422, f"boxes {text!r}: write numbers, e.g. '1200 800 1500 1100; 300 400 420 520'") from None
    return boxes


def parse_boxes(value: Any) -> list[list[int | float]]:
    """The ROI boxes of a request, each 4 finite numbers; RequestError(422) when they are malformed.
    No boxes (absent, ``[]``, ``""``) is an empty list: the infer task then finds the masses with
    the bundle's detector.

    A list of boxes, one un-nested box, or text (see :func:`_boxes_from_text`). Where a box lies on
    the image is checked by the Segmenter once the image is read (a box partly outside is clipped
    as every front door does; one wholly outside or empty is refused)."""
    if isinstance(value, str):
        value = _boxes_from_text(value) if value.strip() else None
    if value is None or (isinstance(value, list) and not value):
        return []
    if not isinstance(value, list):
        raise RequestError(422, f"boxes must be a list of [x0, y0, x1, y1], got a {type(value).__name__}; send {BOXES_HELP}")
    if all(_number(v) for v in value):
        value = [value]  # one box, not nested
    if len(value) > MAX_BOXES:
        raise RequestError(422, f"{len(value)} boxes: at most {MAX_BOXES} per request")
    boxes = []
    for index, box in enumerate(value, start=1):
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
            raise RequestError(422, f"box {index} is {json.dumps(box)}: a box is 4 numbers [x0, y0, x1, y1]")
        if not all(math.isfinite(v) for v in box):
            raise RequestError(422, f"box {index} is {box}: its numbers must be finite")
        boxes.append(list(box))
    return boxes


def result_extension(value: Any, image_path: str) -> str:
    """The label file format: ``value`` when given (one of :data:`RESULT_EXTENSIONS`), else PNG for a
    PNG/JPEG/TIFF/BMP image and NIfTI (.nii.gz, with the pixel spacing) for DICOM, NIfTI and NRRD."""
    if value is None or value == "":
        return ".png" if str(image_path).lower().endswith(_PIL_SUFFIXES) else ".nii.gz"
    text = str(value).lower()
    text = text if text.startswith(".") else f".{text}"
    if text not in RESULT_EXTENSIONS:
        raise RequestError(422, f"result_extension {value!r}: choose one of {', '.join(RESULT_EXTENSIONS)}")
    return text


def flag(value: Any, name: str) -> bool:
    """A yes/no request field (true/false, 1/0, "true"/"false")."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    raise RequestError(422, f"{name} must be true or false, got {value!r}")
