"""The evaluation report of a trained model on one split of a datalist: per-lesion CSV, summary with
bootstrap confidence intervals (resampling lesions and resampling patients), ROC and
best/median/worst figures, and a short summary.md.

``configs/evaluate.yaml`` attaches :class:`connected_unets.handlers.EvaluationReport` to the
validation evaluator of ``configs/train.yaml``, and ``connected-unets evaluate`` runs that same
config, so both front doors write the same report. One job per module: :mod:`.cases` (scoring one
lesion, checking the inputs), :mod:`.statistics` (every interval and pooled statistic),
:mod:`.report` (the files), :mod:`.workflow` (the bundle run), :mod:`.figures` (the pictures;
imported only when a report is written, not re-exported here).
"""

from .cases import CASE_COLUMNS, CaseResult, case_result, check_inputs, read_detections, with_probabilities
from .report import (
    CASES_CSV,
    paired_dice_gain_ci,
    pick_cases,
    summarize_cases,
    summary_markdown,
    write_cases_csv,
    write_report,
    write_summary,
)
from .statistics import (
    IOU90_THRESHOLD,
    bootstrap_ci,
    paired_bootstrap_ci,
    patient_bootstrap_ci,
    pooled_roc,
    whole_roi_reference,
)
from .workflow import evaluation_workflow, load_cases, run_evaluation

__all__ = [
    "CASES_CSV",
    "CASE_COLUMNS",
    "IOU90_THRESHOLD",
    "CaseResult",
    "bootstrap_ci",
    "case_result",
    "check_inputs",
    "evaluation_workflow",
    "load_cases",
    "paired_bootstrap_ci",
    "paired_dice_gain_ci",
    "patient_bootstrap_ci",
    "pick_cases",
    "pooled_roc",
    "read_detections",
    "run_evaluation",
    "summarize_cases",
    "summary_markdown",
    "whole_roi_reference",
    "with_probabilities",
    "write_cases_csv",
    "write_report",
    "write_summary",
]
