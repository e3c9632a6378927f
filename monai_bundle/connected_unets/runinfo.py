"""``run.json``: what a training or evaluation run was made of, written beside its outputs.

A figure in a report is only worth something when one can say which config, code, data, seed and
machine produced it. ``configs/train.yaml`` and ``configs/evaluate.yaml`` call
:func:`write_run_info` in ``initialize``, so every ``monai.bundle run`` and ``connected-unets
evaluate`` records: the merged config (macros and relative references resolved, expressions kept
as text), the command line, package versions, the git commit of the code (when it runs from a
checkout), checksums of the datalist and of every image and label it lists, the seed, the device,
CPU and GPU, the resolved training precision and the start time.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .handlers import is_main_process
from .io import atomic_output

logger = logging.getLogger(__name__)

__all__ = ["RUN_INFO", "data_checksums", "evaluating_config", "git_commit", "machine", "package_versions", "write_run_info"]

RUN_INFO = "run.json"
FILE_KEYS = ("image", "label")  # the datalist entries that name files (monai.data.load_decathlon_datalist)
_CHUNK = 1 << 20


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour the numbers depend on."""
    import ignite
    import monai
    import numpy

    from . import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "pytorch-ignite": ignite.__version__,
        "numpy": numpy.__version__,
        "connected_unets": __version__,
    }


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(folder: str | Path | None = None) -> dict[str, Any] | None:
    """The commit of the checkout holding ``folder`` (default: this package) and whether tracked
    files differ from it; None outside a checkout or without git (an installed wheel)."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(datalist: Any) -> list[str]:
    """Every image and label named by the datalist's splits (not its ``skipped`` record), once each."""
    splits = [v for k, v in datalist.items() if isinstance(v, list) and k != "skipped"] if isinstance(datalist, dict) else []
    names = {e[k] for split in splits for e in split if isinstance(e, dict) for k in FILE_KEYS if isinstance(e.get(k), str)}
    return sorted(names)


def data_checksums(datalist_file: str | Path, dataset_dir: str | Path | None = None) -> dict[str, Any]:
    """sha256 of the datalist and one combined sha256 of the files it lists.

    The combined hash runs over ``<name as listed>  <sha256 of the file>`` lines in sorted order, so
    it names the data, not the folder it sits in. Files that are missing are counted and named
    (the data loader reports them; the record should not stop the run)."""
    datalist_file = Path(datalist_file).resolve()
    base = Path(dataset_dir).resolve() if dataset_dir is not None else datalist_file.parent
    names = _listed_files(json.loads(datalist_file.read_text()))
    combined, missing = hashlib.sha256(), []
    for name in names:
        path = base / name
        if path.is_file():
            combined.update(f"{name}  {_sha256(path)}\n".encode())
        else:
            missing.append(name)
            combined.update(f"{name}  missing\n".encode())
    return {
        "datalist": str(datalist_file),
        "datalist_sha256": _sha256(datalist_file),
        "dataset_dir": str(base),
        "files": len(names),
        "files_sha256": combined.hexdigest(),
        "missing": missing,
    }


def machine(device: str | torch.device) -> dict[str, Any]:
    """The device, CPU and GPU the numbers came from (bf16 units and thread count change them)."""
    from .precision import cpu_has_fast_bf16, cpu_model

    device = torch.device(device)
    info: dict[str, Any] = {
        "device": str(device),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_bf16_units": cpu_has_fast_bf16(),
        "torch_threads": torch.get_num_threads(),
        "gpu": None,
    }
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def evaluating_config() -> dict[str, Any] | None:
    """The merged config of the MONAI ConfigParser evaluating the expression that called us.

    MONAI hands an expression no handle on its parser, so it is found on the call stack (the
    ``self`` of ``ConfigParser.get_parsed_content``); None when not called from a config."""
    from monai.bundle import ConfigParser

    frame = inspect.currentframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, ConfigParser):
            return candidate.get()
        frame = frame.f_back
    return None


def write_run_info(
    output_dir: str | Path,
    kind: str,
    *,
    seed: int,
    device: str | torch.device,
    precision: str,
    datalist_file: str | Path,
    dataset_dir: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    channels_last: bool | None = None,
) -> Path | None:
    """Write ``<output_dir>/run.json`` atomically (rank 0 only) and return its path.

    ``kind``: ``train`` or ``evaluate``; ``precision``: the resolved arithmetic of the network
    (train.yaml's ``train_precision``; evaluation scores in fp32); ``channels_last``: the resolved
    memory format (common.yaml's ``use_channels_last``), where the run chose one. ``config``
    defaults to the merged config of the bundle run whose ``initialize`` calls this."""
    if not is_main_process():
        return None
    record = {
        "kind": kind,
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "seed": seed,
        "precision": precision,
        **({} if channels_last is None else {"channels_last": bool(channels_last)}),
        "machine": machine(device),
        "versions": package_versions(),
        "git": git_commit(),
        "data": data_checksums(datalist_file, dataset_dir),
        "config": dict(config) if config is not None else evaluating_config(),
    }
    path = Path(output_dir) / RUN_INFO
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))
    logger.info("run record written to %s", path)
    return path
