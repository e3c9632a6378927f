"""The evaluation as the bundle runs it: ``configs/common.yaml`` + ``train.yaml`` + ``evaluate.yaml``
opened as a MONAI ``ConfigWorkflow``, so ``connected-unets evaluate`` and ``python -m monai.bundle
run`` execute one config and write one report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events

from .cases import check_inputs

__all__ = ["evaluation_workflow", "load_cases", "run_evaluation"]


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
    from ..bundle import open_workflow, resolve_device

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
