"""The Slicer module's engine and dependency checks (no Slicer, no VTK): bundle lookup, the
networks the panel offers, requirement checks, the cached model's error messages and the
background job. Runs in the main venv."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SlicerConnectedUNets"))

from connected_unets import bundle as catalogue  # noqa: E402
from SlicerConnectedUNetsLib import dependencies, engine  # noqa: E402
from SlicerConnectedUNetsLib.engine import BackgroundJob, Cancelled, InputError, ModelCache  # noqa: E402

BUNDLE = REPO / "monai_bundle"


def _bundle(path: Path, weights: tuple[str, ...] = ()) -> Path:
    """A bundle folder as the catalogue recognises one, with empty weights files of ``weights``."""
    (path / "configs").mkdir(parents=True)
    (path / "configs" / "inference.yaml").write_text("network_name: unet\n")
    (path / "models").mkdir()
    for name in weights:
        (path / "models" / catalogue.weights_name(name)).write_bytes(b"")
    return path


# --------------------------------------------------------------------------------------------
# Bundle and network choices


def test_module_bundles_are_the_installed_copy_then_the_checkout(tmp_path):
    module = tmp_path / "ext" / "SlicerConnectedUNets"
    assert engine.module_bundles(module) == [module / engine.BUNDLE_DIRNAME, tmp_path / "ext" / "monai_bundle"]


def test_the_repository_module_finds_the_repository_bundle(monkeypatch):
    monkeypatch.delenv(catalogue.BUNDLE_ENV, raising=False)
    assert engine.find_bundle(REPO / "SlicerConnectedUNets") == BUNDLE.resolve()


def test_find_bundle_follows_the_catalogue_environment_variable(tmp_path, monkeypatch):
    chosen = _bundle(tmp_path / "trained")
    monkeypatch.setenv(catalogue.BUNDLE_ENV, str(chosen))
    assert engine.find_bundle(REPO / "SlicerConnectedUNets") == chosen.resolve()
    monkeypatch.setenv(catalogue.BUNDLE_ENV, str(tmp_path / "no bundle here"))  # named, so no silent fall-back
    with pytest.raises(engine.InputError, match="names no Connected-UNets bundle"):
        engine.find_bundle(REPO / "SlicerConnectedUNets")


def test_the_panel_offers_the_shipped_networks_default_first():
    offered = engine.offered_networks(BUNDLE)
    assert [name for name, _ in offered] == list(catalogue.shipped_networks(BUNDLE))
    assert offered[0] == (catalogue.DEFAULT_NETWORK, catalogue.display_name(catalogue.DEFAULT_NETWORK))


def test_a_weights_file_offers_every_network(tmp_path):
    bundle = _bundle(tmp_path / "b", weights=("aunet",))
    assert engine.offered_networks(bundle) == [("aunet", "AUNet")]
    every = engine.offered_networks(bundle, weights=tmp_path / "own.pt")
    assert sorted(name for name, _ in every) == sorted(catalogue.NETWORKS)
    assert every[0][0] == catalogue.DEFAULT_NETWORK
    assert dict(every) == {name: info.display for name, info in catalogue.NETWORKS.items()}


def test_a_bundle_without_weights_still_offers_every_network(tmp_path):
    """An empty list would leave the panel nothing to pick; the run then says which file is missing."""
    offered = engine.offered_networks(_bundle(tmp_path / "b"))
    assert sorted(name for name, _ in offered) == sorted(catalogue.NETWORKS) and offered[0][0] == catalogue.DEFAULT_NETWORK


# --------------------------------------------------------------------------------------------
# Dependencies


def test_missing_requirements():
    present = "pytest>=1"
    assert dependencies.missing_requirements([present]) == []
    assert dependencies.missing_requirements(["pytest<1", "no-such-package-connected-unets-test>=1", present]) == [
        "pytest<1",
        "no-such-package-connected-unets-test>=1",
    ]


def test_read_requirements_drops_comments(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\nmonai==1.6.1  # pinned\n\nnumpy>=1.26,<3\n")
    assert dependencies.read_requirements(path) == ["monai==1.6.1", "numpy>=1.26,<3"]


def test_the_module_needs_torch_and_its_requirements_file():
    assert dependencies.REQUIREMENTS_FILE == REPO / "SlicerConnectedUNets" / "Resources" / "requirements.txt"
    assert dependencies.TORCH == "torch" + dependencies.TORCH_REQUIREMENT


def test_nothing_is_missing_here_so_nothing_is_asked_or_installed():
    """The main venv installs the package, so torch and every module requirement are satisfied."""
    assert dependencies.missing() == []
    steps: list[str] = []
    dependencies.ensure_installed(confirm=lambda text, title: pytest.fail(f"asked: {title}"), progress=steps.append)
    assert steps == []


def test_a_declined_install_installs_nothing_and_says_what_is_missing(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pytest>=1\nno-such-package-connected-unets-test>=1\n")
    questions: list[tuple[str, str]] = []
    steps: list[str] = []

    def decline(text: str, title: str) -> bool:
        questions.append((text, title))
        return False

    with pytest.raises(InputError, match="no-such-package-connected-unets-test>=1 .the installation was cancelled"):
        dependencies.ensure_installed(confirm=decline, progress=steps.append, requirements_file=requirements)
    assert [title for _, title in questions] == ["Install Python packages"]
    assert "no-such-package-connected-unets-test>=1" in questions[0][0] and "pytest" not in questions[0][0]
    assert steps == []


def test_offline_message_names_the_way_out():
    message = dependencies.offline_message("the Python packages", OSError("Name or service not known\nmore"), "req.txt")
    assert "Offline?" in message and "pip download" in message and "--no-index" in message and "\n" not in message


# --------------------------------------------------------------------------------------------
# Cached model and background job


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
    assert cache.describe() == "no model loaded"
    first = cache.get(model="unet", device="cpu", weights=weights)
    assert cache.get(model="unet", device="cpu", weights=weights) is first and cache.is_loaded("unet", "cpu", None, weights)
    assert cache.describe() == "UNet on cpu"
    second = cache.get(model="unet", device="cpu", weights=weights, threshold=0.3)
    assert second is not first and cache.current is second and not cache.is_loaded("unet", "cpu", None, weights)


def test_no_model_name_is_the_bundle_default():
    cache = ModelCache()
    segmenter = cache.get(device="cpu")  # the shipped weights of the default network
    assert cache.is_loaded(catalogue.DEFAULT_NETWORK, "cpu") and cache.get(catalogue.DEFAULT_NETWORK, "cpu") is segmenter
    assert cache.describe() == f"{catalogue.display_name(catalogue.DEFAULT_NETWORK)} on cpu"


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
