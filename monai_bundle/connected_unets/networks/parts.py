"""Encoders and decoders assembled from :mod:`blocks`; every network is a composition of these.

Decoders return the output of every level, deepest first, because the Connected models feed them
into their second encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import AttentionGate, BlockFactory, ConvUnit, GatingSignal


class Encoder(nn.Module):
    """One block per level, each followed by 2x2 max pooling. Returns (skips, pooled bottom)."""

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
    """Encoder 2 of the Connected models, fed by decoder 1 at every scale (original.md §1.6).

    Level 1: ``concat[Conv3x3-ReLU(f1)(d1_full), d1_full]``; level k > 1:
    ``concat[Conv3x3-ReLU(fk)(pooled previous level), d1 at the same resolution]``. The link
    convolutions have ReLU but no BN, as in the code (the paper says BN). Each level then applies the
    model's block from 2*fk to fk channels and pools.
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
    """UNet/ResUNet decoder: ConvTranspose 2x2 stride 2 (linear), ``concat[up, skip]``, block."""

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
    sees ``features[2] + features[1]`` channels. Parameter counts depend on it.
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
