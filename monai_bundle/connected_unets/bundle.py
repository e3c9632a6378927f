"""The one catalogue of the bundle: where it is, its networks and their weights files, devices, configs.

Every front door (CLI, Slicer, MONAI Label, scripts, tests) and the configs' defaults read these
facts here, and nowhere else lists networks or weights files. Importing this module costs no torch
or MONAI import (the Slicer panel lists networks before its dependencies are installed); the
functions that need them import them when called.

Where the bundle is, in order: ``$CONNECTED_UNETS_BUNDLE``; the source checkout this package sits in
(``monai_bundle/``, also an editable install); the copy a wheel installs as the data package
``connected_unets_bundle`` (``pip install .`` puts ``configs/``, ``models/``, ``sample_data/`` there).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_ENV",
    "COMMON_CONFIG",
    "DEFAULT_NETWORK",
    "DETECTOR_WEIGHTS",
    "NETWORKS",
    "NetworkInfo",
    "PEERS",
    "base_network",
    "bundle_dir",
    "check_flags",
    "config_files",
    "detector_weights_file",
    "display_name",
    "connected_networks",
    "network_names",
    "no_detector_weights",
    "open_config",
    "open_workflow",
    "parsed",
    "user_error",
    "resolve_device",
    "shipped_networks",
    "shipped_weights",
    "weights_file",
    "weights_name",
]

#: Environment variable naming a bundle folder that overrides the installed one.
BUNDLE_ENV = "CONNECTED_UNETS_BUNDLE"
#: The data package a wheel installs the bundle's configs, weights and sample data as.
DATA_PACKAGE = "connected_unets_bundle"
#: Merged first under every config: the network, the ROI pipeline and the values they share.
COMMON_CONFIG = "common.yaml"


@dataclass(frozen=True)
class NetworkInfo:
    """One network: its registry name, the name people read, its weights file, and for a Connected
    network the single U-Net it joins two of (``base``; None for the single ones)."""

    name: str
    display: str
    weights: str  # file name in the bundle's models/ folder
    base: str | None = None


#: The paper's six networks, in the order of its tables; the last one is the product's default.
#: ``connected_unets.networks.NETWORKS`` maps these names (and only these) to their classes.
NETWORKS: dict[str, NetworkInfo] = {
    info.name: info
    for info in (
        NetworkInfo("unet", "UNet", "unet.pt"),
        NetworkInfo("aunet", "AUNet", "aunet.pt"),
        NetworkInfo("resunet", "ResUNet", "resunet.pt"),
        NetworkInfo("connected_unets", "Connected-UNets", "connected_unets.pt", base="unet"),
        NetworkInfo("connected_aunets", "Connected-AUNets", "connected_aunets.pt", base="aunet"),
        NetworkInfo("connected_resunets", "Connected-ResUNets", "model.pt", base="resunet"),  # MONAI's name for a bundle's model
    )
}
DEFAULT_NETWORK = "connected_resunets"
#: Peers trained and scored by the same configs for comparison, each built by its own config
#: (``configs/<name>.yaml`` merged after ``train.yaml``), not by ``connected_unets.networks``.
PEERS: dict[str, NetworkInfo] = {info.name: info for info in (NetworkInfo("dynunet", "DynUNet", "dynunet.pt"),)}
#: The mass detector's weights file in models/ (configs/detect_train.yaml, detect_inference.yaml).
DETECTOR_WEIGHTS = "detector.pt"


def _is_bundle(path: Path) -> bool:
    return (path / "configs" / "inference.yaml").is_file()


def bundle_dir(path: str | Path | None = None) -> Path:
    """The bundle folder: ``path`` when given, else the first of ``$CONNECTED_UNETS_BUNDLE``, the
    source checkout and the installed data package that holds ``configs/inference.yaml``."""
    if path is not None:
        candidate = Path(path)
        if not _is_bundle(candidate):
            raise FileNotFoundError(f"{candidate}: not a Connected-UNets bundle (no configs/inference.yaml)")
        return candidate.resolve()
    if os.environ.get(BUNDLE_ENV):  # asked for by name: no silent fall-back to another bundle
        named = Path(os.environ[BUNDLE_ENV])
        if not _is_bundle(named):
            raise FileNotFoundError(f"{named}: ${BUNDLE_ENV} names no Connected-UNets bundle (no configs/inference.yaml)")
        return named.resolve()
    tried = [Path(__file__).resolve().parents[1]]
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        tried += [Path(p) for p in spec.submodule_search_locations]
    for candidate in tried:
        if _is_bundle(candidate):
            return candidate.resolve()
    raise FileNotFoundError(f"Connected-UNets bundle not found (looked in {', '.join(map(str, tried))}); set {BUNDLE_ENV}")


def network_names() -> tuple[str, ...]:
    return tuple(NETWORKS)


def connected_networks() -> tuple[str, ...]:
    """The Connected networks (two U-Nets joined), in the catalogue's order."""
    return tuple(name for name, info in NETWORKS.items() if info.base is not None)


def base_network(name: str) -> str:
    """The single U-Net network ``name`` builds on: ``resunet`` for ``connected_resunets``, a single
    network itself for a single one."""
    return _info(name).base or name


def display_name(name: str) -> str:
    """``Connected-ResUNets`` for ``connected_resunets`` (a peer's too); an unknown name is returned as it is."""
    info = NETWORKS.get(name) or PEERS.get(name)
    return info.display if info is not None else name


def _info(name: str) -> NetworkInfo:
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    return NETWORKS[name]


def weights_name(name: str) -> str:
    """The file name of network ``name``'s weights (``model.pt`` for the default network; a peer's
    ``<name>.pt``)."""
    if name in PEERS:
        return PEERS[name].weights
    return _info(name).weights


def weights_file(name: str, bundle: str | Path | None = None) -> Path:
    """The weights file of network ``name`` in the bundle's ``models/`` folder (it may not exist)."""
    return bundle_dir(bundle) / "models" / weights_name(name)


def detector_weights_file(bundle: str | Path | None = None) -> Path:
    """The mass detector's weights file in the bundle's ``models/`` folder (it may not exist)."""
    return bundle_dir(bundle) / "models" / DETECTOR_WEIGHTS


def no_detector_weights(path: str | Path, instead: str = "give --box") -> str:
    """The one line every front door says when there is no detector to find masses with; ``instead``
    names that door's way of giving boxes by hand."""
    return f"{path}: no detector weights: train them with scripts/train_detector.sh, or {instead}"


def shipped_networks(bundle: str | Path | None = None) -> tuple[str, ...]:
    """The networks whose weights the bundle holds, the default first."""
    names = [n for n in NETWORKS if weights_file(n, bundle).is_file()]
    return tuple(sorted(names, key=lambda n: n != DEFAULT_NETWORK))


def shipped_weights(name: str, bundle: str | Path | None = None) -> Path:
    """The bundle's weights file of network ``name``; a one-line FileNotFoundError naming the file
    and the networks whose weights do ship when it is not there (every front door says this)."""
    weights = weights_file(name, bundle)
    if not weights.is_file():
        shipped = ", ".join(shipped_networks(bundle)) or "none"
        raise FileNotFoundError(f"{weights}: no shipped weights for {display_name(name)} (networks with shipped weights: {shipped}); give a weights file")
    return weights


def resolve_device(device: Any = "auto") -> Any:
    """A ``torch.device`` for ``auto`` (the first CUDA GPU when there is one, else the CPU), ``cpu``,
    ``cuda`` or ``cuda:N``; a one-line ValueError for anything else or a GPU that is not there."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r}: not a device; use auto, cpu, cuda or cuda:N") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: not supported; use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but no CUDA GPU is available; use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return resolved


def config_files(names: Sequence[str], bundle: str | Path | None = None) -> list[Path]:
    """``common.yaml`` followed by the named configs (``inference.yaml``, ``train.yaml``, ...) of the
    bundle, in the order ``monai.bundle run --config_file`` merges them."""
    configs = bundle_dir(bundle) / "configs"
    files = [configs / COMMON_CONFIG, *(configs / n for n in names if n != COMMON_CONFIG)]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"{file}: not found; is {configs.parent} a Connected-UNets bundle?")
    return files


def check_flags(**flags: object) -> None:
    """A one-line ValueError for a yes/no setting that is not a bool: on ``monai.bundle run``'s
    command line ``--resume false`` arrives as the word 'false', which Python takes as true."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ValueError(f"{name} {value!r}: expected True or False (on the command line `--{name} False`; a word would count as true)")


def open_config(names: Sequence[str], bundle: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
    """A MONAI ``ConfigParser`` of ``common.yaml`` + ``names`` with ``bundle_root`` set to the bundle
    and ``overrides`` applied (ids as on the command line, ``validate#box_extra_margin``)."""
    from monai.bundle import ConfigParser

    root = bundle_dir(bundle)
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files(names, root)])
    parser["bundle_root"] = str(root)
    for key, value in dict(overrides or {}).items():
        parser[key] = value
    return parser


def open_workflow(
    names: Sequence[str], bundle: str | Path | None = None, overrides: Mapping[str, Any] | None = None, logging_file: str | bool = False
) -> Any:
    """The MONAI ``ConfigWorkflow`` that ``python -m monai.bundle run --config_file`` builds from
    ``common.yaml`` + ``names`` (with ``metadata.json``), ``bundle_root`` set and ``overrides``
    applied; not yet initialized. ``logging_file=False`` keeps MONAI's logging setup out."""
    import logging

    from monai.bundle import ConfigWorkflow

    root = bundle_dir(bundle)
    quiet = logging.getLogger("monai.bundle.workflows")  # "logging file is False" would be a warning
    level = quiet.level
    quiet.setLevel(logging.ERROR if logging_file is False else level)
    try:
        return ConfigWorkflow(
            config_file=[str(f) for f in config_files(names, root)],
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=logging_file,
            **{"bundle_root": str(root), **dict(overrides or {})},
        )
    finally:
        quiet.setLevel(level)


def user_error(err: BaseException) -> BaseException:
    """The user's mistake behind a config-system error: MONAI wraps what a config expression or
    component raises in RuntimeError("Failed to instantiate ..."); the cause is what to report."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, (ValueError, OSError)):
            return cause
        cause = cause.__cause__
    return err


def parsed(parser: Any, key: str) -> Any:
    """``parser.get_parsed_content(key)``, re-raising a one-line ValueError/OSError of ours that the
    config system wrapped (e.g. a weights file of another network) as itself."""
    try:
        return parser.get_parsed_content(key)
    except RuntimeError as err:
        cause = user_error(err)
        if cause is err:
            raise
        raise cause from None

