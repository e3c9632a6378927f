"""The report of an evaluation: the per-lesion CSV, the summary (JSON for scripts, markdown for
people) and the figures, written atomically into one folder."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_output
from ..metrics import final_segmentation_accuracy, iou90
from .cases import CASE_COLUMNS, CaseResult
from .statistics import (
    IOU90_THRESHOLD,
    Interval,
    final_accuracy_intervals,
    iou90_intervals,
    mean_intervals,
    paired_bootstrap_ci,
    pooled_roc,
    whole_roi_reference,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CASES_CSV",
    "paired_dice_gain_ci",
    "pick_cases",
    "summarize_cases",
    "summary_markdown",
    "write_cases_csv",
    "write_report",
    "write_summary",
]

CASES_CSV = "cases.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
ROC_PNG = "roc.png"
MONTAGE_PNG = "montage.png"


def pick_cases(cases: Sequence[CaseResult]) -> dict[str, int]:
    """Indices of the best, median and worst case by Dice (ties: first in datalist order); the
    median is the lower middle of the sorted Dice. Fewer than three cases share indices."""
    if not cases:
        raise ValueError("no cases to pick from")
    order = sorted(range(len(cases)), key=lambda i: (-cases[i].dice, i))
    return {"best": order[0], "median": order[(len(order) - 1) // 2], "worst": order[-1]}


def _patient_ids(cases: Sequence[CaseResult]) -> list[str | int]:
    """The resampling unit of each case: its patient, or the case itself when the datalist has no
    patient id (lesions without one must not all become one patient)."""
    return [case.patient or index for index, case in enumerate(cases)]


# --------------------------------------------------------------------------- the numbers


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _interval(ci: Interval) -> list[float | None]:
    return [_none_if_nan(ci[0]), _none_if_nan(ci[1])]


def _stat_block(values: np.ndarray, patients: Sequence[str | int], boot: Mapping[str, Any]) -> dict[str, Any]:
    finite = ~np.isnan(values)
    if not finite.any():
        return {"mean": None, "median": None, "ci": [None, None], "n": 0, "ci_patient": [None, None]}
    kept = values[finite]
    lesion_ci, patient_ci = mean_intervals(kept, [p for p, keep in zip(patients, finite) if keep], **boot)
    return {
        "mean": float(kept.mean()),
        "median": float(np.median(kept)),
        "ci": _interval(lesion_ci),
        "n": int(kept.size),
        "ci_patient": _interval(patient_ci),
    }


def _value_block(value: float, cis: tuple[Interval, Interval]) -> dict[str, Any]:
    return {"value": _none_if_nan(value), "ci": _interval(cis[0]), "ci_patient": _interval(cis[1])}


def summarize_cases(
    cases: Sequence[CaseResult],
    detected: Mapping[str, bool] | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The report's numbers: Dice, IoU and per-case pixel AUC (mean, median, bootstrap CI of the
    mean), IoU90 share and mean with CIs, pooled pixel AUC, best/median/worst cases and, given
    detection outcomes per lesion, the detection rate and the paper's final segmentation accuracy.

    Every interval comes twice: ``ci`` resamples lesions, ``ci_patient`` resamples patients with
    all their lesions (lesions of one patient are not independent). NaN (undefined) values are
    stored as None so the JSON stays valid."""
    if not cases:
        raise ValueError("no cases to summarize")
    boot = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    patients = _patient_ids(cases)
    ious = np.array([c.iou for c in cases])
    summary: dict[str, Any] = {"n_cases": len(cases), "n_patients": len(set(patients))}
    for name in ("dice", "iou", "auc"):
        summary[name] = _stat_block(np.array([getattr(c, name) for c in cases]), patients, boot)
    iou90_mean, iou90_fraction = iou90(ious, IOU90_THRESHOLD)
    iou90_cis = iou90_intervals(ious, patients, **boot)
    summary["iou90_fraction"] = _value_block(iou90_fraction, iou90_cis["fraction"])
    summary["iou90_mean"] = _value_block(iou90_mean, iou90_cis["mean"])
    summary["pooled_auc"] = _none_if_nan(pooled_roc(cases)[2])
    summary["whole_roi"] = whole_roi_reference(cases)
    picks = pick_cases(cases)
    summary["cases"] = {which: {"lesion": cases[i].lesion, "dice": cases[i].dice} for which, i in picks.items()}
    summary["detection"] = None
    if detected is not None:
        flags = np.array([float(detected[c.lesion]) for c in cases])
        rate = float(flags.mean())
        summary["detection"] = {
            "rate": _value_block(rate, mean_intervals(flags, patients, **boot)),
            "final_segmentation_accuracy": _value_block(
                final_segmentation_accuracy(rate, iou90_mean), final_accuracy_intervals(flags, ious, patients, **boot)
            ),
        }
    summary["bootstrap"] = {
        "resamples": n_resamples, "confidence": confidence, "seed": seed, "unit": "lesion",
        "units": {"ci": "lesion", "ci_patient": "patient"},
    }  # fmt: skip
    return summary


# --------------------------------------------------------------------------- writing


def write_cases_csv(cases: Sequence[CaseResult], path: str | Path, detected: Mapping[str, bool] | None = None) -> Path:
    """One row per lesion in evaluation order (the datalist's), written atomically."""
    columns = list(CASE_COLUMNS) + (["detected"] if detected is not None else [])
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for case in cases:
            row = case.row()
            if detected is not None:
                row["detected"] = int(detected[case.lesion])
            writer.writerow(row)
    return Path(path)


def paired_dice_gain_ci(cases: str | Path, base_cases: str | Path, by_patient: bool = False) -> Interval | None:
    """95 % paired bootstrap CI of the mean per-lesion Dice difference (model minus base) from two
    reports' cases.csv, lesions in sorted order; ``by_patient`` resamples patients with all their
    lesions instead of lesions (:func:`.statistics.paired_bootstrap_ci`). None when a file is
    missing or the reports scored different lesions."""
    cases, base_cases = Path(cases), Path(base_cases)
    if not (cases.is_file() and base_cases.is_file()):
        return None
    ours, theirs = (
        {row["lesion"]: (row["patient"], float(row["dice"])) for row in csv.DictReader(path.open(newline=""))}
        for path in (cases, base_cases)
    )
    if set(ours) != set(theirs):
        return None
    lesions = sorted(ours)
    patients = [ours[lesion][0] for lesion in lesions] if by_patient else None
    return paired_bootstrap_ci([ours[lesion][1] for lesion in lesions], [theirs[lesion][1] for lesion in lesions], patients)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(block: Mapping[str, Any], key: str = "ci") -> str:
    low, high = block.get(key, [None, None])
    return "n/a" if low is None else f"[{low:.3f}, {high:.3f}]"


def _cis(block: Mapping[str, Any]) -> str:
    """The two interval cells of a table row: lesions resampled, patients resampled."""
    return f"{_ci(block)} | {_ci(block, 'ci_patient')}"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """A page a person reads first: what was evaluated, the numbers, the figures, the files."""
    info = summary.get("info", {})
    boot = summary["bootstrap"]
    level = int(round(boot["confidence"] * 100))
    n_patients = summary.get("n_patients", "?")
    title = f"# Evaluation of {info.get('network', 'the model')} on the '{info.get('split', '?')}' split"
    lines = [
        title,
        "",
        f"{summary['n_cases']} lesions of {n_patients} patients from `{info.get('datalist', '?')}`, "
        f"weights `{info.get('weights', '?')}`.",
        "Metrics per lesion at the ROI level, as in training's validation: the lesion box plus the paper's "
        f"context margin (extra box margin {info.get('box_extra_margin', 0)} per side), resized to "
        f"{' x '.join(str(s) for s in info.get('roi_size', [256, 256]))}; prediction = sigmoid >= "
        f"{info.get('threshold', 0.5)}, largest connected component.",
        "",
        f"| metric | mean | median | {level} % CI, lesions resampled | {level} % CI, patients resampled |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("dice", "Dice"), ("iou", "IoU"), ("auc", "pixel ROC AUC per lesion")):
        block = summary[name]
        extra = f" (n = {block['n']})" if name == "auc" and block["n"] != summary["n_cases"] else ""
        lines.append(f"| {label}{extra} | {_fmt(block['mean'])} | {_fmt(block['median'])} | {_cis(block)} |")
    lines.append(f"| IoU90: share of lesions with IoU >= 0.9 | {_fmt(summary['iou90_fraction']['value'])} | | {_cis(summary['iou90_fraction'])} |")
    lines.append(f"| IoU90: mean IoU of those lesions | {_fmt(summary['iou90_mean']['value'])} | | {_cis(summary['iou90_mean'])} |")
    lines.append(f"| pixel ROC AUC, all pixels pooled | {_fmt(summary['pooled_auc'])} | | | |")
    if "whole_roi" in summary:
        whole = summary["whole_roi"]
        lines.append(f"| reference: Dice / IoU of a mask filling the whole ROI | {_fmt(whole['dice'])} / {_fmt(whole['iou'])} | | | |")
    detection = summary.get("detection")
    if detection is not None:
        lines.append(f"| detection rate | {_fmt(detection['rate']['value'])} | | {_cis(detection['rate'])} |")
        fsa = detection["final_segmentation_accuracy"]
        lines.append(f"| final segmentation accuracy (detection rate x IoU90 mean) | {_fmt(fsa['value'])} | | {_cis(fsa)} |")
    picks = summary["cases"]
    lines += [
        "",
        "Best, median and worst lesion by Dice: "
        + ", ".join(f"{which} `{picks[which]['lesion']}` ({picks[which]['dice']:.3f})" for which in ("best", "median", "worst"))
        + ".",
        "",
        f"![pooled pixel ROC]({ROC_PNG})",
        "",
        f"![best, median and worst lesion: reference green, prediction red]({MONTAGE_PNG})",
        "",
        f"Files: `{CASES_CSV}` (one row per lesion: Dice, IoU, AUC, boxes in pixels of the lesion image as "
        f"x0 y0 x1 y1, the scored crop as roi_box), `{SUMMARY_JSON}` (these numbers), `{ROC_PNG}`, `{MONTAGE_PNG}`, "
        "`run.json` (how the run was made: config, package versions, git commit, data checksums, seed).",
        f"Confidence intervals: percentile bootstrap ({boot['resamples']} resamples, seed {boot['seed']}). "
        "'Lesions resampled' (`ci` in the JSON) treats lesions as independent; 'patients resampled' "
        f"(`ci_patient`) draws the {n_patients} patients with all their lesions. Lesions of one patient "
        "(two views of one mass, several masses) are correlated, so the lesion intervals are optimistic: "
        "quote the patient ones. AUC is undefined (left out) for a crop with one class only.",
        "",
    ]
    return "\n".join(lines)


def write_summary(summary: Mapping[str, Any], output_dir: str | Path) -> tuple[Path, Path]:
    """``summary.json`` (machine-readable) and ``summary.md`` (for people), both atomically."""
    output_dir = Path(output_dir)
    json_path, md_path = output_dir / SUMMARY_JSON, output_dir / SUMMARY_MD
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    with atomic_output(md_path) as tmp:
        tmp.write_text(summary_markdown(summary))
    return json_path, md_path


def write_report(
    cases: Sequence[CaseResult],
    output_dir: str | Path,
    detected: Mapping[str, bool] | None = None,
    info: Mapping[str, Any] | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Write cases.csv, summary.json, summary.md, roc.png and montage.png into ``output_dir``;
    return the summary."""
    from .figures import Panel, plot_montage, plot_roc  # matplotlib's Agg backend only when a report is written

    output_dir = Path(output_dir)
    summary = {"info": dict(info or {}), **summarize_cases(cases, detected, n_resamples, confidence, seed)}
    write_cases_csv(cases, output_dir / CASES_CSV, detected)
    fpr, tpr, auc = pooled_roc(cases)
    plot_roc(fpr, tpr, auc, output_dir / ROC_PNG, title=f"{summary['info'].get('network', '')} pooled pixel ROC".strip())
    shown: dict[int, str] = {}
    for which, index in pick_cases(cases).items():  # fewer than three cases: show each case once
        shown.setdefault(index, which)
    panels = [
        Panel(f"{which}: {cases[i].lesion}\nDice {cases[i].dice:.3f}, IoU {cases[i].iou:.3f}", cases[i].roi, cases[i].label, cases[i].pred)
        for i, which in shown.items()
    ]  # fmt: skip
    plot_montage(panels, output_dir / MONTAGE_PNG)
    write_summary(summary, output_dir)
    logger.info(
        "%d lesions of %d patients: Dice mean %.4f, IoU mean %.4f, IoU >= 0.9 in %.3f; report written to %s",
        len(cases), summary["n_patients"], summary["dice"]["mean"], summary["iou"]["mean"],
        summary["iou90_fraction"]["value"], output_dir,
    )  # fmt: skip
    return summary
