"""Tables that scripts write into the project's markdown documents, between named markers.

A generated table lives between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` so the prose
around it is written by people and the figures inside it by the script that measured them
(scripts/results_table.py, scripts/training_ledger.py, scripts/synthesis_comparison.py).
"""

from __future__ import annotations

from pathlib import Path

from .io import atomic_output

__all__ = ["block_markers", "ci_cell", "marked_block", "points_range", "write_marked_block"]


def block_markers(block: str) -> tuple[str, str]:
    """The begin and end comments that enclose block ``block`` in a markdown document."""
    return f"<!-- {block}:begin -->", f"<!-- {block}:end -->"


def marked_block(document: str, block: str) -> str | None:
    """The text between the markers of ``block`` in ``document``; None when they are missing."""
    begin, end = block_markers(block)
    if begin not in document or end not in document.split(begin, 1)[1]:
        return None
    return document.split(begin, 1)[1].split(end, 1)[0]


def write_marked_block(path: str | Path, block: str, text: str) -> None:
    """Replace what lies between the markers of ``block`` in markdown file ``path`` by ``text``
    (atomically); a one-line SystemExit when the file or its markers are missing."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    document = path.read_text()
    begin, end = block_markers(block)
    if marked_block(document, block) is None:
        raise SystemExit(f"{path}: no {begin} ... {end} markers to write between")
    head, rest = document.split(begin, 1)
    with atomic_output(path) as tmp:
        tmp.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")


def ci_cell(block: dict) -> str:
    """A summary.json block's 95 % interval as a table cell, ``0.825–0.858`` (``–`` when undefined)."""
    low, high = block["ci"]
    return "–" if low is None else f"{low:.3f}–{high:.3f}"


def points_range(interval: tuple[float, float]) -> str:
    """An interval of Dice differences in points, ``+1.2 to +2.5``."""
    return f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f}"
