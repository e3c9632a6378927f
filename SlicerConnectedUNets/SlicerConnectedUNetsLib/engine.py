"""The model side of the Slicer module, free of Slicer, Qt and VTK.

Where the bundle is, which Python packages it needs, one cached ``Segmenter`` (the model stays in
memory between runs, so a new ROI costs one forward pass), one mask per ROI from a single batch,
and a background job that keeps the GUI responsive. ``torch`` and ``connected_unets`` are imported
only when a model is needed, after the dependencies are installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The six networks of the bundle (``connected_unets.networks.NETWORKS``), in the panel's order.
NETWORKS: tuple[tuple[str, str], ...] = (
    ("unet", "UNet"),
    ("aunet", "AUNet"),
    ("resunet", "ResUNet"),
    ("connected_unets", "Connected-UNets"),
    ("connected_aunets", "Connected-AUNets"),
    ("connected_resunets", "Connected-ResUNets"),
)
DEFAULT_NETWORK = "connected_resunets"
#: Device choices of the panel: ``auto`` = the first CUDA GPU when there is one, else the CPU.
DEVICES: tuple[tuple[str, str], ...] = (("auto", "auto"), ("cuda", "GPU (CUDA)"), ("cpu", "CPU"))
#: monai 1.6.1 needs torch >= 2.8; PyTorchUtils installs the newest build that fits the driver.
TORCH_REQUIREMENT = ">=2.8"
#: Environment variable naming a bundle directory that overrides the shipped one.
BUNDLE_ENV = "CONNECTED_UNETS_BUNDLE"
#: Name of the bundle copy that the extension build installs next to the module.
BUNDLE_DIRNAME = "ConnectedUNetsBundle"


class InputError(ValueError):
    """A problem the user can fix (input, dependencies, weights): a one-line message for the panel.

    Raised before anything in the scene changes."""


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# Bundle and dependencies


def candidate_bundles(module_dir: str | Path, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where the bundle may be, in order: ``$CONNECTED_UNETS_BUNDLE``, the copy installed with the
    extension (``<module>/ConnectedUNetsBundle``), the source checkout (``<module>/../monai_bundle``)."""
    environ = os.environ if environ is None else environ
    module_dir = Path(module_dir)
    candidates = [Path(environ[BUNDLE_ENV])] if environ.get(BUNDLE_ENV) else []
    return candidates + [module_dir / BUNDLE_DIRNAME, module_dir.parent / "monai_bundle"]


def find_bundle(module_dir: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """The first candidate that holds ``configs/inference.yaml``; InputError naming all tried."""
    candidates = candidate_bundles(module_dir, environ)
    for candidate in candidates:
        if (candidate / "configs" / "inference.yaml").is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise InputError(f"Connected-UNets bundle not found (looked in {tried}); set {BUNDLE_ENV} to the monai_bundle folder")


def use_bundle_package(bundle_dir: str | Path) -> None:
    """Make ``import connected_unets`` load the bundle's own package, as MONAI bundles put their
    code on ``sys.path``; a package that is already imported (or pip-installed) is left alone."""
    if "connected_unets" in sys.modules:
        return
    bundle = str(Path(bundle_dir))
    if (Path(bundle) / "connected_unets" / "__init__.py").is_file() and bundle not in sys.path:
        sys.path.insert(0, bundle)


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def _requirement_parser() -> Any:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - Slicer's Python has packaging through pip at least
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def missing_requirements(requirements: Sequence[str]) -> list[str]:
    """The requirements that are not installed, or installed in a version outside their specifier."""
    parse = _requirement_parser()
    missing = []
    for line in requirements:
        requirement = parse(line)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            missing.append(line)
    return missing


def offline_message(what: str, err: BaseException, requirements_file: str | Path | None = None) -> str:
    """The panel's message when an install failed, most often because the computer is offline."""
    hint = (
        f"on a computer with internet, run 'PythonSlicer -m pip download -d wheels -r {requirements_file}', "
        f"copy the wheels folder here and run 'PythonSlicer -m pip install --no-index --find-links wheels -r {requirements_file}'"
        if requirements_file
        else "install it on a computer with internet access, or copy the packages into Slicer's Python"
    )
    return f"Could not install {what} ({one_line(err)}). Offline? {hint}; see the module README (offline use)."


# --------------------------------------------------------------------------------------------
# Model: devices, cached Segmenter, one mask per ROI


def describe_devices() -> tuple[bool, str]:
    """(has a CUDA GPU, a short text for the panel: what was found)."""
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return True, f"GPU found: {names[0]}" + (f" (+{len(names) - 1} more)" if len(names) > 1 else "") + f"; torch {torch.__version__}"
    return False, f"no CUDA GPU found: the CPU ({torch.get_num_threads()} threads) will be used; torch {torch.__version__}"


class ModelCache:
    """One loaded ``Segmenter`` kept in memory; reloaded only when model, device, threshold,
    weights or bundle change. A lock lets one job at a time use it."""

    def __init__(self, bundle_dir: str | Path | None = None) -> None:
        self.bundle_dir = None if bundle_dir is None else Path(bundle_dir)
        self.lock = threading.RLock()
        self._key: tuple | None = None
        self._segmenter: Any = None

    def is_loaded(self, model: str = DEFAULT_NETWORK, device: str = "auto", threshold: float | None = None, weights: str | Path | None = None) -> bool:
        return self._segmenter is not None and self._key == self._make_key(model, device, threshold, weights)

    def _make_key(self, model: str, device: str, threshold: float | None, weights: str | Path | None) -> tuple:
        return (model, device, None if threshold is None else float(threshold), None if not weights else str(weights), str(self.bundle_dir))

    def get(self, model: str = DEFAULT_NETWORK, device: str = "auto", threshold: float | None = None, weights: str | Path | None = None) -> Any:
        """The Segmenter for these settings, loaded on first use. InputError with a one-line
        message for missing weights, a wrong weights file, an unknown network or a missing GPU."""
        if model not in dict(NETWORKS):
            raise InputError(f"unknown network {model!r}; choose one of {', '.join(dict(NETWORKS))}")
        key = self._make_key(model, device, threshold, weights)
        with self.lock:
            if self._segmenter is not None and self._key == key:
                return self._segmenter
            if self.bundle_dir is not None:
                use_bundle_package(self.bundle_dir)
            from connected_unets.inference import Segmenter

            self._segmenter, self._key = None, None  # free the previous model before loading
            try:
                segmenter = Segmenter.from_bundle(
                    bundle_dir=self.bundle_dir, model=model, device=device, weights=weights or None, threshold=threshold
                )
            except FileNotFoundError as err:
                raise InputError(
                    f"{one_line(err)}. Choose a weights file under 'Advanced', or put it into the bundle's models folder"
                ) from err
            except ValueError as err:
                raise InputError(one_line(err)) from err
            except Exception as err:  # noqa: BLE001 - e.g. a weights file that is no checkpoint at all
                source = weights or f"the {model} weights of the bundle"
                raise InputError(f"{source}: could not load the model ({type(err).__name__}: {one_line(err)})") from err
            self._segmenter, self._key = segmenter, key
            return segmenter

    @property
    def current(self) -> Any:
        """The loaded Segmenter, or None."""
        return self._segmenter

    def clear(self) -> None:
        with self.lock:
            self._segmenter, self._key = None, None


# --------------------------------------------------------------------------------------------
# Background job


class Cancelled(Exception):
    """Raised inside a job when the user pressed Cancel."""


class BackgroundJob:
    """Runs ``work(job)`` in a daemon thread; the GUI polls ``done`` from a timer.

    ``work`` reports progress through ``job.report(text)`` and calls ``job.check()`` between steps
    (raises ``Cancelled`` after ``cancel()``). PyTorch releases the GIL while it computes, so the
    Qt event loop keeps running. A step that is running when Cancel is pressed (one forward pass)
    finishes in the background and its result is thrown away: the scene is not touched.
    """

    def __init__(self, work: Callable[[BackgroundJob], Any], name: str = "Connected-UNets") -> None:
        self._work = work
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.status = "waiting"
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> BackgroundJob:
        self.started_at = time.perf_counter()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._work(self)
        except BaseException as err:  # noqa: BLE001 - handed to the GUI thread
            self.error = err
        finally:
            self.finished_at = time.perf_counter()
            self._done.set()

    def report(self, status: str) -> None:
        self.status = status

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.perf_counter()) - self.started_at

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


def network_label(name: str) -> str:
    return dict(NETWORKS).get(name, name)
