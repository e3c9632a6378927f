"""Training of the mass detector (``configs/detect_train.yaml``): epochs that survive interruption.

Why a loop of our own and not ignite's ``SupervisedTrainer``: MONAI's ``RetinaNetDetector`` takes a
list of images and their targets and returns its losses itself, which the supervised engine's
(input, label) -> network -> loss step does not fit; the loop is short enough to read whole.

- Every epoch ends with the training state (network, optimizer, schedule, epoch, best score, random
  states) written atomically to ``train_state_file``; a new run resumes after the last finished
  epoch, so a kill costs at most the epoch it interrupted.
- After each ``val_interval`` epochs the validation images are searched and scored by FROC
  (:mod:`connected_unets.evaluation.froc`): the key metric is the mean sensitivity at 0.25, 0.5, 1
  and 2 false positives per image. A better score replaces ``best_file`` (a plain state_dict of
  the network) and its record ``<best_file>.json`` (metric, epoch, the sensitivities and the
  score threshold at 1 false positive per image, which detect_inference.yaml's ``auto`` threshold
  reads).
- ``max_minutes`` (0 = none) ends the run cleanly, state saved, at the last epoch boundary before
  that much wall time (an epoch is not started when the previous one's duration would overrun),
  so a budget is kept and the next run continues.
- The learning curve: ``<output_dir>/detector_train_log.csv`` (one row per step: loss parts, wall
  and CPU seconds) and ``detector_val_log.csv`` (one row per validation), continued on resume.
- bf16 autocast where ``precision`` says so (:func:`connected_unets.precision.resolve_precision`).
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import math
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .handlers import append_csv_row
from .evaluation.froc import FP_RATES, ImageDetections, froc_curve, sensitivity_at
from .io import atomic_output, atomic_torch_save

logger = logging.getLogger(__name__)

__all__ = ["DetectorTraining", "check_datalist", "float_outputs", "validation_froc"]

TRAIN_FIELDS = ("utc", "epoch", "iteration", "loss", "classification", "box_regression", "wall_s", "cpu_s")
KEY_METRIC = "froc_mean_sensitivity"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drop_rows_after(path: Path, epoch: int) -> None:
    """Keep the rows of epochs up to ``epoch``: those after it are redone by the resumed run."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [row for row in rows[1:] if len(row) == len(rows[0]) and row[column].isdigit() and int(row[column]) <= epoch]
    if len(kept) != len(rows) - 1:
        with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
            csv.writer(handle).writerows([rows[0], *kept])


def float_outputs(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
    """Forward hook: the network's maps back in fp32, so that under bf16 autocast only the
    convolutions run in bf16; the anchors (made in the maps' dtype: bf16 would put a 512-pixel
    image's anchors on a 2-4 pixel grid), the matching and the losses stay fp32."""
    if isinstance(output, dict):
        return {k: [t.float() for t in v] if isinstance(v, (list, tuple)) else v.float() for k, v in output.items()}
    return [t.float() for t in output]


def check_datalist(datalist_file: str | Path, splits: Sequence[str] = ("training", "validation")) -> None:
    """Refuse, in one line and before anything loads, a missing or unreadable datalist or an empty
    or missing split (:class:`connected_unets.preflight.SetupError`: exit status 1, no traceback)."""
    from .evaluation import check_inputs
    from .preflight import SetupError

    try:
        for split in splits:
            check_inputs(datalist_file, split)
    except (OSError, ValueError) as err:
        raise SetupError(str(err)) from None


def validation_froc(detector: Any, items: Iterable[dict[str, Any]], batch_size: int = 4) -> dict[str, Any]:
    """FROC of ``detector`` (a ``RetinaNetDetector``, evaluated in eval mode) on prepared items
    (``image`` (1, S, S) working images, ``boxes`` their lesions in MONAI's convention): the
    sensitivities at :data:`FP_RATES`, their mean (the key metric) and the thresholds."""
    from .detection import from_monai_boxes

    was_training = detector.training
    detector.eval()
    images: list[ImageDetections] = []
    items = [items[i] for i in range(len(items))] if hasattr(items, "__getitem__") and hasattr(items, "__len__") else list(items)
    try:
        with torch.inference_mode():
            device = next(detector.network.parameters()).device
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                outputs = detector(torch.stack([torch.as_tensor(i["image"]) for i in chunk]).to(device), use_inferer=False)
                for item, out in zip(chunk, outputs):
                    images.append(
                        ImageDetections(
                            lesions=from_monai_boxes(item["boxes"]),
                            boxes=from_monai_boxes(out["boxes"]),
                            scores=out["labels_scores"].float().cpu().numpy(),
                            name=str(item.get("image_path", "")),
                        )
                    )
    finally:
        detector.train(was_training)
    curve = froc_curve(images)
    points = sensitivity_at(curve, FP_RATES)
    mean = float(np.mean([p["sensitivity"] for p in points.values()])) if curve.n_lesions else float("nan")
    return {
        KEY_METRIC: mean,
        **{f"sensitivity_at_{rate:g}fp": p["sensitivity"] for rate, p in points.items()},
        "threshold_at_1fp": points[1.0]["threshold"],
        "images": curve.n_images,
        "lesions": curve.n_lesions,
    }


class DetectorTraining:
    """The detector's training run; :meth:`run` trains, validates, checkpoints and resumes."""

    def __init__(
        self,
        detector: Any,
        optimizer: torch.optim.Optimizer,
        train_loader: Iterable[list[dict[str, Any]]],
        validation_data: Sequence[dict[str, Any]],
        epochs: int,
        output_dir: str | Path,
        train_state_file: str | Path,
        best_file: str | Path,
        lr_scheduler: Any = None,
        precision: str = "fp32",
        val_interval: int = 1,
        max_minutes: float = 0.0,
        resume: bool = True,
        seed: int = 0,
        grad_clip: float = 10.0,
    ) -> None:
        self.detector = detector
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.validation_data = validation_data
        self.epochs = int(epochs)
        self.output_dir = Path(output_dir)
        self.train_state_file = Path(train_state_file)
        self.best_file = Path(best_file)
        self.lr_scheduler = lr_scheduler
        self.precision = precision
        self.val_interval = max(1, int(val_interval))
        self.max_minutes = float(max_minutes or 0.0)
        self.resume = bool(resume)
        self.seed = int(seed)
        self.grad_clip = float(grad_clip)
        self.epoch = 0
        self.iteration = 0
        self.best = -math.inf
        self.train_log = self.output_dir / "detector_train_log.csv"
        self.val_log = self.output_dir / "detector_val_log.csv"

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        state = {
            "network": self.detector.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "best": self.best,
            "rng": {"torch": torch.random.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        }
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        return state

    def _load_state(self) -> None:
        state = torch.load(self.train_state_file, map_location="cpu", weights_only=False)  # our own file: it holds random states
        self.detector.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and "lr_scheduler" in state:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.epoch, self.iteration, self.best = int(state["epoch"]), int(state["iteration"]), float(state["best"])
        rng = state.get("rng") or {}
        if "torch" in rng:
            torch.random.set_rng_state(rng["torch"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])
        logger.info("resumed from %s after epoch %d (best %s %.4f)", self.train_state_file, self.epoch, KEY_METRIC, self.best)

    # ------------------------------------------------------------------ steps

    def _step(self, batch: list[dict[str, Any]]) -> dict[str, float]:
        device = next(self.detector.network.parameters()).device
        images = torch.stack([torch.as_tensor(item["image"]) for item in batch]).to(device)
        targets = [
            {"boxes": torch.as_tensor(item["boxes"], dtype=torch.float32).reshape(-1, 4).to(device), "labels": torch.as_tensor(item["labels"]).long().to(device)}
            for item in batch
        ]
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            losses = self.detector(images, targets)
        classification = losses["classification"].float()
        regression = losses["box_regression"].float()
        loss = classification + regression
        values = {"loss": float(loss.detach()), "classification": float(classification.detach()), "box_regression": float(regression.detach())}
        if not math.isfinite(values["loss"]):
            raise FloatingPointError(f"epoch {self.epoch + 1}, step {self.iteration + 1}: the loss is {values['loss']}; lower learning_rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.detector.network.parameters(), self.grad_clip)
        self.optimizer.step()
        return values

    def _validate(self) -> dict[str, Any]:
        metrics = validation_froc(self.detector, self.validation_data)
        append_csv_row(self.val_log, ["utc", "epoch", "iteration", *metrics], [_now(), self.epoch, self.iteration, *metrics.values()])
        score = metrics[KEY_METRIC]
        logger.info(
            "epoch %d: FROC sensitivity %s (mean %.3f) on %d validation images",
            self.epoch, ", ".join(f"{metrics[f'sensitivity_at_{r:g}fp']:.2f} at {r:g} FP" for r in FP_RATES), score, metrics["images"],
        )  # fmt: skip
        if math.isfinite(score) and score > self.best:
            self.best = score
            atomic_torch_save(self.detector.network.state_dict(), self.best_file)
            record = {"metric": KEY_METRIC, "score": score, "epoch": self.epoch, **metrics}
            with atomic_output(self.best_file.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(record, indent=1) + "\n")
            logger.info("new best %s = %.4f at epoch %d: saved %s", KEY_METRIC, score, self.epoch, self.best_file)
        return metrics

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        """Train until ``epochs`` (or ``max_minutes``); return what happened (epochs done, best score)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = self.best_file.with_suffix(".json")
        if self.resume and self.train_state_file.is_file():
            self._load_state()
        elif self.resume and record.is_file():  # an earlier run's best stays unless this one beats it
            self.best = float(json.loads(record.read_text()).get("score", -math.inf))
        _drop_rows_after(self.train_log, self.epoch)
        _drop_rows_after(self.val_log, self.epoch)
        started = time.monotonic()
        self.detector.train()
        hook = self.detector.network.register_forward_hook(float_outputs)
        try:
            stopped_early = self._epochs(started)
        finally:
            hook.remove()
        return {"epochs": self.epoch, "best": self.best, "stopped_early": stopped_early, "minutes": (time.monotonic() - started) / 60.0}

    def _epochs(self, started: float) -> bool:
        """Train the remaining epochs; True when ``max_minutes`` ended the run early."""
        last_epoch_s = 0.0
        while self.epoch < self.epochs:
            if self.max_minutes and time.monotonic() - started + last_epoch_s > 60.0 * self.max_minutes:
                logger.info("max_minutes %g: another epoch would not end in time; stopping after epoch %d (run again to continue)", self.max_minutes, self.epoch)
                return True
            epoch_started = time.monotonic()
            epoch = self.epoch + 1
            for batch in self.train_loader:
                clock = (time.perf_counter(), time.process_time())
                parts = self._step(batch)
                self.iteration += 1
                wall, cpu = time.perf_counter() - clock[0], time.process_time() - clock[1]
                append_csv_row(self.train_log, TRAIN_FIELDS, [_now(), epoch, self.iteration, *(f"{parts[k]:.6f}" for k in ("loss", "classification", "box_regression")), f"{wall:.3f}", f"{cpu:.3f}"])
            self.epoch = epoch
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            if self.epoch % self.val_interval == 0 or self.epoch == self.epochs:
                self._validate()
            atomic_torch_save(self._state(), self.train_state_file)
            last_epoch_s = time.monotonic() - epoch_started
            logger.info("epoch %d/%d done in %.0f s: training state saved to %s", self.epoch, self.epochs, last_epoch_s, self.train_state_file)
        return False
