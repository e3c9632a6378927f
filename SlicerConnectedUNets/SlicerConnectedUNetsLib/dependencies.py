"""What the module needs in Slicer's Python, what is missing, and installing it on first use.

Modelled on SlicerMONAIAuto3DSeg's ``dependency_handler``: torch comes from the PyTorch extension
(``PyTorchUtils`` picks the build that fits the GPU driver, which pip would not), the rest from
``Resources/requirements.txt`` with ``slicer.util.pip_install``; each after asking, each step shown
in the panel. Checking needs neither Slicer nor torch, so the tests run it in a plain venv; only an
install imports ``PyTorchUtils`` and ``slicer``, inside Slicer.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .engine import InputError, one_line

#: monai 1.6.1 needs torch >= 2.8; PyTorchUtils installs the newest build that fits the driver.
TORCH_REQUIREMENT = ">=2.8"
TORCH = f"torch{TORCH_REQUIREMENT}"
#: Everything else, pinned as in pyproject.toml; numpy is not in it, Slicer's own stays.
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"

#: ``confirm(text, title) -> bool``: asks before an install (``slicer.util.confirmOkCancelDisplay``).
Confirm = Callable[[str, str], bool]
#: ``progress(text)``: shows an install step in the panel.
Progress = Callable[[str], None]


def read_requirements(path: str | Path = REQUIREMENTS_FILE) -> list[str]:
    """Requirement lines of a requirements.txt (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def _requirement_parser() -> Any:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - Slicer's Python has packaging through pip at least
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(requirements: Sequence[str]) -> list[str]:
    """The requirements that are not installed, or installed in a version outside their specifier."""
    parse = _requirement_parser()
    missing = []
    for line in requirements:
        requirement = parse(line)
        version = installed_version(requirement.name)
        if version is None or (requirement.specifier and not requirement.specifier.contains(version, prereleases=True)):
            missing.append(line)
    return missing


def missing(requirements_file: str | Path = REQUIREMENTS_FILE) -> list[str]:
    """What the module needs and Slicer's Python lacks: ``torch>=2.8`` first, then requirements.txt."""
    return missing_requirements([TORCH, *read_requirements(requirements_file)])


def offline_message(what: str, err: BaseException, requirements_file: str | Path | None = None) -> str:
    """The panel's message when an install failed, most often because the computer is offline."""
    hint = (
        f"on a computer with internet, run 'PythonSlicer -m pip download -d wheels -r {requirements_file}', "
        f"copy the wheels folder here and run 'PythonSlicer -m pip install --no-index --find-links wheels -r {requirements_file}'"
        if requirements_file
        else "install it on a computer with internet access, or copy the packages into Slicer's Python"
    )
    return f"Could not install {what} ({one_line(err)}). Offline? {hint}; see the module README (offline use)."


def ensure_installed(confirm: Confirm | None, progress: Progress, requirements_file: str | Path = REQUIREMENTS_FILE) -> None:
    """Install what :func:`missing` lists, asking first (``confirm=None``: without asking, for the
    self-test). InputError with the way out when it cannot be installed: no PyTorch extension,
    torch too old, cancelled, offline."""
    needed = missing(requirements_file)
    if not needed:
        return
    if TORCH in needed:
        _install_torch(confirm, progress)
    packages = [line for line in needed if line != TORCH]
    if packages:
        _install_packages(packages, confirm, progress, requirements_file)
    importlib.invalidate_caches()
    still = missing(requirements_file)
    if still:
        raise InputError(f"Still missing after the installation: {', '.join(still)}; restart Slicer and try again")
    progress("Dependencies installed.")


def _install_torch(confirm: Confirm | None, progress: Progress) -> None:
    version = installed_version("torch")
    if version is not None:  # replacing it could break other extensions: the user decides, in PyTorch Utils
        raise InputError(
            f"PyTorch {version} is too old (need {TORCH}): "
            "uninstall and reinstall it in the 'PyTorch Utils' module, restart Slicer"
        )
    try:
        import PyTorchUtils
    except ModuleNotFoundError as err:
        raise InputError(
            "This module needs the 'PyTorch' extension: install it in the Extensions Manager, restart Slicer, try again"
        ) from err
    question = (
        "Connected-UNets needs PyTorch. Install it now? (a download of up to a few GB; the build that fits "
        "your GPU driver is chosen automatically, or the CPU build when there is no NVIDIA GPU)"
    )
    if confirm is not None and not confirm(question, "Install PyTorch"):
        raise InputError("PyTorch is not installed: the installation was cancelled")
    progress("Installing PyTorch (up to a few GB, this can take minutes; details in the Python console)...")
    import slicer

    try:
        with slicer.util.WaitCursor():
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT)
    except Exception as err:  # noqa: BLE001 - pip / network errors
        raise InputError(offline_message("PyTorch", err)) from err
    if torch is None:
        raise InputError("PyTorch is not installed: the installation was cancelled")


def _install_packages(packages: Sequence[str], confirm: Confirm | None, progress: Progress, requirements_file: str | Path) -> None:
    question = (
        "Connected-UNets needs these Python packages in Slicer's Python:\n\n"
        + "\n".join(packages)
        + "\n\nInstall them now (pip, from the internet)?"
    )
    if confirm is not None and not confirm(question, "Install Python packages"):
        raise InputError("Python packages missing: " + ", ".join(packages) + " (the installation was cancelled)")
    progress(f"Installing {', '.join(packages)} with pip (details in the Python console)...")
    import slicer

    try:
        with slicer.util.WaitCursor():
            slicer.util.pip_install(list(packages))
    except Exception as err:  # noqa: BLE001 - pip / network errors
        raise InputError(offline_message("the Python packages", err, requirements_file)) from err
