"""Checks that stop a training run before it starts when it could not finish or would resume wrongly.

``configs/train.yaml`` calls these in ``initialize``: an output folder that cannot be written or has
no room for a checkpoint, and a state or weights file of another network, would otherwise fail
after the data has loaded (or at the end of the first epoch) with a long traceback. A refusal is a
:class:`SetupError`: one line on stderr and exit status 1, and no file of the previous run touched.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "SetupError",
    "check_flags",
    "check_resume_settings",
    "check_resume_state",
    "check_weights",
    "check_writable",
    "checkpoint_bytes",
    "describe_mismatch",
    "remove_stale_temporaries",
]

STATE_KEYS = ("model", "optimizer", "trainer")  # what train.yaml's TrainStateSaver writes
ADAM_COPIES = 3  # a training state holds the weights and Adam's two moments per parameter
FILE_OVERHEAD = 1.05  # a torch.save file / its tensors' bytes (measured 1.03)
STALE_AFTER_S = 3600.0  # a temporary file of an atomic write this old belongs to a killed run
_TEMPORARY = re.compile(r"^\.tmp-[0-9a-f]{12}-")  # connected_unets.io.atomic_output's names


class SetupError(SystemExit):
    """A run that cannot start, said in one line.

    A ``SystemExit`` (as argparse's refusals), because MONAI's config system wraps every
    ``Exception`` of an ``initialize`` expression in a ``RuntimeError`` and its traceback; this
    one reaches the interpreter, which prints the message alone and exits with status 1.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"error: {message}")
        self.message = message

    def __str__(self) -> str:
        return self.message


def _gigabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def _bare(network: torch.nn.Module) -> torch.nn.Module:
    """The network inside a (Distributed)DataParallel wrapper, whose keys the files hold."""
    return network.module if hasattr(network, "module") else network


def check_writable(folder: str | Path, required_bytes: int = 0, what: str = "folder") -> Path:
    """Create ``folder`` if needed and make sure a file of ``required_bytes`` can be written there.

    Writes and removes a probe file (permissions, read-only mounts and ACLs all show), then compares
    the free space with ``required_bytes`` (an atomic write needs the new file's size free while
    the old one still exists). ``what`` names the folder in the message (``output_dir``)."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".tmp-write-check-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SetupError(f"{what} {path}: cannot write there ({reason})") from None
    free = shutil.disk_usage(path).free
    if free < required_bytes:
        raise SetupError(f"{what} {path}: {_gigabytes(free)} free, a checkpoint needs {_gigabytes(required_bytes)}")
    return path


def checkpoint_bytes(network: torch.nn.Module, copies: int = 1) -> int:
    """Size of a file holding ``copies`` copies of the network's tensors (1 for model.pt,
    ``ADAM_COPIES`` for a training state: weights + Adam moments), what :func:`check_writable`
    must find free. torch.save's archive adds ~3 % (per-tensor records and alignment), so 5 %."""
    tensors = sum(t.numel() * t.element_size() for t in _bare(network).state_dict().values())
    return int(copies * tensors * FILE_OVERHEAD)


def remove_stale_temporaries(folder: str | Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete what a run killed during a save left in ``folder``: the temporaries of atomic writes
    (``.tmp-<id>-<name>``, connected_unets.io.atomic_output) older than ``older_than_s``; younger
    ones may be another process's write in progress and stay. Returns what was removed."""
    path = Path(folder)
    if not path.is_dir():
        return []
    now = time.time()
    removed = []
    for tmp in path.iterdir():
        if _TEMPORARY.match(tmp.name) and tmp.is_file() and now - tmp.stat().st_mtime >= older_than_s:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
            logger.info("removed %s, left by an interrupted save", tmp)
    return removed


def _load_tensors(path: Path) -> Any:
    """The file's content with tensors memory-mapped, so checking a large state costs no read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, ValueError, OSError, EOFError, KeyError, pickle.UnpicklingError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SetupError(f"{path}: cannot be read as a PyTorch file, truncated or corrupt? ({first_line})") from None


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def describe_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any]) -> str | None:
    """What keeps ``found`` from loading strictly into a network whose state_dict is ``expected``,
    in a few words with one example each; None when it loads."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and _shape(found[k]) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(expected)} tensors missing, e.g. '{missing[0]}'")
    if unexpected:
        parts.append(f"{len(unexpected)} unknown, e.g. '{unexpected[0]}'")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of another shape, e.g. '{k}' {_shape(found[k])} in the file, {tuple(expected[k].shape)} here")
    return "; ".join(parts) or None


def check_resume_state(path: str | Path, network: torch.nn.Module) -> None:
    """Refuse to resume from ``path`` unless it is a training state (model, optimizer, trainer)
    whose model loads into ``network``; without this, a state of another network fails inside the
    trainer with every mismatched key listed."""
    path = Path(path)
    state = _load_tensors(path)
    if not isinstance(state, Mapping) or any(k not in state for k in STATE_KEYS):
        keys = ", ".join(map(str, state)) if isinstance(state, Mapping) else type(state).__name__
        raise SetupError(f"{path}: not a training state (expected {', '.join(STATE_KEYS)}; found {keys or 'nothing'})")
    mismatch = describe_mismatch(_bare(network).state_dict(), state["model"])
    if mismatch:
        raise SetupError(
            f"{path}: not a training state of this {type(_bare(network)).__name__} ({mismatch}); resume it with the "
            "--network_name and network settings that wrote it, or train into another --output_dir"
        )


def check_flags(**flags: object) -> None:
    """:func:`connected_unets.bundle.check_flags` as a :class:`SetupError` (one line from a config's ``initialize``)."""
    from .bundle import check_flags as check

    try:
        check(**flags)
    except ValueError as err:
        raise SetupError(str(err)) from None


#: train.yaml's keys that make a run what it is: resuming with another value would silently mix two
#: runs (``epochs`` may grow: a run is extended by resuming it with more)
RUN_DEFINING_KEYS = (
    "network_name", "dataset_dir", "datalist_file", "synthetic_datalist", "init_weights", "learning_rate",
    "lr_schedule", "batch_size", "epoch_length", "seed", "bn_momentum", "box_loosen", "box_loosen_prob",
    "box_loosen_common", "rotate_prob", "clahe_prob",
)  # fmt: skip


def _as_text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def check_resume_settings(output_dir: str | Path, keys: tuple[str, ...] = RUN_DEFINING_KEYS, config: Mapping[str, Any] | None = None) -> None:
    """Refuse to resume the run in ``output_dir`` with other values of ``keys`` than its
    ``run.json`` says it started with (as written in the configs and on the command line), e.g. a rerun of
    ``scripts/compare_synthetic.sh`` with another ``INIT``, which would otherwise carry on the old
    run as if it were the new one. ``config`` defaults to the merged config of the bundle run that
    calls this. Without a record (a run older than run.json) there is nothing to compare."""
    from .runinfo import RUN_INFO, evaluating_config

    record_file = Path(output_dir) / RUN_INFO
    try:
        started = json.loads(record_file.read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        started = None
    current = config if config is not None else evaluating_config()
    if not isinstance(started, Mapping) or current is None:
        logger.info("%s: no record of the settings the run started with; resuming without comparing them", record_file)
        return
    changed = [  # a key the record lacks came with a later version: nothing to compare
        f"{key} {started[key]!r} -> {current.get(key)!r}"
        for key in keys
        if key in started and _as_text(started[key]) != _as_text(current.get(key))
    ]  # fmt: skip
    if changed:
        raise SetupError(
            f"{record_file.parent}: the run there started with other settings ({'; '.join(changed)}); resume it with "
            "the settings it started with, or train into another --output_dir (or delete that folder) to start over"
        )


def check_weights(path: str | Path, network: torch.nn.Module) -> None:
    """Refuse ``init_weights`` that do not load into ``network``: a plain state_dict (as model.pt)
    or a file holding one under ``model`` (a training state), as MONAI's CheckpointLoader reads it."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: init_weights not found")
    weights = _load_tensors(path)
    if isinstance(weights, Mapping) and isinstance(weights.get("model"), Mapping):
        weights = weights["model"]
    if not isinstance(weights, Mapping):
        raise SetupError(f"{path}: holds a {type(weights).__name__}, not a state_dict of {type(_bare(network)).__name__}")
    mismatch = describe_mismatch(_bare(network).state_dict(), weights)
    if mismatch:
        raise SetupError(f"{path}: init_weights are not weights of this {type(_bare(network)).__name__} ({mismatch})")

