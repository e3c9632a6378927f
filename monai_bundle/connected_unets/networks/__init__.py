"""The six networks of the paper, faithful to the authors' Keras code, and a name -> class registry."""

from __future__ import annotations

from typing import Any

from torch import nn

from .connected import ConnectedAUNets, ConnectedResUNets, ConnectedUNets
from .single import AUNet, ResUNet, UNet

NETWORKS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "aunet": AUNet,
    "resunet": ResUNet,
    "connected_unets": ConnectedUNets,
    "connected_aunets": ConnectedAUNets,
    "connected_resunets": ConnectedResUNets,
}


def get_network(name: str, **kwargs: Any) -> nn.Module:
    """Build a network by its name (``unet``, ..., ``connected_resunets``) with constructor kwargs."""
    try:
        network = NETWORKS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
    return network(**kwargs)


__all__ = ["NETWORKS", "AUNet", "ConnectedAUNets", "ConnectedResUNets", "ConnectedUNets", "ResUNet", "UNet", "get_network"]
