"""Every ignite event handler of the bundle (the configs' handler ``_target_`` entries).

Training: checkpoints that survive interruption (MONAI's ``CheckpointSaver`` writes in place, so a
kill during a save can leave a truncated ``model.pt``; these write a temporary file and rename it),
a best model that remembers its score, a learning curve continued on resume, a progress bar of
the step's losses. Evaluation: the report writer and a count of the cases scored (a caller's
progress bar).
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from . import evaluation
from .io import atomic_output, atomic_torch_save

logger = logging.getLogger(__name__)


def is_main_process() -> bool:
    """Rank 0 of a distributed run, or a plain run: the one process that writes checkpoints."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _unwrap(obj: Any) -> Any:
    """The network inside a (Distributed)DataParallel wrapper, so saved keys have no 'module.' prefix
    (ignite's Checkpoint.load_objects, behind CheckpointLoader, loads into ``obj.module`` too)."""
    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    return obj.module if isinstance(obj, wrappers) else obj


def _state(objects: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _unwrap(obj).state_dict() for name, obj in objects.items()}


class TrainStateSaver:
    """Save everything needed to resume (network, optimizer, trainer state, ...) after every epoch.

    Pair it with MONAI's ``CheckpointLoader`` on the same file (disabled while the file is absent)
    to resume an interrupted run where it stopped.
    """

    def __init__(self, save_file: str | Path, save_dict: Mapping[str, Any], interval: int = 1) -> None:
        self.save_file = Path(save_file)
        self.save_dict = dict(save_dict)
        self.interval = interval

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        if not is_main_process():
            return
        atomic_torch_save(_state(self.save_dict), self.save_file)
        logger.info("epoch %d: training state saved to %s", engine.state.epoch, self.save_file)


class BestModelSaver:
    """Keep the network with the best validation ``key_metric`` as a plain state_dict.

    The score and epoch go to a JSON file beside the weights, so a resumed run only replaces the
    model when it really beats the best one so far (and the model card can quote it). With
    ``resume=False`` a score left by an earlier run is ignored: a fresh run keeps its own best.
    """

    def __init__(self, save_file: str | Path, network: torch.nn.Module, resume: bool = True) -> None:
        self.save_file = Path(save_file)
        self.score_file = self.save_file.with_suffix(".json")
        self.network = network
        self._best = self._saved_score() if resume else -math.inf

    def _saved_score(self) -> float:
        if not self.score_file.exists():
            return -math.inf
        return float(json.loads(self.score_file.read_text())["score"])

    def best_score(self) -> float:
        return self._best

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        name = engine.state.key_metric_name
        score = float(engine.state.metrics[name])
        if not is_main_process() or not math.isfinite(score) or score <= self.best_score():
            return
        network = self.network.module if hasattr(self.network, "module") else self.network
        atomic_torch_save(network.state_dict(), self.save_file)
        self._best = score
        epoch = engine.state.epoch  # a validator run by ValidationHandler carries the trainer's epoch
        record = {"metric": name, "score": score, "epoch": epoch}
        with atomic_output(self.score_file) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
        logger.info("new best %s = %.4f at epoch %d: saved %s", name, score, epoch, self.save_file)


def append_csv_row(path: Path, fields: Sequence[str], values: Sequence[Any]) -> None:
    """Append one row to a CSV log, writing the header first when the file is new or empty."""
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(fields)
        writer.writerow(values)


class TrainingLog:
    """A learning curve that survives interruption: one CSV row per optimizer step and per validation.

    ``<prefix>_train_log.csv``: utc, epoch, iteration, loss, wall and CPU seconds of the step
    (``loss_keys`` names the loss columns: the trainer output's entries, ``loss`` by default; a
    CycleGAN step reports several).
    ``<prefix>_val_log.csv``: utc, epoch, iteration and every validation metric. Rows are appended
    as they happen; when a run resumes from its last saved state, rows of the steps it is about to
    redo (after the state's iteration) are dropped first, so the curve continues without duplicates.
    Attach it after the resume loader (both run on ``Events.STARTED``, in order).
    """

    TRAIN_FIELDS = ("utc", "epoch", "iteration", "loss", "wall_s", "cpu_s")

    def __init__(self, log_dir: str | Path, prefix: str, validator: Engine | None = None, loss_keys: Sequence[str] = ("loss",)) -> None:
        self.loss_keys = tuple(loss_keys)
        self.train_fields = (*self.TRAIN_FIELDS[:3], *self.loss_keys, *self.TRAIN_FIELDS[4:])
        self.train_file = Path(log_dir) / f"{prefix}_train_log.csv"
        self.val_file = Path(log_dir) / f"{prefix}_val_log.csv"
        self.validator = validator
        self._trainer: Engine | None = None
        self._clock = (0.0, 0.0)

    def attach(self, trainer: Engine) -> None:
        self._trainer = trainer
        trainer.add_event_handler(Events.STARTED, self._drop_rows_to_redo)
        trainer.add_event_handler(Events.ITERATION_STARTED, self._start_clock)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._log_step)
        if self.validator is not None:
            self.validator.add_event_handler(Events.EPOCH_COMPLETED, self._log_validation)

    def _drop_rows_to_redo(self, trainer: Engine) -> None:
        if not is_main_process():
            return
        for path in (self.train_file, self.val_file):
            if not path.is_file():
                continue
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            header, body = rows[0], rows[1:]
            column = header.index("iteration") if "iteration" in header else None
            kept = [r for r in body if len(r) == len(header) and column is not None and r[column].isdigit() and int(r[column]) <= trainer.state.iteration]
            if len(kept) != len(body):
                with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
                    csv.writer(f).writerows([header, *kept])

    def _start_clock(self, _: Engine) -> None:
        self._clock = (time.perf_counter(), time.process_time())

    @staticmethod
    def _now() -> str:
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _log_step(self, trainer: Engine) -> None:
        if not is_main_process():
            return
        output = trainer.state.output
        output = output[0] if isinstance(output, list) else output
        wall, cpu = time.perf_counter() - self._clock[0], time.process_time() - self._clock[1]
        losses = [f"{float(output[key]):.6f}" for key in self.loss_keys]
        values = [self._now(), trainer.state.epoch, trainer.state.iteration, *losses, f"{wall:.3f}", f"{cpu:.3f}"]
        append_csv_row(self.train_file, list(self.train_fields), values)

    def _log_validation(self, validator: Engine) -> None:
        if not is_main_process() or self._trainer is None:
            return
        metrics = {k: float(v) for k, v in validator.state.metrics.items() if isinstance(v, (int, float))}
        fields = ["utc", "epoch", "iteration", *metrics]
        values = [self._now(), self._trainer.state.epoch, self._trainer.state.iteration, *(f"{v:.6f}" for v in metrics.values())]
        append_csv_row(self.val_file, fields, values)


class LossProgressBar:
    """A tqdm bar over each epoch's steps (ignite's ``ProgressBar``), showing the ``keys`` of the
    step's output dict: the CycleGAN's generator and discriminator losses in
    ``configs/cyclegan_train.yaml``."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)

    def attach(self, engine: Engine) -> None:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=True).attach(engine, output_transform=lambda output: {key: output[key] for key in self.keys})


class CaseCounter:
    """Calls ``on_cases(n)`` after each iteration of an evaluator with the number ``n`` of cases the
    iteration scored (its decollated output): what ``connected-unets evaluate``'s progress bar counts."""

    def __init__(self, on_cases: Callable[[int], Any]) -> None:
        self.on_cases = on_cases

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.on_cases(len(engine.state.output))


def resume_file(path: str | Path) -> bool:
    """True when ``path`` holds a training state to resume from (for the configs' ``_disabled_``)."""
    return os.path.isfile(path)


class EvaluationReport:
    """Ignite handler for the evaluator of ``configs/evaluate.yaml``: scores every case as it leaves
    the post-processing and writes the report when the run completes.

    ``detections_file``: optional CSV (``lesion,detected``, see :func:`read_detections`) that adds
    the detection rate and the paper's final segmentation accuracy. ``info`` goes into the summary
    (network, weights, split, ...). The summary of the last run is kept as :attr:`summary`.
    """

    def __init__(
        self,
        output_dir: str | Path,
        dataset_dir: str | Path | None = None,
        detections_file: str | Path | None = None,
        info: Mapping[str, Any] | None = None,
        n_resamples: int = 10000,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.dataset_dir = dataset_dir
        self.detections_file = detections_file
        self.info = {k: (str(v) if isinstance(v, Path) else v) for k, v in dict(info or {}).items()}
        self.n_resamples = n_resamples
        self.confidence = confidence
        self.seed = seed
        self.cases: list[Any] = []  # evaluation.CaseResult
        self.summary: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self.cases = []
        self.summary = None

    def collect(self, engine: Engine) -> None:
        """Score the decollated items of the iteration (batch metadata + post-processed output)."""
        batch, output = engine.state.batch, engine.state.output
        if not isinstance(output, list):
            raise ValueError("EvaluationReport needs the evaluator to decollate its output (decollate=True)")
        for meta, out in zip(batch, output):
            self.cases.append(evaluation.case_result({**meta, **out}, self.dataset_dir))

    def write(self, engine: Engine | None = None) -> None:
        if not is_main_process():  # a distributed run's other ranks hold only their shard
            return
        detected = None
        if self.detections_file:
            detected = evaluation.read_detections(self.detections_file, [c.lesion for c in self.cases])
        self.summary = evaluation.write_report(
            self.cases, self.output_dir, detected, self.info, self.n_resamples, self.confidence, self.seed
        )
