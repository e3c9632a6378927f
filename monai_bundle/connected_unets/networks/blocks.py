"""Building blocks shared by all six networks, written once.

Every block follows the authors' Keras code (GitHub ``AsmaBaccouche/Connected-Unets-and-more``, the
model scripts such as ``Connected_Residual_Unets_segmentation.py`` and their helpers ``aspp_block``,
``resnet_block``, ``squeeze_excite_block``, ``UnetGatingSignal`` and ``AttnGatingBlock``; layer by
layer in ``docs/architecture.md``): convolutions carry a bias, the "conv unit" is
Conv3x3 -> ReLU -> BatchNorm, BatchNorm uses the Keras defaults (eps 1e-3, momentum 0.99, i.e.
PyTorch momentum 0.01) and weights get the Keras initialisers (:func:`keras_init`).

All blocks work on 2-D feature maps (B, C, H, W) and keep H and W unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

BlockFactory = Callable[[int, int], nn.Module]


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the Keras defaults (eps 1e-3, momentum 0.99)."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def conv3x3(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Conv2d:
    """A 3x3 'same' convolution with bias, as Keras ``Conv2D(f, (3, 3), padding='same')``."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)


class ConvUnit(nn.Sequential):
    """Conv3x3 -> ReLU -> BN (the authors' order), or Conv3x3 -> ReLU without BN.

    In the authors' code: ``Conv2D(f, (3, 3), activation='relu', padding='same')`` followed by
    ``BatchNormalization()``.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels (filters of the 3x3 convolution).
        batch_norm_after: append a BatchNorm (Keras defaults) after the ReLU. Defaults to True;
            False gives the AUNet baseline's units and the Connected models' link convolutions.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W), any H and W.
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm_after: bool = True) -> None:
        layers: list[nn.Module] = [conv3x3(in_channels, out_channels), nn.ReLU(inplace=True)]
        if batch_norm_after:
            layers.append(batch_norm(out_channels))
        super().__init__(*layers)


class ConvBlock(nn.Sequential):
    """Two conv units: the U-Net level block (:class:`ConvUnit` twice, the second one out -> out).

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels of both units.
        batch_norm_after: BatchNorm after each ReLU. Defaults to True.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W), any H and W.

    Example::

        >>> ConvBlock(3, 32)(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 32, 64, 64])
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm_after: bool = True) -> None:
        super().__init__(
            ConvUnit(in_channels, out_channels, batch_norm_after),
            ConvUnit(out_channels, out_channels, batch_norm_after),
        )


def conv_block(in_channels: int, out_channels: int) -> nn.Module:
    """Block factory: two Conv-ReLU-BN units."""
    return ConvBlock(in_channels, out_channels, batch_norm_after=True)


def conv_block_no_bn(in_channels: int, out_channels: int) -> nn.Module:
    """Block factory: two Conv-ReLU units (AUNet baseline bottleneck and decoder)."""
    return ConvBlock(in_channels, out_channels, batch_norm_after=False)


class ASPP(nn.Module):
    """ResUNet++'s ``aspp_block`` as the authors used it (``aspp_block`` in their Connected scripts).

    Four parallel 3x3 branches (dilation 6, 12, 18 and 1), each Conv (linear, bias) -> BN, *summed*
    (not concatenated), then a linear 1x1 convolution. No ReLU and no image-pooling branch, so it
    is not DeepLab's ASPP (nor MONAI's ``SimpleASPP``).

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels of every branch and of the 1x1 projection.
        rates: dilation of each branch, one branch per entry. Defaults to ``(6, 12, 18, 1)``, the
            authors' ``aspp_block`` with ``rate_scale=1``.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W), any H and W (each branch pads by
    its dilation; at a 16x16 bottleneck the 12- and 18-dilated taps mostly read zero padding).

    Example::

        >>> ASPP(256, 512)(torch.rand(2, 256, 16, 16)).shape
        torch.Size([2, 512, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int] = (6, 12, 18, 1)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(conv3x3(in_channels, out_channels, dilation=r), batch_norm(out_channels)) for r in rates
        )
        self.project = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed: torch.Tensor | None = None
        for branch in self.branches:
            out = branch(x)
            summed = out if summed is None else summed + out
        assert summed is not None
        return self.project(summed)


def aspp(in_channels: int, out_channels: int) -> nn.Module:
    """Block factory for :class:`ASPP`."""
    return ASPP(in_channels, out_channels)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (ResUNet++): GAP -> Dense(C/8, ReLU) -> Dense(C, sigmoid) -> scale; no biases.

    The authors' ``squeeze_excite_block`` (both dense layers ``use_bias=False``,
    ``kernel_initializer='he_normal'``).

    Args:
        channels: number of input (and output) channels C.
        ratio: reduction ratio; the hidden layer has ``channels // ratio`` units. Defaults to 8.
            A ValueError is raised when that is below 1.

    Shapes: (B, C, H, W) -> (B, C, H, W), each channel scaled by a weight in (0, 1).
    """

    def __init__(self, channels: int, ratio: int = 8) -> None:
        super().__init__()
        if channels // ratio < 1:
            raise ValueError(f"squeeze-excite needs at least {ratio} channels, got {channels}: use larger features")
        self.squeeze = nn.Linear(channels, channels // ratio, bias=False)
        self.excite = nn.Linear(channels // ratio, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = x.mean(dim=(2, 3))
        weights = torch.sigmoid(self.excite(torch.relu(self.squeeze(weights))))
        return x * weights[:, :, None, None]


class ResidualBlock(nn.Module):
    """The authors' ``resnet_block``: residual path, 1x1 conv + BN shortcut, add, squeeze-excite.

    ``pre_activation=True`` is the full pre-activation block of Connected-ResUNets
    (BN -> ReLU -> Conv -> BN -> ReLU -> Conv); ``False`` is the baseline ResUNet's block, whose BN
    lines are commented out in the authors' code (ReLU -> Conv -> ReLU -> Conv). No ReLU after the add.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels (both 3x3 convolutions and the 1x1 shortcut); at
            least 8, for the squeeze-excite's ratio of 8.
        pre_activation: BatchNorm before each ReLU of the residual path. Defaults to True
            (Connected-ResUNets); False is the baseline ResUNet's block.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W), any H and W.

    Example::

        >>> ResidualBlock(3, 32)(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 32, 64, 64])
    """

    def __init__(self, in_channels: int, out_channels: int, pre_activation: bool = True) -> None:
        super().__init__()
        first: list[nn.Module] = [batch_norm(in_channels)] if pre_activation else []
        second: list[nn.Module] = [batch_norm(out_channels)] if pre_activation else []
        self.residual = nn.Sequential(
            *first,
            nn.ReLU(),
            conv3x3(in_channels, out_channels),
            *second,
            nn.ReLU(inplace=True),
            conv3x3(out_channels, out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), batch_norm(out_channels))
        self.squeeze_excite = SqueezeExcite(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.squeeze_excite(self.residual(x) + self.shortcut(x))


def residual_block(in_channels: int, out_channels: int) -> nn.Module:
    """Block factory: pre-activation residual block (Connected-ResUNets)."""
    return ResidualBlock(in_channels, out_channels, pre_activation=True)


def residual_block_no_bn(in_channels: int, out_channels: int) -> nn.Module:
    """Block factory: the baseline ResUNet's residual block without BN on the residual path."""
    return ResidualBlock(in_channels, out_channels, pre_activation=False)


class GatingSignal(nn.Sequential):
    """``UnetGatingSignal`` as the authors use it: Conv1x1 to twice the channels -> BN -> ReLU.

    (``UnetGatingSignal(x, is_batchnorm=True)`` in the authors' code, from focal-tversky-unet.)

    Args:
        in_channels: number of input channels C; the output has 2C.

    Shapes: (B, C, H, W) -> (B, 2C, H, W).
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, 2 * in_channels, 1), batch_norm(2 * in_channels), nn.ReLU(inplace=True))


class AttentionGate(nn.Module):
    """The authors' ``AttnGatingBlock`` (from focal-tversky-unet), not MONAI's attention block.

    ``x`` is the encoder skip at 2H, ``g`` the gating signal at H. theta_x = Conv2x2 stride 2 of x,
    phi_g = Conv1x1 of g followed by a stride-1 ConvTranspose3x3; add -> ReLU -> Conv1x1 to one channel
    -> sigmoid -> nearest upsampling x2 -> multiply x -> Conv1x1 + BN. All convolutions are linear.
    (The authors' ``expend_as`` repeats the attention map over the channels; broadcasting does it here.)

    Args:
        skip_channels: channels of the skip ``x`` (and of the output).
        gating_channels: channels of the gating signal ``g``.
        inter_channels: channels of theta_x and phi_g (the authors' ``inter_shape``; they pass the
            skip's channel count).

    Shapes: ``forward(x, g)`` takes x (B, skip_channels, 2H, 2W) and g (B, gating_channels, H, W)
    and returns the gated skip (B, skip_channels, 2H, 2W).

    Example::

        >>> gate = AttentionGate(skip_channels=64, gating_channels=256, inter_channels=64)
        >>> gate(torch.rand(2, 64, 32, 32), torch.rand(2, 256, 16, 16)).shape
        torch.Size([2, 64, 32, 32])
    """

    def __init__(self, skip_channels: int, gating_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, 2, stride=2)
        self.phi_g = nn.Conv2d(gating_channels, inter_channels, 1)
        self.upsample_g = nn.ConvTranspose2d(inter_channels, inter_channels, 3, stride=1, padding=1)
        self.psi = nn.Conv2d(inter_channels, 1, 1)
        self.upsample_psi = nn.Upsample(scale_factor=2, mode="nearest")
        self.output = nn.Sequential(nn.Conv2d(skip_channels, skip_channels, 1), batch_norm(skip_channels))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        attention = torch.relu(self.upsample_g(self.phi_g(g)) + self.theta_x(x))
        attention = self.upsample_psi(torch.sigmoid(self.psi(attention)))
        return self.output(x * attention)


def keras_init(module: nn.Module) -> None:
    """Initialise like Keras: glorot-uniform kernels and zero biases for convolutions,
    he-normal (truncated) for the squeeze-excite dense layers, BN at gamma 1 / beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            std = math.sqrt(2.0 / m.in_features)
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)


def check_spatial_size(x: torch.Tensor, divisor: int, network: str) -> None:
    """Raise a one-line ValueError unless ``x`` is (B, C, H, W) with H and W multiples of ``divisor``."""
    if x.ndim != 4:
        raise ValueError(f"{network}: expected a 4-D input (B, C, H, W), got shape {x.shape}")
    height, width = x.shape[-2:]
    if height % divisor or width % divisor:
        raise ValueError(
            f"{network}: input height and width must be multiples of {divisor}, got {height}x{width}"
        )
