"""The Connected models: two cascaded U-Nets, decoder 1 feeding encoder 2 at every scale (original.md §1.6-1.7)."""

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
    """The authors' ``get_wnet``: two UNets with Conv-ReLU-BN blocks and 3 ASPPs."""

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
    AUNet) and 4 ASPPs, one of them on decoder 1's output before it feeds encoder 2."""

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
    (unlike the baseline ResUNet) and 3 ASPPs."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
        aspp: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, features, residual_block, UpConcatDecoder, aspp, False)
