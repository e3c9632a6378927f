"""The six networks of the paper, faithful to the authors' Keras code, and a name -> class registry.

The names, the Connected ones and their display names are the catalogue's
(:data:`connected_unets.bundle.NETWORKS`); :data:`NETWORKS` here maps exactly those names to classes.

Baccouche et al., npj Breast Cancer 7, 151 (2021); the authors' code is GitHub
``AsmaBaccouche/Connected-Unets-and-more``. What each network is made of, the authors' function
behind each class and the parameter counts: ``docs/architecture.md``.

Every network takes these constructor arguments (the Connected models also ``aspp``, see
:mod:`.connected`):

- ``in_channels``: number of input channels. Defaults to 3 (the authors' grayscale ROI replicated
  to three channels; the bundle's pipeline does the same).
- ``out_channels``: number of output channels (logit maps). Defaults to 1 (mass vs background).
- ``features``: channels of the encoder levels (of each U-Net), finest first; one 2x2 max pooling
  per level and a bottleneck of ``2 * features[-1]`` channels. Defaults to ``(32, 64, 128, 256)``,
  the authors' sizes (512-channel bottlenecks), for which ``docs/architecture.md`` gives the
  parameter counts. The residual networks need every entry to be at least 8 (the squeeze-excite's
  reduction ratio), else a ValueError is raised.

and maps an input (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` (16 by
default; anything else, or a tensor that is not 4-D, raises a one-line ValueError naming the
network and the size), to logits (B, out_channels, H, W), no sigmoid (apply ``torch.sigmoid`` and
a threshold for a mask).

The CycleGAN's networks of the synthesis step (:class:`ResnetGenerator`, :class:`PatchGANDiscriminator`)
are in :mod:`.cyclegan`; they segment nothing, so they are not in the registry.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import bundle as catalogue
from .connected import ConnectedAUNets, ConnectedResUNets, ConnectedUNets
from .cyclegan import PatchGANDiscriminator, ResnetGenerator
from .single import AUNet, ResUNet, UNet

_CLASSES: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "aunet": AUNet,
    "resunet": ResUNet,
    "connected_unets": ConnectedUNets,
    "connected_aunets": ConnectedAUNets,
    "connected_resunets": ConnectedResUNets,
}
if set(_CLASSES) != set(catalogue.NETWORKS):  # a network added to one and not the other
    raise ImportError(f"connected_unets.networks has classes for {sorted(_CLASSES)}, the catalogue names {sorted(catalogue.NETWORKS)}")
#: name -> class, keyed by the catalogue's names in its order (the paper's tables)
NETWORKS: dict[str, type[nn.Module]] = {name: _CLASSES[name] for name in catalogue.network_names()}
#: the networks that join two U-Nets (they take ``aspp``), the catalogue's
CONNECTED = catalogue.connected_networks()


def set_batch_norm_momentum(network: nn.Module, momentum: float) -> nn.Module:
    """Set the running-statistics momentum of every BatchNorm (PyTorch convention: weight of the new
    batch). The authors' Keras default is 0.01 (Keras 0.99); a short training run needs more, or its
    running statistics stay near their initial values and evaluation-mode outputs are meaningless."""
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
    return network


def get_network(name: str, aspp: bool = True, **kwargs: Any) -> nn.Module:
    """Build a network by its name (``unet``, ..., ``connected_resunets``) with constructor kwargs.

    ``aspp`` only concerns the Connected models (False = the paper's ablation without ASPP); the
    baselines have none, so one config can switch networks without editing other keys.
    """
    key = name.lower()
    if key not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    if not isinstance(aspp, bool):  # e.g. "false" from a command line: a non-empty string is truthy
        raise ValueError(f"aspp must be True or False, got {aspp!r} (on a monai.bundle command line: --use_aspp False)")
    if key in CONNECTED:
        kwargs["aspp"] = aspp
    return NETWORKS[key](**kwargs)


__all__ = ["CONNECTED", "NETWORKS", "set_batch_norm_momentum", "AUNet", "ConnectedAUNets", "ConnectedResUNets", "ConnectedUNets", "ResUNet", "UNet", "get_network", "PatchGANDiscriminator", "ResnetGenerator"]
