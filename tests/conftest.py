"""Shared fixtures: where the repository, the MONAI bundle and the shared data are, and a helper
that runs ``python -m <module> ...`` (``monai.bundle`` by default) as a user would.

Subprocesses get ``OMP_NUM_THREADS=1`` unless the caller's environment sets it: the tests use tiny
tensors, for which one thread is faster, and on a small machine that is busy with other jobs two
OpenMP threads per process were measured to make a tiny training step ~30x slower.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "monai_bundle"
SHARED = Path(os.environ.get("CONNECTED_UNETS_SHARED", str(REPO.parent / "shared"))).resolve()

TAIL_LINES = 40


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_bundle_command(
    args: Sequence[str],
    cwd: str | Path = BUNDLE,
    *,
    module: str = "monai.bundle",
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``sys.executable -m <module> *args`` in ``cwd`` and return it, stdout and stderr merged
    into ``.stdout``. With ``check`` a non-zero exit (or a timeout) fails the calling test with the
    command and the last 40 lines of its output."""
    command = [sys.executable, "-m", module, *map(str, args)]
    full_env = dict(os.environ)
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.setdefault("PYTHONWARNINGS", "ignore")
    full_env.update(env or {})
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        pytest.fail(f"timed out after {timeout} s: {' '.join(command)}\n--- last {TAIL_LINES} lines ---\n{_tail(out)}")
    if check and proc.returncode != 0:
        pytest.fail(
            f"exit code {proc.returncode}: {' '.join(command)}\n(cwd {cwd})\n"
            f"--- last {TAIL_LINES} lines ---\n{_tail(proc.stdout)}",
            pytrace=False,
        )
    return proc


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    return BUNDLE


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder: $CONNECTED_UNETS_SHARED, else <repo>/../shared."""
    return SHARED


@pytest.fixture(scope="session")
def run_bundle() -> Callable[..., subprocess.CompletedProcess]:
    """``run_bundle(args, cwd=bundle_dir, module="monai.bundle", env=None, timeout=600, check=True)``,
    see :func:`run_bundle_command`; session-scoped so module-scoped fixtures can use it."""
    return run_bundle_command


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A plain state_dict of the bundle's default network (ConnectedResUNets, 3 input channels,
    default features) with seeded random (Keras-like) initial weights, for inference tests that
    need loadable weights but no trained model."""
    import torch

    from connected_unets.networks import get_network

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        network = get_network("connected_resunets", in_channels=3)
    finally:
        torch.random.set_rng_state(state)
    path = tmp_path_factory.mktemp("random_weights") / "model.pt"
    torch.save(network.state_dict(), path)
    return path
