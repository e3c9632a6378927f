"""The Connected models: two cascaded U-Nets, decoder 1 feeding encoder 2 at every scale.

Ports of ``get_wnet`` (Connected-UNets, ``Connected_Unets_segmnetation.py``), ``get_awnet``
(Connected-AUNets, ``Connected_AUnets_segmentation.py``) and ``get_rwnet`` (Connected-ResUNets,
``Connected_Residual_Unets_segmentation.py``) in the authors' code (GitHub
``AsmaBaccouche/Connected-Unets-and-more``), for Baccouche et al., "Connected-UNets: a deep learning
architecture for breast mass segmentation", npj Breast Cancer 7, 151 (2021). Layer by layer, with
parameter counts: ``docs/architecture.md``; departures: ``docs/deviations.md``.

The three classes take the arguments of every network of the package (``in_channels``,
``out_channels``, ``features``; see :mod:`connected_unets.networks`) and

- ``aspp``: True (default) builds the authors' ASPP transitions; False the paper's ablation
  without ASPP, a two-unit Conv-ReLU-BN block in place of each ASPP. Must be a bool.

Their logits are the second U-Net's; there is no output of the first U-Net.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import BlockFactory, aspp, check_spatial_size, conv_block, keras_init, residual_block
from .parts import AttentionDecoder, ConnectedEncoder, Encoder, UpConcatDecoder


class _ConnectedUNets(nn.Module):
    """U-Net 1 -> its decoder outputs feed encoder 2 -> decoder 2 (encoder-2 skips only) -> transition -> head.

    Transitions are the authors' ASPPs: at both bottlenecks (replacing the bottleneck conv block,
    so the bottleneck is linear) and before the head; ``transition_after_decoder1`` adds the fourth
    one of Connected-AUNets on decoder 1's output. ``aspp=False`` is the paper's ablation: plain
    Conv-ReLU-BN blocks where the ASPPs were.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output logits.
        features: channels of the levels of both encoders and both decoders, finest first; the
            bottlenecks have twice the last.
        block: block factory of every encoder and decoder level (both U-Nets and encoder 2).
        decoder: decoder class of both U-Nets (:class:`UpConcatDecoder` or :class:`AttentionDecoder`).
        use_aspp: ASPP transitions (True) or two-unit Conv-ReLU-BN blocks (False).
        transition_after_decoder1: add a transition on decoder 1's finest output (Connected-AUNets).

    Submodules, in forward order: ``encoder1``, ``bottleneck1``, ``decoder1``,
    ``decoder1_transition`` (``nn.Identity`` unless ``transition_after_decoder1``), ``encoder2``
    (a :class:`ConnectedEncoder`), ``bottleneck2``, ``decoder2``, ``output_transition``, ``head``
    (the last layer, a 1x1 Conv2d).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        features: Sequence[int],
        block: BlockFactory,
        decoder: type[UpConcatDecoder] | type[AttentionDecoder],
        use_aspp: bool,
        transition_after_decoder1: bool,
    ) -> None:
        super().__init__()
        features = tuple(features)
        self.divisor = 2 ** len(features)
        self.network_name = type(self).__name__
        transition = aspp if use_aspp else conv_block
        bottom = 2 * features[-1]
        self.encoder1 = Encoder(in_channels, features, block)
        self.bottleneck1 = transition(features[-1], bottom)
        self.decoder1 = decoder(bottom, features, block)
        self.decoder1_transition = transition(features[0], features[0]) if transition_after_decoder1 else nn.Identity()
        self.encoder2 = ConnectedEncoder(features, block)
        self.bottleneck2 = transition(features[-1], bottom)
        self.decoder2 = decoder(bottom, features, block)
        self.output_transition = transition(features[0], features[0])
        self.head = nn.Conv2d(features[0], out_channels, 1)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, out_channels, H, W); H and W multiples of 2**len(features)."""
        check_spatial_size(x, self.divisor, self.network_name)
        skips, x = self.encoder1(x)
        decoder1 = self.decoder1(self.bottleneck1(x), skips)
        decoder1[-1] = self.decoder1_transition(decoder1[-1])
        skips, x = self.encoder2(decoder1[::-1])
        decoder2 = self.decoder2(self.bottleneck2(x), skips)
        return self.head(self.output_transition(decoder2[-1]))


class ConnectedUNets(_ConnectedUNets):
    """The authors' ``get_wnet``: two UNets with Conv-ReLU-BN blocks and 3 ASPPs.

    Both U-Nets have UNet's Conv-ReLU-BN levels and ConvTranspose 2x2 decoders; each bottleneck is
    an ASPP (256 -> 512 channels), a third ASPP (32 -> 32) precedes the 1x1 head, and encoder 2 is
    fed by decoder 1's outputs at every scale (:class:`ConnectedEncoder`). 20,036,545 trainable
    parameters with the defaults.

    Args:
        in_channels, out_channels, features, aspp: as for every Connected model (module docstring).

    Shapes: (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` -> the second
    U-Net's logits (B, out_channels, H, W).

    Example::

        >>> net = ConnectedUNets()  # as get_network("connected_unets")
        >>> net(torch.rand(2, 3, 256, 256)).shape
        torch.Size([2, 1, 256, 256])
        >>> ablation = ConnectedUNets(aspp=False)  # no ASPP
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
        aspp: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, features, conv_block, UpConcatDecoder, aspp, False)


class ConnectedAUNets(_ConnectedUNets):
    """The authors' ``get_awnet``: two attention U-Nets (with BN in the decoders, unlike the baseline
    AUNet) and 4 ASPPs, one of them on decoder 1's output before it feeds encoder 2.

    Both decoders are attention-gated (:class:`AttentionDecoder`, decoder 2's gates over encoder 2's
    skips) with Conv-ReLU-BN levels; the ASPPs sit at both bottlenecks (256 -> 512), on decoder 1's
    finest output (32 -> 32; encoder 2's first level reads the ASPP'd features) and before the head
    (32 -> 32). 26,581,289 trainable parameters with the defaults.

    Args:
        in_channels, out_channels, features, aspp: as for every Connected model (module docstring).

    Shapes: (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` -> the second
    U-Net's logits (B, out_channels, H, W).

    Example::

        >>> net = ConnectedAUNets(in_channels=1)
        >>> net(torch.rand(2, 1, 256, 256)).shape
        torch.Size([2, 1, 256, 256])
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
        aspp: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, features, conv_block, AttentionDecoder, aspp, True)


class ConnectedResUNets(_ConnectedUNets):
    """The authors' ``get_rwnet``: two residual U-Nets with full pre-activation squeeze-excite blocks
    (unlike the baseline ResUNet) and 3 ASPPs.

    Every level of both U-Nets and of encoder 2 is a pre-activation ``resnet_block``
    (BN -> ReLU -> Conv3x3 -> BN -> ReLU -> Conv3x3, Conv1x1 + BN shortcut, add, squeeze-excite);
    ConvTranspose 2x2 decoders; ASPPs at both bottlenecks (256 -> 512) and before the head
    (32 -> 32). The bundle's default network and the paper's best model. 20,697,063 trainable
    parameters with the defaults.

    Args:
        in_channels, out_channels, features, aspp: as for every Connected model (module docstring);
            every entry of ``features`` must be at least 8 (the squeeze-excite's reduction ratio),
            else a ValueError is raised.

    Shapes: (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` -> the second
    U-Net's logits (B, out_channels, H, W).

    Example::

        >>> net = ConnectedResUNets()  # as get_network("connected_resunets")
        >>> logits = net(torch.rand(2, 3, 256, 256))
        >>> logits.shape
        torch.Size([2, 1, 256, 256])
        >>> mask = torch.sigmoid(logits) > 0.5
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
        aspp: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, features, residual_block, UpConcatDecoder, aspp, False)
