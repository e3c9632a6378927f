"""The evaluation report of a trained model on one split of a datalist: per-lesion CSV, summary with
bootstrap confidence intervals, ROC and best/median/worst figures, and a short summary.md.

``configs/evaluate.yaml`` attaches :class:`EvaluationReport` to the validation evaluator of
``configs/train.yaml``, and ``connected-unets evaluate`` runs that same config, so both front doors
write the same report. Metrics are computed at the ROI level, as in training's validation: the
lesion box plus the paper's context margin, resized to 256 x 256, prediction = sigmoid >= threshold
reduced to its largest component, against the resized (nearest) reference mask.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.transforms import Activationsd, Compose, CopyItemsd

from .io import atomic_output
from .metrics import dice, final_segmentation_accuracy, iou, iou90, pixel_roc_auc

logger = logging.getLogger(__name__)

__all__ = [
    "CASES_CSV",
    "CASE_COLUMNS",
    "CaseResult",
    "bootstrap_ci",
    "check_inputs",
    "evaluation_workflow",
    "load_cases",
    "pick_cases",
    "read_detections",
    "run_evaluation",
    "summarize_cases",
    "with_probabilities",
    "write_cases_csv",
    "write_report",
    "write_summary",
]

CASES_CSV = "cases.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
ROC_PNG = "roc.png"
MONTAGE_PNG = "montage.png"
CASE_COLUMNS = ("image", "lesion", "patient", "pathology", "box", "roi_box", "dice", "iou", "auc")
IOU90_THRESHOLD = 0.9


# --------------------------------------------------------------------------- inputs


def _lesion_name(entry: Mapping[str, Any]) -> str:
    """A datalist entry's lesion id; the image's stem for datalists without one."""
    return str(entry.get("lesion") or Path(str(entry.get("image", ""))).stem)


def check_inputs(
    datalist_file: str | Path,
    split: str,
    model_file: str | Path | None = None,
    detections_file: str | Path | None = None,
) -> int:
    """Fail early, with one line naming the file, on a missing datalist, an unknown or empty split,
    missing weights or a detections file that misses lesions of the split, instead of deep inside
    the data loader or after the whole inference; return the number of cases."""
    datalist_file = Path(datalist_file)
    if not datalist_file.is_file():
        raise FileNotFoundError(f"{datalist_file}: datalist not found")
    try:
        datalist = json.loads(datalist_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{datalist_file}: not a JSON datalist ({err})") from err
    splits = [k for k, v in datalist.items() if isinstance(v, list) and k != "skipped"] if isinstance(datalist, dict) else []
    if split not in splits:
        raise ValueError(f"{datalist_file}: no split '{split}' (splits: {', '.join(splits) or 'none'})")
    if not datalist[split]:
        raise ValueError(f"{datalist_file}: split '{split}' is empty")
    if model_file is not None and not Path(model_file).is_file():
        raise FileNotFoundError(f"{model_file}: weights not found (train them with scripts/train.sh, see README)")
    if detections_file is not None:
        read_detections(detections_file, [_lesion_name(entry) for entry in datalist[split]])
    return len(datalist[split])


def read_detections(path: str | Path, lesions: Sequence[str], threshold: float = 0.5) -> dict[str, bool]:
    """Detection outcome per lesion from a CSV with columns ``lesion`` and ``detected``.

    ``detected`` is a flag (1/0, true/false, yes/no) or a detector probability (detected when
    ``>= threshold``), so both a detector's hit list and its scores can be given. Every lesion of
    the split must have a row (a missing one is an error, not a silent miss); extra rows are
    ignored, so one file can serve several splits.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detections file not found")
    words = {"true": 1.0, "yes": 1.0, "false": 0.0, "no": 0.0}
    outcome: dict[str, bool] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"lesion", "detected"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: needs the columns 'lesion' and 'detected', has {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            text = (row["detected"] or "").strip().lower()
            try:
                value = words[text] if text in words else float(text)
            except ValueError:
                raise ValueError(f"{path}, line {line}: detected '{row['detected']}' is not a flag or a probability") from None
            if math.isnan(value):
                raise ValueError(f"{path}, line {line}: detected is NaN")
            outcome[(row["lesion"] or "").strip()] = value >= threshold
    missing = [lesion for lesion in lesions if lesion not in outcome]
    if missing:
        raise ValueError(f"{path}: no detection for {len(missing)} lesion(s) of the split, e.g. {missing[0]}")
    return {lesion: outcome[lesion] for lesion in lesions}


def with_probabilities(postprocessing: Compose, key: str = "pred", prob_key: str = "prob") -> Compose:
    """The config's post-processing with a copy of ``key`` kept as ``prob_key`` right after the
    sigmoid, so the report gets the probability maps (AUC, ROC) from the very pipeline that makes
    the masks instead of a re-implementation of it."""
    transforms = list(postprocessing.transforms)
    positions = [i for i, t in enumerate(transforms) if isinstance(t, Activationsd)]
    if not positions:
        raise ValueError("the post-processing has no Activationsd step to take probabilities after")
    at = positions[0] + 1
    return Compose([*transforms[:at], CopyItemsd(keys=key, names=prob_key), *transforms[at:]])


# --------------------------------------------------------------------------- per case


@dataclass
class CaseResult:
    """One lesion's scores and the 256 x 256 arrays behind them (kept for the ROC and the figures)."""

    image: str
    lesion: str
    patient: str
    pathology: str
    box: tuple[int, ...]
    roi_box: tuple[int, ...]
    dice: float
    iou: float
    auc: float
    roi: np.ndarray = field(repr=False)  # uint8 network input (channel 0, 0..255)
    label: np.ndarray = field(repr=False)  # bool reference mask
    pred: np.ndarray = field(repr=False)  # bool post-processed prediction
    prob: np.ndarray = field(repr=False)  # float16 probabilities (float16 halves the memory per case)

    def row(self) -> dict[str, Any]:
        """The CSV row (boxes as 'x0 y0 x1 y1', scores to 6 decimals, NaN AUC as empty)."""
        return {
            "image": self.image,
            "lesion": self.lesion,
            "patient": self.patient,
            "pathology": self.pathology,
            "box": " ".join(str(v) for v in self.box),
            "roi_box": " ".join(str(v) for v in self.roi_box),
            "dice": f"{self.dice:.6f}",
            "iou": f"{self.iou:.6f}",
            "auc": "" if math.isnan(self.auc) else f"{self.auc:.6f}",
        }


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(int(torch.as_tensor(v).item()) for v in value)
    return tuple(int(v) for v in np.asarray(torch.as_tensor(value).cpu()).ravel())


def _plane(value: Any) -> np.ndarray:
    """Channel 0 of a (C, H, W) tensor as a float32 numpy array."""
    return np.asarray(torch.as_tensor(value).detach().float().cpu())[0]


def case_result(item: Mapping[str, Any], dataset_dir: str | Path | None = None) -> CaseResult:
    """Score one decollated evaluator item (the batch's metadata merged with the post-processed
    ``pred``, the copied ``prob``, ``label`` and ``image``)."""
    prob = _plane(item["prob"])
    label = _plane(item["label"]) > 0.5
    pred = _plane(item["pred"]) > 0.5
    image_path = str(item.get("image_path", ""))
    if dataset_dir is not None and image_path:
        image_path = os.path.relpath(os.path.abspath(image_path), os.path.abspath(dataset_dir))
    roi = np.clip(_plane(item["image"]), 0.0, 1.0)
    return CaseResult(
        image=image_path,
        lesion=_lesion_name({"lesion": item.get("lesion"), "image": image_path}),
        patient=str(item.get("patient", "")),
        pathology=str(item.get("pathology", "")),
        box=_ints(item.get("box")),
        roi_box=_ints(item.get("roi_box")),
        dice=dice(pred, label),
        iou=iou(pred, label),
        auc=pixel_roc_auc(prob, label),
        roi=(roi * 255 + 0.5).astype(np.uint8),
        label=label,
        pred=pred,
        prob=prob.astype(np.float16),
    )


# --------------------------------------------------------------------------- statistics


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] = lambda s: s.mean(axis=1),
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over cases, reproducible by ``seed``.

    ``values`` has one row per case (shape (n,) or (n, k) for statistics of several columns, such
    as the final segmentation accuracy); ``statistic`` maps resamples of shape (B, n[, k]) to B
    values. Resamples where the statistic is NaN (e.g. the IoU90 mean when no resampled case
    reaches 0.9) are left out. One case gives a zero-width interval; no case, NaNs.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    chunk = max(1, 4_000_000 // max(n * (values.size // n), 1))  # bound memory for large test sets
    stats = []
    for start in range(0, n_resamples, chunk):
        indices = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        stats.append(np.asarray(statistic(values[indices]), dtype=np.float64))
    stats = np.concatenate(stats)
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _iou90_fraction(samples: np.ndarray) -> np.ndarray:
    return (samples >= IOU90_THRESHOLD).mean(axis=1)


def _iou90_mean(samples: np.ndarray) -> np.ndarray:
    good = samples >= IOU90_THRESHOLD
    counts = good.sum(axis=1)
    sums = np.where(good, samples, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _final_accuracy(samples: np.ndarray) -> np.ndarray:
    """Detection rate x IoU90 mean of resamples of (detected, iou) rows."""
    return samples[..., 0].mean(axis=1) * _iou90_mean(samples[..., 1])


def _stat_block(values: np.ndarray, n_resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return {"mean": None, "median": None, "ci": [None, None], "n": 0}
    low, high = bootstrap_ci(finite, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"mean": float(finite.mean()), "median": float(np.median(finite)), "ci": [low, high], "n": int(finite.size)}


def _value_block(value: float, ci: tuple[float, float]) -> dict[str, Any]:
    return {"value": _none_if_nan(value), "ci": [_none_if_nan(ci[0]), _none_if_nan(ci[1])]}


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def pooled_roc(cases: Sequence[CaseResult]) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve (fpr, tpr) and its AUC over the pixels of all cases pooled together.

    Exact for the stored float16 probabilities: for non-negative float16 values the bit pattern
    orders like the value, so per-value pixel counts come from one ``bincount`` (no sort of
    millions of pixels). Ties count half, as in the usual trapezoidal AUC.
    """
    positives = np.zeros(1 << 16, dtype=np.int64)
    negatives = np.zeros(1 << 16, dtype=np.int64)
    for case in cases:
        bits = np.clip(case.prob, 0, None).astype(np.float16).view(np.uint16).ravel()
        target = case.label.ravel()
        positives += np.bincount(bits[target], minlength=1 << 16)
        negatives += np.bincount(bits[~target], minlength=1 << 16)
    present = (positives + negatives) > 0
    tp = np.cumsum(positives[present][::-1])  # thresholds from the highest probability down
    fp = np.cumsum(negatives[present][::-1])
    if tp.size == 0 or tp[-1] == 0 or fp[-1] == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def pick_cases(cases: Sequence[CaseResult]) -> dict[str, int]:
    """Indices of the best, median and worst case by Dice (ties: first in datalist order); the
    median is the lower middle of the sorted Dice. Fewer than three cases share indices."""
    if not cases:
        raise ValueError("no cases to pick from")
    order = sorted(range(len(cases)), key=lambda i: (-cases[i].dice, i))
    return {"best": order[0], "median": order[(len(order) - 1) // 2], "worst": order[-1]}


def whole_roi_reference(cases: Sequence[CaseResult]) -> dict[str, float]:
    """Mean Dice and IoU of a mask that fills every scored ROI: what a model that has learnt nothing
    but "the box is the mass" scores, so the report's numbers can be read against it (on the
    shipped validation ROIs it is about 0.57, far from zero)."""
    return {
        "dice": float(np.mean([dice(np.ones_like(c.label), c.label) for c in cases])),
        "iou": float(np.mean([iou(np.ones_like(c.label), c.label) for c in cases])),
    }


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
    NaN (undefined) values are stored as None so the JSON stays valid."""
    if not cases:
        raise ValueError("no cases to summarize")
    ious = np.array([c.iou for c in cases])
    summary: dict[str, Any] = {"n_cases": len(cases)}
    for name in ("dice", "iou", "auc"):
        summary[name] = _stat_block(np.array([getattr(c, name) for c in cases]), n_resamples, confidence, seed)
    iou90_mean, iou90_fraction = iou90(ious, IOU90_THRESHOLD)
    summary["iou90_fraction"] = _value_block(
        iou90_fraction, bootstrap_ci(ious, _iou90_fraction, n_resamples, confidence, seed)
    )
    summary["iou90_mean"] = _value_block(iou90_mean, bootstrap_ci(ious, _iou90_mean, n_resamples, confidence, seed))
    summary["pooled_auc"] = _none_if_nan(pooled_roc(cases)[2])
    summary["whole_roi"] = whole_roi_reference(cases)
    picks = pick_cases(cases)
    summary["cases"] = {which: {"lesion": cases[i].lesion, "dice": cases[i].dice} for which, i in picks.items()}
    summary["detection"] = None
    if detected is not None:
        flags = np.array([float(detected[c.lesion]) for c in cases])
        rate = float(flags.mean())
        accuracy = final_segmentation_accuracy(rate, iou90_mean)
        joint = np.stack([flags, ious], axis=1)
        summary["detection"] = {
            "rate": _value_block(rate, bootstrap_ci(flags, n_resamples=n_resamples, confidence=confidence, seed=seed)),
            "final_segmentation_accuracy": _value_block(
                accuracy, bootstrap_ci(joint, _final_accuracy, n_resamples, confidence, seed)
            ),
        }
    summary["bootstrap"] = {"resamples": n_resamples, "confidence": confidence, "seed": seed, "unit": "lesion"}
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


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(block: Mapping[str, Any]) -> str:
    low, high = block["ci"]
    return "n/a" if low is None else f"[{low:.3f}, {high:.3f}]"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """A page a person reads first: what was evaluated, the numbers, the figures, the files."""
    info = summary.get("info", {})
    boot = summary["bootstrap"]
    level = int(round(boot["confidence"] * 100))
    title = f"# Evaluation of {info.get('network', 'the model')} on the '{info.get('split', '?')}' split"
    lines = [
        title,
        "",
        f"{summary['n_cases']} lesions from `{info.get('datalist', '?')}`, weights `{info.get('weights', '?')}`.",
        "Metrics per lesion at the ROI level, as in training's validation: the lesion box plus the paper's "
        f"context margin (extra box margin {info.get('box_extra_margin', 0)} per side), resized to "
        f"{' x '.join(str(s) for s in info.get('roi_size', [256, 256]))}; prediction = sigmoid >= "
        f"{info.get('threshold', 0.5)}, largest connected component.",
        "",
        f"| metric | mean | median | {level} % CI of the mean |",
        "|---|---|---|---|",
    ]
    for name, label in (("dice", "Dice"), ("iou", "IoU"), ("auc", "pixel ROC AUC per lesion")):
        block = summary[name]
        extra = f" (n = {block['n']})" if name == "auc" and block["n"] != summary["n_cases"] else ""
        lines.append(f"| {label}{extra} | {_fmt(block['mean'])} | {_fmt(block['median'])} | {_ci(block)} |")
    lines.append(f"| IoU90: share of lesions with IoU >= 0.9 | {_fmt(summary['iou90_fraction']['value'])} | | {_ci(summary['iou90_fraction'])} |")
    lines.append(f"| IoU90: mean IoU of those lesions | {_fmt(summary['iou90_mean']['value'])} | | {_ci(summary['iou90_mean'])} |")
    lines.append(f"| pixel ROC AUC, all pixels pooled | {_fmt(summary['pooled_auc'])} | | |")
    if "whole_roi" in summary:
        whole = summary["whole_roi"]
        lines.append(f"| reference: Dice / IoU of a mask filling the whole ROI | {_fmt(whole['dice'])} / {_fmt(whole['iou'])} | | |")
    detection = summary.get("detection")
    if detection is not None:
        lines.append(f"| detection rate | {_fmt(detection['rate']['value'])} | | {_ci(detection['rate'])} |")
        fsa = detection["final_segmentation_accuracy"]
        lines.append(f"| final segmentation accuracy (detection rate x IoU90 mean) | {_fmt(fsa['value'])} | | {_ci(fsa)} |")
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
        f"x0 y0 x1 y1, the scored crop as roi_box), `{SUMMARY_JSON}` (these numbers), `{ROC_PNG}`, `{MONTAGE_PNG}`.",
        f"Confidence intervals: percentile bootstrap over lesions ({boot['resamples']} resamples, seed "
        f"{boot['seed']}); lesions of one patient are not independent, so they are somewhat optimistic. "
        "AUC is undefined (left out) for a crop with one class only.",
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
    from .report_figures import plot_montage, plot_roc  # matplotlib only when a report is written

    output_dir = Path(output_dir)
    summary = {"info": dict(info or {}), **summarize_cases(cases, detected, n_resamples, confidence, seed)}
    write_cases_csv(cases, output_dir / CASES_CSV, detected)
    fpr, tpr, auc = pooled_roc(cases)
    plot_roc(fpr, tpr, auc, output_dir / ROC_PNG, title=f"{summary['info'].get('network', '')} pooled pixel ROC".strip())
    plot_montage(cases, pick_cases(cases), output_dir / MONTAGE_PNG)
    write_summary(summary, output_dir)
    logger.info(
        "%d lesions: Dice mean %.4f, IoU mean %.4f, IoU >= 0.9 in %.3f; report written to %s",
        len(cases), summary["dice"]["mean"], summary["iou"]["mean"], summary["iou90_fraction"]["value"], output_dir,
    )  # fmt: skip
    return summary


# --------------------------------------------------------------------------- the handler


# --------------------------------------------------------------------------- the bundle workflow


def evaluation_workflow(
    output_dir: str | Path,
    dataset_dir: str | Path | None = None,
    split: str = "validation",
    network: str = "connected_resunets",
    weights: str | Path | None = None,
    box_extra_margin: float | None = None,
    detections_file: str | Path | None = None,
    device: str | torch.device = "auto",
    threshold: float | None = None,
    bundle_dir: str | Path | None = None,
    logging_file: str | bool = False,
) -> Any:
    """``configs/common.yaml`` + ``train.yaml`` + ``evaluate.yaml`` of the bundle as the MONAI
    ``ConfigWorkflow`` that ``python -m monai.bundle run`` builds, with these overrides, initialized.

    The inputs are checked first (:func:`check_inputs`), so a missing datalist, unknown or empty
    split or missing weights fail with one line instead of a config-resolution traceback. Run it
    with :func:`run_evaluation`.
    """
    from .bundle import open_workflow, resolve_device

    override: dict[str, Any] = {
        "output_dir": str(output_dir),
        "evaluate_split": split,
        "network_name": network,
        "device": resolve_device(device),
        "detections_file": None if detections_file is None else str(detections_file),
    }
    optional = {"dataset_dir": dataset_dir, "model_file": weights, "box_extra_margin": box_extra_margin, "threshold": threshold}
    override.update({k: (str(v) if isinstance(v, Path) else v) for k, v in optional.items() if v is not None})
    workflow = open_workflow(["train.yaml", "evaluate.yaml"], bundle_dir, override, logging_file)
    parser = workflow.parser
    check_inputs(parser.get_parsed_content("datalist_file"), split, parser.get_parsed_content("model_file"), detections_file)
    workflow.initialize()
    return workflow


def run_evaluation(workflow: Any, on_cases: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run an :func:`evaluation_workflow` (its ``run`` and ``finalize`` expressions, as
    ``monai.bundle run`` does); ``on_cases(n)`` is called as each batch of n cases is scored (a
    progress bar). Returns the report's summary."""
    if on_cases is not None:
        evaluator = workflow.parser.get_parsed_content("validate#evaluator")
        evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: on_cases(len(engine.state.output)))
    workflow.run()
    workflow.finalize()
    summary = workflow.parser.get_parsed_content("report").summary
    if summary is None:
        raise RuntimeError("the evaluation finished without a report")
    return summary


def load_cases(workflow: Any) -> int:
    """Build the workflow's evaluator, which loads and caches the cases, and return their number
    (the total of a progress bar that then counts only the scoring)."""
    workflow.parser.get_parsed_content("validate#evaluator")
    return len(workflow.parser.get_parsed_content("validate#dataset"))
