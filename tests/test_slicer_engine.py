"""The Slicer module's engine (no Slicer, no VTK): bundle lookup, requirement checks, the cached
model's error messages and the background job. Runs in the main venv."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SlicerConnectedUNets"))

from SlicerConnectedUNetsLib import engine  # noqa: E402
from SlicerConnectedUNetsLib.engine import BackgroundJob, Cancelled, InputError, ModelCache  # noqa: E402


def _bundle(path: Path) -> Path:
    (path / "configs").mkdir(parents=True)
    (path / "configs" / "inference.yaml").write_text("network_name: unet\n")
    return path


def test_find_bundle_prefers_env_then_installed_copy_then_checkout(tmp_path):
    module = tmp_path / "ext" / "SlicerConnectedUNets"
    module.mkdir(parents=True)
    checkout = _bundle(tmp_path / "ext" / "monai_bundle")
    assert engine.find_bundle(module, environ={}) == checkout.resolve()
    installed = _bundle(module / engine.BUNDLE_DIRNAME)
    assert engine.find_bundle(module, environ={}) == installed.resolve()
    chosen = _bundle(tmp_path / "elsewhere")
    assert engine.find_bundle(module, environ={engine.BUNDLE_ENV: str(chosen)}) == chosen.resolve()


def test_find_bundle_says_where_it_looked(tmp_path):
    with pytest.raises(InputError, match=f"bundle not found.*{engine.BUNDLE_ENV}") as info:
        engine.find_bundle(tmp_path / "SlicerConnectedUNets", environ={})
    assert str(tmp_path / "monai_bundle") in str(info.value)


def test_the_repository_module_finds_the_repository_bundle():
    assert engine.find_bundle(REPO / "SlicerConnectedUNets", environ={}) == (REPO / "monai_bundle").resolve()


def test_missing_requirements():
    present = "pytest>=1"
    assert engine.missing_requirements([present]) == []
    assert engine.missing_requirements(["pytest<1", "no-such-package-connected-unets-test>=1", present]) == [
        "pytest<1",
        "no-such-package-connected-unets-test>=1",
    ]


def test_read_requirements_drops_comments(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\nmonai==1.6.1  # pinned\n\nnumpy>=1.26,<3\n")
    assert engine.read_requirements(path) == ["monai==1.6.1", "numpy>=1.26,<3"]


def test_shipped_requirements_are_installed_here():
    """The main venv installs the package, so every module requirement is satisfied in it."""
    requirements = engine.read_requirements(REPO / "SlicerConnectedUNets" / "Resources" / "requirements.txt")
    assert engine.missing_requirements(requirements) == []


def test_offline_message_names_the_way_out():
    message = engine.offline_message("the Python packages", OSError("Name or service not known\nmore"), "req.txt")
    assert "Offline?" in message and "pip download" in message and "--no-index" in message and "\n" not in message


def test_networks_are_the_package_registry():
    from connected_unets.networks import NETWORKS

    assert [name for name, _ in engine.NETWORKS] == list(NETWORKS)


def test_model_cache_turns_package_errors_into_one_line_messages(tmp_path):
    cache = ModelCache()  # the bundle next to the package
    with pytest.raises(InputError, match="weights not found.*Advanced"):
        cache.get(model="unet", device="cpu", weights=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt") as info:
        cache.get(model="unet", device="cpu", weights=bad)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="unknown network 'vnet'"):
        cache.get(model="vnet", device="cpu")
    assert cache.current is None


def test_model_cache_keeps_one_model(tmp_path):
    import torch

    from connected_unets.networks import get_network

    weights = tmp_path / "unet.pt"
    torch.save(get_network("unet", in_channels=3).state_dict(), weights)
    cache = ModelCache()
    first = cache.get(model="unet", device="cpu", weights=weights)
    assert cache.get(model="unet", device="cpu", weights=weights) is first and cache.is_loaded("unet", "cpu", None, weights)
    second = cache.get(model="unet", device="cpu", weights=weights, threshold=0.3)
    assert second is not first and cache.current is second and not cache.is_loaded("unet", "cpu", None, weights)


def test_background_job_result_error_and_cancel():
    job = BackgroundJob(lambda j: (j.report("working"), 42)[1]).start()
    assert job.wait(10) and job.result == 42 and job.error is None and job.status == "working"

    failing = BackgroundJob(lambda j: 1 / 0).start()
    assert failing.wait(10) and isinstance(failing.error, ZeroDivisionError)

    gate = threading.Event()

    def work(j):
        gate.wait(10)
        j.check()
        return "too late"

    cancelled = BackgroundJob(work).start()
    cancelled.cancel()
    gate.set()
    assert cancelled.wait(10) and cancelled.cancelled and isinstance(cancelled.error, Cancelled) and cancelled.result is None
