"""The three single U-Net baselines: UNet, AUNet and ResUNet (original.md §1.3-1.5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import (
    BlockFactory,
    check_spatial_size,
    conv_block,
    conv_block_no_bn,
    keras_init,
    residual_block_no_bn,
)
from .parts import AttentionDecoder, Encoder, UpConcatDecoder


class _SingleUNet(nn.Module):
    """Encoder -> bottleneck (2 x features[-1] channels) -> decoder -> 1x1 head producing logits."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        features: Sequence[int],
        encoder_block: BlockFactory,
        bottleneck_block: BlockFactory,
        decoder: type[UpConcatDecoder] | type[AttentionDecoder],
        decoder_block: BlockFactory,
    ) -> None:
        super().__init__()
        features = tuple(features)
        self.divisor = 2 ** len(features)
        self.network_name = type(self).__name__
        bottom = 2 * features[-1]
        self.encoder = Encoder(in_channels, features, encoder_block)
        self.bottleneck = bottleneck_block(features[-1], bottom)
        self.decoder = decoder(bottom, features, decoder_block)
        self.head = nn.Conv2d(features[0], out_channels, 1)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, out_channels, H, W); H and W multiples of 2**len(features)."""
        check_spatial_size(x, self.divisor, self.network_name)
        skips, x = self.encoder(x)
        return self.head(self.decoder(self.bottleneck(x), skips)[-1])


class UNet(_SingleUNet):
    """The authors' ``get_unet``: Conv-ReLU-BN blocks, ConvTranspose 2x2 up-sampling."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, features: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__(in_channels, out_channels, features, conv_block, conv_block, UpConcatDecoder, conv_block)


class AUNet(_SingleUNet):
    """The authors' ``get_aunet``: attention-gated decoder; no BN in the bottleneck or decoder convs."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, features: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__(
            in_channels, out_channels, features, conv_block, conv_block_no_bn, AttentionDecoder, conv_block_no_bn
        )


class ResUNet(_SingleUNet):
    """The authors' ``get_runet``: residual squeeze-excite blocks without BN on the residual path,
    a Conv-ReLU (no BN) bottleneck and ConvTranspose 2x2 up-sampling."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, features: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__(
            in_channels,
            out_channels,
            features,
            residual_block_no_bn,
            conv_block_no_bn,
            UpConcatDecoder,
            residual_block_no_bn,
        )
