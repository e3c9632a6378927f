"""Figures of the evaluation report: the pooled pixel ROC curve and a montage of picked lesions.

They take plain arrays and titles, not the evaluation's cases, so drawing knows nothing of scoring.
Drawn with matplotlib's Agg backend on a Figure object (no pyplot state, no display needed) and
saved atomically, so a report folder never holds a half-written picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..io import atomic_output

__all__ = ["Panel", "plot_froc", "plot_montage", "plot_roc"]

REFERENCE_COLOUR = "#3cdc3c"  # the same green/red as the demo's overlays
PREDICTION_COLOUR = "#ff3c3c"


class Panel(NamedTuple):
    """One montage panel: a grey image (0..255) with a reference and a predicted mask to outline."""

    title: str
    image: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray


def _save(figure: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(figure)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return Path(path)


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: str | Path, title: str = "pooled pixel ROC") -> Path:
    """The ROC curve of all pixels of all lesions pooled, with the chance diagonal and the AUC."""
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    label = "AUC n/a (one class only)" if np.isnan(auc) else f"AUC {auc:.3f}"
    axes.plot(fpr, tpr, color="tab:blue", lw=2, label=label)
    axes.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="chance")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.set_aspect("equal")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return _save(figure, path)


def plot_montage(panels: Sequence[Panel], path: str | Path) -> Path:
    """One column per panel: the image with the reference (green) and predicted (red) outlines."""
    figure = Figure(figsize=(3.6 * len(panels), 4.3), layout="constrained")
    for column, panel in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), column)
        axes.imshow(panel.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        for mask, colour in ((panel.reference, REFERENCE_COLOUR), (panel.prediction, PREDICTION_COLOUR)):
            if mask.any() and not mask.all():
                axes.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5)
        axes.set_title(panel.title, fontsize=9)
        axes.set_axis_off()
    outlines = [Line2D([], [], color=REFERENCE_COLOUR, label="reference"), Line2D([], [], color=PREDICTION_COLOUR, label="prediction")]
    figure.legend(handles=outlines, loc="outside lower center", ncol=2, frameon=False, fontsize=9)
    return _save(figure, path)


def plot_froc(
    fps_per_image: np.ndarray,
    sensitivity: np.ndarray,
    points: dict[float, float],
    path: str | Path,
    title: str = "FROC",
    second: tuple[np.ndarray, np.ndarray, str] | None = None,
) -> Path:
    """The FROC curve (sensitivity against false positives per image, a step curve), its reported
    points ``{fp rate: sensitivity}`` marked, optionally a ``second`` curve (x, y, label) dashed."""
    figure = Figure(figsize=(5.0, 4.0))
    axes = figure.add_subplot()
    limit = max(4.0, max(points) * 1.5) if points else 4.0
    axes.step(fps_per_image, sensitivity, where="post", color="tab:blue", lw=2, label="IoU >= 0.3")
    if second is not None:
        axes.step(second[0], second[1], where="post", color="tab:orange", lw=1.5, ls="--", label=second[2])
    for rate, value in points.items():
        axes.plot([rate], [value], "o", color="tab:blue")
        axes.annotate(f"{value:.2f}", (rate, value), textcoords="offset points", xytext=(4, -12), fontsize=8)
    axes.set(xlim=(0, limit), ylim=(0, 1.02), xlabel="false positives per image", ylabel="sensitivity (lesions found)", title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return _save(figure, path)
