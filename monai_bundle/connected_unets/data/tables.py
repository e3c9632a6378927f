"""Reading the CSV tables readers are given (a folder's manifest, CBIS-DDSM's description CSVs).

UTF-8 only (with or without a byte-order mark). Another encoding is a one-line error naming the file
and where the first bad byte is, not a guess: any byte string decodes as Latin-1, and Latin-1 and
cp1252 differ in exactly the accented letters of names, so a guess could silently rename files or
patients.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV file as dicts by header; a short row's missing cells are ``""``."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save it as UTF-8") from err
    try:
        return list(csv.DictReader(io.StringIO(text, newline=""), restval=""))
    except csv.Error as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from err
