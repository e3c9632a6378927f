"""The three single U-Net baselines: UNet, AUNet and ResUNet.

Ports of ``get_unet``, ``get_aunet`` and ``get_runet`` in the authors' ``Basic_Unet_segmnetation.py``,
``Basic_AUnet_segmnetation.py`` and ``Basic_ResUnet_segmnetation.py`` (GitHub
``AsmaBaccouche/Connected-Unets-and-more``), the baselines of Baccouche et al., "Connected-UNets: a
deep learning architecture for breast mass segmentation", npj Breast Cancer 7, 151 (2021). Layer by
layer, with parameter counts: ``docs/architecture.md``; departures: ``docs/deviations.md``.

The three classes take the arguments of every network of the package (``in_channels``,
``out_channels``, ``features``; see :mod:`connected_unets.networks`), and nothing else.
"""

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
    """Encoder -> bottleneck (2 x features[-1] channels) -> decoder -> 1x1 head producing logits.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output logits.
        features: channels of the encoder levels, finest first; the bottleneck has twice the last.
        encoder_block: block factory of the encoder levels.
        bottleneck_block: block factory of the bottleneck (features[-1] -> 2 * features[-1]).
        decoder: decoder class (:class:`UpConcatDecoder` or :class:`AttentionDecoder`).
        decoder_block: block factory of the decoder levels.

    Submodules: ``encoder``, ``bottleneck``, ``decoder``, ``head`` (the last layer, a 1x1 Conv2d).
    """

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
    """The authors' ``get_unet``: Conv-ReLU-BN blocks, ConvTranspose 2x2 up-sampling.

    Four levels of two Conv3x3 -> ReLU -> BN units (32, 64, 128, 256 channels) with max pooling, a
    512-channel bottleneck of the same units, a decoder of ConvTranspose 2x2 stride 2,
    ``concat[up, skip]`` and two units per level, and a 1x1 head. 7,765,985 trainable parameters
    with the defaults.

    Args:
        in_channels, out_channels, features: as for every network (:mod:`connected_unets.networks`).

    Shapes: (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` -> logits
    (B, out_channels, H, W).

    Example::

        >>> net = UNet()  # as get_network("unet")
        >>> net(torch.rand(2, 3, 256, 256)).shape
        torch.Size([2, 1, 256, 256])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, features: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__(in_channels, out_channels, features, conv_block, conv_block, UpConcatDecoder, conv_block)


class AUNet(_SingleUNet):
    """The authors' ``get_aunet``: attention-gated decoder; no BN in the bottleneck or decoder convs.

    UNet's encoder (Conv-ReLU-BN units); a bottleneck of two Conv3x3 -> ReLU units without BN; at
    every decoder level a gating signal (Conv1x1 to twice the channels + BN + ReLU) of the previous
    output drives an attention gate over the encoder skip, the previous output is up-sampled by a
    ReLU ConvTranspose 3x3 stride 2 and concatenated with the gated skip, then two Conv-ReLU units
    without BN. Keeps the authors' 128-filter up-convolution at the 64-channel level.
    11,015,237 trainable parameters with the defaults.

    Args:
        in_channels, out_channels, features: as for every network (:mod:`connected_unets.networks`).

    Shapes: (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` -> logits
    (B, out_channels, H, W).

    Example::

        >>> net = AUNet(in_channels=1)
        >>> net(torch.rand(2, 1, 256, 256)).shape
        torch.Size([2, 1, 256, 256])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, features: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__(
            in_channels, out_channels, features, conv_block, conv_block_no_bn, AttentionDecoder, conv_block_no_bn
        )


class ResUNet(_SingleUNet):
    """The authors' ``get_runet``: residual squeeze-excite blocks without BN on the residual path,
    a Conv-ReLU (no BN) bottleneck and ConvTranspose 2x2 up-sampling.

    Encoder and decoder levels are the baseline ``resnet_block`` (ReLU -> Conv3x3 -> ReLU ->
    Conv3x3, plus a Conv1x1 + BN shortcut, add, squeeze-excite); the bottleneck is two Conv3x3 ->
    ReLU units without BN; the decoder is UNet's (ConvTranspose 2x2, ``concat[up, skip]``).
    8,023,681 trainable parameters with the defaults.

    Args:
        in_channels, out_channels, features: as for every network (:mod:`connected_unets.networks`);
            every entry of ``features`` must be at least 8 (the squeeze-excite's reduction ratio),
            else a ValueError is raised.

    Shapes: (B, in_channels, H, W), H and W multiples of ``2 ** len(features)`` -> logits
    (B, out_channels, H, W).

    Example::

        >>> net = ResUNet(features=(16, 32, 64, 128))  # a smaller ResUNet, same depth
        >>> net(torch.rand(2, 3, 128, 128)).shape
        torch.Size([2, 1, 128, 128])
    """

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
