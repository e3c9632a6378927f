"""The evaluation as the bundle runs it: ``configs/common.yaml`` + ``train.yaml`` + ``evaluate.yaml``
opened as a MONAI ``ConfigWorkflow``, so ``connected-unets evaluate`` and ``python -m monai.bundle
run`` execute one config and write one report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.dummy import Process as PoolThread
from pathlib import Path
from typing import Any

import torch

from .cases import check_inputs

__all__ = ["evaluation_workflow", "load_cases", "run_evaluation"]

logger = logging.getLogger(__name__)

POOL_THREAD_WAIT_S = 60.0  # a worker finishes at most the case it is loading, then takes its sentinel


@contextmanager
def _pool_threads_joined(timeout_s: float = POOL_THREAD_WAIT_S) -> Iterator[None]:
    """Wait, on the way out, for the thread-pool workers started inside the block.

    Why: the evaluator's CacheDataset loads cases on a ``ThreadPool``; when one case fails (a
    missing image), the pool's ``terminate`` neither stops nor joins a worker that is still
    loading another case. That daemon thread is then inside a torch call when the interpreter
    finalizes; on its way back to the GIL Python ends it with ``pthread_exit``, whose unwinding
    through torch's C++ frames calls ``std::terminate``: the process aborts with status 134
    ("terminate called without an active exception") right after the one-line error.
    """
    before = set(threading.enumerate())
    try:
        yield
    finally:
        for thread in set(threading.enumerate()) - before:
            if isinstance(thread, PoolThread):
                thread.join(timeout_s)
                if thread.is_alive():
                    logger.warning("data-loading thread %s still running after %.0f s", thread.name, timeout_s)


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
    with _pool_threads_joined():  # the cases load here unless load_cases ran first
        if on_cases is not None:
            from ..handlers import CaseCounter  # handlers imports this package: here, not at the top

            CaseCounter(on_cases).attach(workflow.parser.get_parsed_content("validate#evaluator"))
        workflow.run()
    workflow.finalize()
    summary = workflow.parser.get_parsed_content("report").summary
    if summary is None:
        raise RuntimeError("the evaluation finished without a report")
    return summary


def load_cases(workflow: Any) -> int:
    """Build the workflow's evaluator, which loads and caches the cases, and return their number
    (the total of a progress bar that then counts only the scoring)."""
    with _pool_threads_joined():
        workflow.parser.get_parsed_content("validate#evaluator")
    return len(workflow.parser.get_parsed_content("validate#dataset"))
