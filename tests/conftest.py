"""Shared fixtures: where the repository, the MONAI bundle, its shipped sample data and the shared
data are, and a helper that runs ``python -m <module> ...`` (``monai.bundle`` by default) as a user would.

Subprocesses get ``OMP_NUM_THREADS=1`` unless the caller's environment sets it: the tests use tiny
tensors, for which one thread is faster, and on a small machine that is busy with other jobs two
OpenMP threads per process were measured to make a tiny training step ~30x slower.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "monai_bundle"
SAMPLE_DATA = BUNDLE / "sample_data"  # 6 CDD-CESM DM images with mass-only masks, shipped (CC BY 4.0)
SHARED = Path(os.environ.get("CONNECTED_UNETS_SHARED", str(REPO.parent / "shared"))).resolve()

TAIL_LINES = 40
# the fast path's verdict cache (connected_unets.fast_verdicts) of this test process, not the user's nor
# another pytest-xdist worker's; subprocesses inherit it
os.environ["CONNECTED_UNETS_CACHE"] = tempfile.mkdtemp(prefix="connected-unets-test-cache-")
# pytest-xdist runs the suite in one process per core (pyproject's addopts): one torch thread each
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
# pytest-xdist's --dist loadfile runs a test file in one worker, so that its module fixtures (trained
# runs, servers, segmented DICOMs) are built once. These files have only cheap fixtures and many slow
# tests (each front door a process of its own): their tests are spread over the workers instead.
SPREAD_OVER_WORKERS = frozenset({"test_bad_inputs.py"})


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN201 - xdist's scheduler type
    """loadfile, except for SPREAD_OVER_WORKERS. (xdist's loadgroup marks would say the same, but they
    change ``item._nodeid``, which pytest 9.2 no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileScopeExceptSpread(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return nodeid if Path(file).name in SPREAD_OVER_WORKERS else file

    return FileScopeExceptSpread(config, log)


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


class BundleProcess:
    """A started ``python -m <module> ...``; :meth:`result` waits for it (see run_bundle_command)."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: str | Path = BUNDLE,
        *,
        module: str = "monai.bundle",
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> None:
        self.command = [sys.executable, "-m", module, *map(str, args)]
        self.cwd = cwd
        self.check = check
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        full_env = dict(os.environ)
        full_env.setdefault("OMP_NUM_THREADS", "1")
        full_env.setdefault("PYTHONWARNINGS", "ignore")
        full_env.update(env or {})
        # own process group, so that a timeout also ends the children (e.g. torchrun's workers)
        self.proc = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._result: subprocess.CompletedProcess | None = None

    def kill(self) -> str:
        """End the process group this object started, if it still runs; return what it printed."""
        if self.proc.poll() is not None:
            return ""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = self.proc.communicate()
        return out or ""

    def result(self) -> subprocess.CompletedProcess:
        """Wait; with ``check``, a non-zero exit or a timeout fails the calling test or fixture
        with the command and the last 40 lines of its output (stdout and stderr merged)."""
        if self._result is None:
            try:
                out, _ = self.proc.communicate(timeout=max(self.deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                out = self.kill()
                pytest.fail(
                    f"timed out after {self.timeout} s: {' '.join(self.command)}\n"
                    f"--- last {TAIL_LINES} lines ---\n{_tail(out)}",
                    pytrace=False,
                )
            self._result = subprocess.CompletedProcess(self.command, self.proc.returncode, out, None)
        if self.check and self._result.returncode != 0:
            pytest.fail(
                f"exit code {self._result.returncode}: {' '.join(self.command)}\n(cwd {self.cwd})\n"
                f"--- last {TAIL_LINES} lines ---\n{_tail(self._result.stdout)}",
                pytrace=False,
            )
        return self._result


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
    return BundleProcess(args, cwd, module=module, env=env, timeout=timeout, check=check).result()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    return BUNDLE


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real sample shipped with the bundle: images/*.jpg, masks/*.png (mass-only), manifest.csv."""
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The full datasets' folder (docs/data.md): $CONNECTED_UNETS_SHARED, else ``shared`` in the folder
    that holds the repository. Tests that need it skip without it."""
    return SHARED


@pytest.fixture(scope="session")
def run_bundle() -> Callable[..., subprocess.CompletedProcess]:
    """``run_bundle(args, cwd=bundle_dir, module="monai.bundle", env=None, timeout=600, check=True)``,
    see :func:`run_bundle_command`; session-scoped so module-scoped fixtures can use it."""
    return run_bundle_command


@pytest.fixture(scope="session")
def start_bundle() -> Callable[..., BundleProcess]:
    """Like ``run_bundle`` but returns at once: ``start_bundle(args, ...).result()`` waits. For
    commands that can run side by side; call ``.kill()`` in a finalizer for ones never waited for."""
    return BundleProcess


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


@pytest.fixture(scope="session")
def detector_weights(tmp_path_factory) -> Path:
    """A weights file of the bundle's mass detector (``detector_network`` of configs/common.yaml),
    untrained but proposing boxes: seeded random weights, except that the classification layer's
    prior is 0.5 (bias 0) instead of RetinaNet's 0.01, under which every score would stay below the
    box selector's 0.02 and nothing would come out. Loaded through the doors users have
    (``--detector-weights``, ``Segmenter.from_bundle(detector_weights=...)``, ``--detector_file``),
    it runs the real network, box coding, selection and conversion back to pixels; its boxes lie
    about the anchors with scores near 0.6, not on masses (tests/test_shipped_detector.py checks
    what the trained detector finds)."""
    from connected_unets.bundle import open_config, parsed

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        network = parsed(open_config(["detect_inference.yaml"]), "detector_network")
    finally:
        torch.random.set_rng_state(state)
    with torch.no_grad():
        network.classification_head.cls_logits.bias.zero_()
    path = tmp_path_factory.mktemp("detector_weights") / "detector.pt"
    torch.save(network.state_dict(), path)
    return path


def threshold_admitting(scores: Sequence[float], at_most: int) -> float:
    """A score threshold that lets through between 1 and ``at_most`` of ``scores`` (the best ones):
    the midpoint below the last of them, where the next score is lower by more than rounding
    (the same network on another thread count may differ in the 7th digit). Keeps the detections
    a test segments few (each costs the Segmenter a second or so on one CPU thread)."""
    ranked = sorted((float(s) for s in scores), reverse=True)
    if not ranked:
        raise ValueError("no scores to set a threshold among")
    for count in range(min(at_most, len(ranked)), 0, -1):
        if count == len(ranked) or ranked[count - 1] - ranked[count] > 1e-4:
            return (ranked[count - 1] + (ranked[count] if count < len(ranked) else 0.0)) / 2
    raise ValueError(f"the best {at_most} scores are (nearly) tied: {ranked[: at_most + 1]}")


@pytest.fixture(scope="module")
def one_torch_thread():
    """In-process torch on one thread, like the subprocesses: small tensors run faster and do not
    fight other jobs for the 2 cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextmanager
def kept_rng_state() -> Iterator[None]:
    """Bundle runs in-process call set_determinism(seed) in `initialize`; keep other tests' random state."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
