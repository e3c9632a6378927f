"""Encoders and decoders assembled from :mod:`blocks`; every network is a composition of these.

Decoders return the output of every level, deepest first, because the Connected models feed them
into their second encoder. In the shapes below L = ``len(features)`` and level k = 1..L works at
H / 2**(k-1); the networks check that H and W are multiples of 2**L before calling these parts.
Layer-by-layer notes with the authors' tensor names: ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import AttentionGate, BlockFactory, ConvUnit, GatingSignal


class Encoder(nn.Module):
    """One block per level, each followed by 2x2 max pooling. Returns (skips, pooled bottom).

    The contracting path of the authors' model functions (``conv1`` .. ``conv4`` and ``pool1`` ..
    ``pool4`` in ``get_unet``).

    Args:
        in_channels: channels of the input image.
        features: output channels of each level, finest first, e.g. ``(32, 64, 128, 256)``.
        block: block factory ``block(in_channels, out_channels)`` of one level, e.g.
            :func:`~connected_unets.networks.blocks.conv_block`.

    Shapes: ``forward(x)`` takes (B, in_channels, H, W) and returns ``(skips, bottom)``: ``skips[k-1]``
    is level k's block output (B, features[k-1], H / 2**(k-1), W / 2**(k-1)), finest first, and
    ``bottom`` is the last one pooled, (B, features[-1], H / 2**L, W / 2**L).
    """

    def __init__(self, in_channels: int, features: Sequence[int], block: BlockFactory) -> None:
        super().__init__()
        channels = [in_channels, *features]
        self.levels = nn.ModuleList(block(c_in, c_out) for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        return skips, x


class ConnectedEncoder(nn.Module):
    """Encoder 2 of the Connected models, fed by decoder 1 at every scale.

    Level 1: ``concat[Conv3x3-ReLU(f1)(d1_full), d1_full]``; level k > 1:
    ``concat[Conv3x3-ReLU(fk)(pooled previous level), d1 at the same resolution]``. The link
    convolutions have ReLU but no BN, as in the code (the paper says BN). Each level then applies the
    model's block from 2*fk to fk channels and pools. In the authors' ``get_wnet``/``get_awnet``/
    ``get_rwnet`` these are ``down10`` .. ``down13`` and ``conv10`` .. ``conv13``
    (``docs/architecture.md``, "How the second U-Net is connected to the first").

    Args:
        features: channels of each level, finest first; the same as decoder 1's, whose outputs
            this encoder takes.
        block: block factory ``block(2 * f, f)`` of one level.

    Shapes: ``forward(decoder1_outputs)`` takes decoder 1's outputs ordered finest first,
    ``decoder1_outputs[k-1]`` of shape (B, features[k-1], H / 2**(k-1), W / 2**(k-1)), and returns
    ``(skips, bottom)`` shaped as :class:`Encoder`'s.
    """

    def __init__(self, features: Sequence[int], block: BlockFactory) -> None:
        super().__init__()
        link_inputs = [features[0], *features[:-1]]
        self.links = nn.ModuleList(
            ConvUnit(c_in, c_out, batch_norm_after=False) for c_in, c_out in zip(link_inputs, features)
        )
        self.levels = nn.ModuleList(block(2 * f, f) for f in features)
        self.pool = nn.MaxPool2d(2)

    def forward(self, decoder1_outputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``decoder1_outputs`` are ordered from full resolution down (f1, f2, ...)."""
        skips = []
        x = decoder1_outputs[0]
        for i, (link, level) in enumerate(zip(self.links, self.levels)):
            d1 = decoder1_outputs[i]
            x = level(torch.cat([link(x), d1], dim=1))
            skips.append(x)
            x = self.pool(x)
        return skips, x


class UpConcatDecoder(nn.Module):
    """UNet/ResUNet decoder: ConvTranspose 2x2 stride 2 (linear), ``concat[up, skip]``, block.

    The expanding path of the authors' ``get_unet``, ``get_runet``, ``get_wnet`` and ``get_rwnet``
    (``up6 = concatenate([Conv2DTranspose(256, (2, 2), strides=(2, 2))(conv5), conv4])``, ...).

    Args:
        bottom_channels: channels of the bottleneck output that enters the deepest level.
        features: channels of each level, finest first (the encoder's); levels run deepest first.
        block: block factory ``block(2 * f, f)`` of one level.

    Shapes: ``forward(x, skips)`` takes the bottleneck output x (B, bottom_channels, H / 2**L,
    W / 2**L) and the encoder's ``skips`` (finest first) and returns one output per level, deepest
    first: ``outputs[i]`` is (B, features[-1-i], H / 2**(L-1-i), W / 2**(L-1-i)), so
    ``outputs[-1]`` is (B, features[0], H, W).
    """

    def __init__(self, bottom_channels: int, features: Sequence[int], block: BlockFactory) -> None:
        super().__init__()
        reversed_features = list(reversed(features))
        inputs = [bottom_channels, *reversed_features[:-1]]
        self.ups = nn.ModuleList(nn.ConvTranspose2d(c_in, f, 2, stride=2) for c_in, f in zip(inputs, reversed_features))
        self.levels = nn.ModuleList(block(2 * f, f) for f in reversed_features)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for i, (up, level) in enumerate(zip(self.ups, self.levels)):
            skip = skips[-1 - i]
            x = level(torch.cat([up(x), skip], dim=1))
            outputs.append(x)
        return outputs


class AttentionDecoder(nn.Module):
    """AUNet decoder: gating signal from the previous output, attention gate over the skip,
    ReLU ConvTranspose 3x3 stride 2 of the previous output, ``concat[up, gated skip]``, block.

    Keeps the authors' quirk: the up-convolution of the second-finest level has as many filters as
    the level above it (``Conv2DTranspose(128, ...)`` at the 64-filter level), so that level's block
    sees ``features[2] + features[1]`` channels. Parameter counts depend on it. The expanding path
    of the authors' ``get_aunet`` and ``get_awnet``; the attention gate of each level gets
    ``inter_channels`` equal to its skip's channels, as they pass it.

    Args:
        bottom_channels: channels of the bottleneck output that enters the deepest level.
        features: channels of each level, finest first (the encoder's); levels run deepest first.
            With more than two levels the quirk above applies.
        block: block factory ``block(up + f, f)`` of one level (up = the up-convolution's filters).

    Shapes: as :class:`UpConcatDecoder`: ``forward(x, skips)`` returns one output per level,
    deepest first, ``outputs[-1]`` of shape (B, features[0], H, W).
    """

    def __init__(self, bottom_channels: int, features: Sequence[int], block: BlockFactory) -> None:
        super().__init__()
        up_filters = list(features)
        if len(features) > 2:
            up_filters[1] = features[2]
        reversed_features = list(reversed(features))
        reversed_up = list(reversed(up_filters))
        inputs = [bottom_channels, *reversed_features[:-1]]
        self.gatings = nn.ModuleList(GatingSignal(c_in) for c_in in inputs)
        self.gates = nn.ModuleList(
            AttentionGate(f, 2 * c_in, f) for c_in, f in zip(inputs, reversed_features)
        )
        self.ups = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(c_in, u, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True))
            for c_in, u in zip(inputs, reversed_up)
        )
        self.levels = nn.ModuleList(block(u + f, f) for u, f in zip(reversed_up, reversed_features))

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for i, (gating, gate, up, level) in enumerate(zip(self.gatings, self.gates, self.ups, self.levels)):
            skip = skips[-1 - i]
            gated_skip = gate(skip, gating(x))
            x = level(torch.cat([up(x), gated_skip], dim=1))
            outputs.append(x)
        return outputs
