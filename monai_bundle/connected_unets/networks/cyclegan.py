"""The CycleGAN networks of the keras.io tutorial the authors used (keras-io ``examples/generative/cyclegan.py``).

Baccouche et al. translated ROIs of one dataset into the style of another with the keras.io
CycleGAN tutorial "unchanged"; these are its two networks in PyTorch, 1-channel by default (the
tutorial's are RGB), every size an argument so that a CPU budget can shrink them:

- :class:`ResnetGenerator`: reflection pad 3, 7x7 conv (``filters``), instance norm, ReLU;
  ``downsamplings`` 3x3 stride-2 convs doubling the channels; ``residual_blocks`` residual blocks
  (reflection pad, 3x3 conv, IN, ReLU, reflection pad, 3x3 conv, IN, plus the input); as many 3x3
  stride-2 transposed convs halving the channels; reflection pad 3, 7x7 conv, tanh.
  (B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1]; H and W multiples of
  ``2 ** downsamplings``.
- :class:`PatchGANDiscriminator`: the 70x70 PatchGAN, built by MONAI's ``PatchDiscriminator``
  (4x4 convs: ``filters`` stride 2 + LeakyReLU 0.2, then ``layers`` convs doubling the channels
  with IN + LeakyReLU, the last one stride 1, then a 4x4 conv to one logit map).
  (B, in_channels, H, W) -> (B, 1, H / 2**layers - 2, W / 2**layers - 2) raw scores (no sigmoid:
  the least-squares loss takes them as they are).

The tutorial's layers, and where these differ from it (initialisation, padding arithmetic):
``docs/deviations.md``.
"""

from __future__ import annotations

import torch
from monai.networks.nets import PatchDiscriminator
from torch import nn

__all__ = ["PatchGANDiscriminator", "ResnetGenerator", "gan_init"]

INIT_STD = 0.02  # the tutorial's (and the CycleGAN paper's) N(0, 0.02) kernel initialiser


def gan_init(module: nn.Module) -> None:
    """Kernels N(0, 0.02), biases 0, instance-norm scales N(1, 0.02) and shifts 0 (``module.apply``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.InstanceNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def _norm(channels: int) -> nn.InstanceNorm2d:
    # the tutorial's tfa InstanceNormalization: learnt scale and shift, statistics of each image only
    return nn.InstanceNorm2d(channels, affine=True)


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 conv + IN layers (ReLU between them) added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), _norm(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), _norm(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """The tutorial's ResNet generator (``get_resnet_generator``): image -> image of another style.

    Args:
        in_channels: channels of the input image (1: grey-level ROIs).
        out_channels: channels of the output image.
        filters: channels of the first layer, doubled by each downsampling (64 in the tutorial).
        residual_blocks: residual blocks at the coarsest scale (9 in the tutorial).
        downsamplings: stride-2 convolutions down (and transposed ones up); 2 in the tutorial.

    Submodules: ``stem``, ``down``, ``residual``, ``up``, ``head`` (the 7x7 conv and tanh).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, filters: int = 64, residual_blocks: int = 9, downsamplings: int = 2) -> None:
        super().__init__()
        if min(in_channels, out_channels, filters, downsamplings + 1, residual_blocks + 1) < 1:
            raise ValueError(
                f"ResnetGenerator: channels and filters must be >= 1 and blocks >= 0, got in_channels={in_channels}, "
                f"out_channels={out_channels}, filters={filters}, residual_blocks={residual_blocks}, downsamplings={downsamplings}"
            )
        self.divisor = 2**downsamplings
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, filters, 7, bias=False), _norm(filters), nn.ReLU(inplace=True))
        widths = [filters * 2**i for i in range(downsamplings + 1)]
        self.down = nn.Sequential(
            *(
                nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), _norm(c_out), nn.ReLU(inplace=True))
                for c_in, c_out in zip(widths[:-1], widths[1:])
            )
        )
        self.residual = nn.Sequential(*(ResidualBlock(widths[-1]) for _ in range(residual_blocks)))
        self.up = nn.Sequential(
            *(
                nn.Sequential(
                    nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False), _norm(c_out), nn.ReLU(inplace=True)
                )
                for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])
            )
        )
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(filters, out_channels, 7), nn.Tanh())
        self.apply(gan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-1] % self.divisor or x.shape[-2] % self.divisor or min(x.shape[-2:]) < 4:
            raise ValueError(
                f"ResnetGenerator: expected (B, C, H, W) with H and W multiples of {self.divisor} and at least 4, got {tuple(x.shape)}"
            )
        return self.head(self.up(self.residual(self.down(self.stem(x)))))


class PatchGANDiscriminator(PatchDiscriminator):
    """The tutorial's 70x70 PatchGAN (``get_discriminator``) as MONAI's ``PatchDiscriminator``,
    returning only the patch score map (MONAI's returns every layer's features, and
    ``PatchAdversarialLoss`` would take them all for scores).

    Args:
        in_channels: channels of the images judged.
        filters: channels of the first conv, doubled by each later one (64 in the tutorial).
        layers: convs after the first (3 in the tutorial: 128 and 256 with stride 2, 512 with stride 1).
    """

    def __init__(self, in_channels: int = 1, filters: int = 64, layers: int = 3) -> None:
        if min(in_channels, filters, layers) < 1:
            raise ValueError(f"PatchGANDiscriminator: in_channels, filters and layers must be >= 1, got {in_channels}, {filters}, {layers}")
        super().__init__(
            spatial_dims=2, channels=filters, in_channels=in_channels, out_channels=1, num_layers_d=layers, kernel_size=4,
            activation=("LEAKYRELU", {"negative_slope": 0.2}), norm=("INSTANCE", {"affine": True}), bias=False, padding=1,
            last_conv_kernel_size=4,
        )  # fmt: skip
        self.min_size = 2**layers * 3  # the stride-1 layer's instance norm needs more than one value per map
        self.apply(gan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.ndim != 4 or min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"PatchGANDiscriminator: expected (B, C, H, W) with H, W >= {self.min_size}, got {tuple(x.shape)}")
        return super().forward(x)[-1]
