"""Checkpointing that survives interruption: atomic writes and a best model that remembers its score.

MONAI's ``CheckpointSaver`` writes in place (``atomic=False``), so a kill during a save can leave a
truncated ``model.pt``. These handlers write to a temporary file and rename it over the target.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from .io import atomic_output

logger = logging.getLogger(__name__)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file in the same folder, then an atomic rename."""
    with atomic_output(Path(path)) as tmp:
        torch.save(obj, tmp)


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


def resume_file(path: str | Path) -> bool:
    """True when ``path`` holds a training state to resume from (for the configs' ``_disabled_``)."""
    return os.path.isfile(path)
