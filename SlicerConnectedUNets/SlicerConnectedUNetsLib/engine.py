"""The model side of the Slicer module, free of Slicer, Qt and VTK.

Where the bundle is, its catalogue of networks (``connected_unets.bundle``), one cached
``Segmenter`` (the model stays in memory between runs, so a new ROI costs one forward pass), and a
background job that keeps the GUI responsive. The catalogue imports neither torch nor MONAI, so the
panel lists networks before the dependencies are installed (``dependencies``); ``torch`` and the
rest of ``connected_unets`` are imported only when a model is needed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

#: Device choices of the panel: ``auto`` = the first CUDA GPU when there is one, else the CPU.
DEVICES: tuple[tuple[str, str], ...] = (("auto", "auto"), ("cuda", "GPU (CUDA)"), ("cpu", "CPU"))
#: Name of the bundle copy that the extension build installs next to the module.
BUNDLE_DIRNAME = "ConnectedUNetsBundle"


class InputError(ValueError):
    """A problem the user can fix (input, dependencies, weights): a one-line message for the panel.

    Raised before anything in the scene changes."""


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# Bundle and its catalogue


def module_bundles(module_dir: str | Path) -> list[Path]:
    """Where the bundle that carries the module's code may be, in order: the copy installed with
    the extension (``<module>/ConnectedUNetsBundle``), the source checkout (``<module>/../monai_bundle``)."""
    module_dir = Path(module_dir)
    return [module_dir / BUNDLE_DIRNAME, module_dir.parent / "monai_bundle"]


def use_bundle_package(bundle_dir: str | Path) -> None:
    """Make ``import connected_unets`` load the bundle's own package, as MONAI bundles put their
    code on ``sys.path``; a package that is already imported is left alone."""
    if "connected_unets" in sys.modules:
        return
    bundle = str(Path(bundle_dir))
    if (Path(bundle) / "connected_unets" / "__init__.py").is_file() and bundle not in sys.path:
        sys.path.insert(0, bundle)


def catalogue(bundle_dir: str | Path | None = None) -> ModuleType:
    """``connected_unets.bundle``, the one list of networks and weights files (no torch import),
    from ``bundle_dir``'s own package when none is imported yet."""
    if bundle_dir is not None:
        use_bundle_package(bundle_dir)
    from connected_unets import bundle

    return bundle


def find_bundle(module_dir: str | Path) -> Path:
    """The bundle the module runs: the package comes from the first of :func:`module_bundles`
    that holds one, then the catalogue picks the folder (``$CONNECTED_UNETS_BUNDLE`` when set, else
    the bundle the package sits in). InputError saying where it looked."""
    candidates = module_bundles(module_dir)
    for candidate in candidates:
        if (candidate / "connected_unets" / "__init__.py").is_file():
            use_bundle_package(candidate)
            break
    try:
        return catalogue().bundle_dir()
    except ImportError as err:
        tried = ", ".join(str(c) for c in candidates)
        raise InputError(f"Connected-UNets bundle not found (looked in {tried}): reinstall the extension") from err
    except FileNotFoundError as err:
        raise InputError(one_line(err)) from err


def offered_networks(bundle_dir: str | Path | None = None, weights: str | Path | None = None) -> list[tuple[str, str]]:
    """(name, display name) of the networks the panel offers, the default first: those whose
    weights the bundle ships, as the others cannot run without a weights file; all of them once a
    weights file is chosen (it supplies the weights) or when none ships (a run then says what is missing)."""
    networks = catalogue(bundle_dir)
    names = [] if weights else list(networks.shipped_networks(bundle_dir))
    names = names or sorted(networks.NETWORKS, key=lambda name: name != networks.DEFAULT_NETWORK)
    return [(name, networks.display_name(name)) for name in names]


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
    weights or bundle change. A lock lets one job at a time use it. ``model=None`` is the
    bundle's default network."""

    def __init__(self, bundle_dir: str | Path | None = None) -> None:
        self.bundle_dir = None if bundle_dir is None else Path(bundle_dir)
        self.lock = threading.RLock()
        self._key: tuple | None = None
        self._segmenter: Any = None

    def is_loaded(self, model: str | None = None, device: str = "auto", threshold: float | None = None, weights: str | Path | None = None) -> bool:
        return self._segmenter is not None and self._key == self._make_key(model, device, threshold, weights)

    def _make_key(self, model: str | None, device: str, threshold: float | None, weights: str | Path | None) -> tuple:
        model = model or catalogue(self.bundle_dir).DEFAULT_NETWORK
        return (model, device, None if threshold is None else float(threshold), None if not weights else str(weights), str(self.bundle_dir))

    def get(self, model: str | None = None, device: str = "auto", threshold: float | None = None, weights: str | Path | None = None) -> Any:
        """The Segmenter for these settings, loaded on first use. InputError with a one-line
        message for missing weights, a wrong weights file, an unknown network or a missing GPU."""
        networks = catalogue(self.bundle_dir).NETWORKS
        if model is not None and model not in networks:
            raise InputError(f"unknown network {model!r}; choose one of {', '.join(networks)}")
        key = self._make_key(model, device, threshold, weights)
        model = key[0]
        with self.lock:
            if self._segmenter is not None and self._key == key:
                return self._segmenter
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

    def describe(self) -> str:
        """What ran, for the panel's last line: ``Connected-ResUNets on cpu``."""
        if self._segmenter is None or self._key is None:
            return "no model loaded"
        return f"{catalogue(self.bundle_dir).display_name(self._key[0])} on {self._segmenter.device}"


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
