"""Scoring one lesion, and the inputs of an evaluation checked before any inference runs.

A case is scored at the ROI level, as in training's validation: the 256 x 256 crop of the lesion
box plus the paper's context margin, prediction = sigmoid >= threshold reduced to its largest
component (the config's post-processing), against the resized (nearest) reference mask.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Activationsd, Compose, CopyItemsd

from ..metrics import dice, iou, pixel_roc_auc

__all__ = ["CASE_COLUMNS", "CaseResult", "case_result", "check_inputs", "read_detections", "with_probabilities"]

CASE_COLUMNS = ("image", "lesion", "patient", "pathology", "box", "roi_box", "dice", "iou", "auc")


def _lesion_name(entry: Mapping[str, Any]) -> str:
    """A datalist entry's lesion id; the image's stem for datalists without one."""
    return str(entry.get("lesion") or Path(str(entry.get("image", ""))).stem)


# --------------------------------------------------------------------------- inputs


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


# --------------------------------------------------------------------------- one case


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
