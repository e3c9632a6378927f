"""The fast path's probe verdict, remembered per weights, code and machine, so a new process skips the probe.

Why: :func:`connected_unets.fast.fast_if_equivalent` compares the fast copy with the plain network
on a probe input every time a Segmenter loads. On the AVX2-only CPU that costs about 3 s (oneDNN
builds kernels for probe shapes no ROI has), the largest part of the CLI's ``segment`` after its
imports. The verdict depends only on the weights' bytes, the source of the modules that build the
network and fold it, torch's version and kernels (CPU SIMD level, device type), so it is remembered under a digest of all of these. A changed weights file, a code change or another
machine is a new key and probes again; a cache that cannot be read or written is passed over (the
probe runs as before).

The cache is ``fast_path.json`` in ``$CONNECTED_UNETS_CACHE``, else ``$XDG_CACHE_HOME/connected-unets``,
else ``~/.cache/connected-unets``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .io import atomic_output, file_sha256

logger = logging.getLogger(__name__)

__all__ = ["CACHE_ENV", "cache_file", "recall", "remember", "verdict_key"]

CACHE_ENV = "CONNECTED_UNETS_CACHE"
KEEP = 64  # verdicts kept, newest last: a few weights files on a few machines


def cache_file() -> Path:
    """Where the verdicts are kept (see the module docstring)."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(base) / "connected-unets")
    return Path(folder) / "fast_path.json"


def _source_files(network: nn.Module) -> list[Path]:
    """The source files of every module class in ``network`` and of the folding code."""
    from . import fast

    files = {inspect.getsourcefile(type(module)) for module in network.modules()} | {inspect.getsourcefile(fast)}
    return sorted(Path(f) for f in files if f)


def verdict_key(weights: str | Path, network: nn.Module, device: torch.device | str) -> str:
    """A digest of everything the probe's measured difference depends on (see the module docstring;
    the probe itself is defined in fast.py, whose source is part of the key). The tolerance is
    not: the remembered difference is compared with whatever tolerance the caller asks for."""
    device = torch.device(device)
    digest = hashlib.sha256()
    parts = [file_sha256(weights), torch.__version__, __version__, device.type, torch.backends.cpu.get_cpu_capability()]
    if device.type == "cuda" and torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(device))
    for part in parts:
        digest.update(part.encode() + b"\0")
    for source in _source_files(network):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _read() -> dict[str, float]:
    try:
        verdicts = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in verdicts.items() if isinstance(v, (int, float))} if isinstance(verdicts, dict) else {}


def recall(key: str) -> float | None:
    """The fast copy's measured largest probability difference under ``key``; None if never probed."""
    return _read().get(key)


def remember(key: str, difference: float) -> None:
    """Keep ``difference`` under ``key`` (atomically; the oldest verdicts beyond :data:`KEEP` dropped)."""
    verdicts = _read()
    verdicts.pop(key, None)
    verdicts[key] = float(difference)
    kept = dict(list(verdicts.items())[-KEEP:])
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(kept, indent=1) + "\n")
    except OSError as err:
        logger.debug("fast path verdict not kept (%s): %s", path, err)
