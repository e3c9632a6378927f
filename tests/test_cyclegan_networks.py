"""Specification of the CycleGAN networks: the keras.io tutorial's generator and 70x70 PatchGAN
(keras-io ``examples/generative/cyclegan.py``, layer by layer in ``docs/deviations.md``), 1-channel
by default, every size an argument.

Parameter counts are computed layer by layer from that list (a Conv2D without bias has k*k*in*out
weights, instance norm a scale and a shift per channel), for the tutorial's RGB networks and for
our grey-level ones; the tests below recount them from the formula for other sizes too.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from connected_unets.networks import PatchGANDiscriminator, ResnetGenerator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the tutorial's sizes: 64 filters, 9 residual blocks, 2 downsamplings; PatchGAN 64 filters, 3 layers
TUTORIAL_GENERATOR = {3: 11_383_427, 1: 11_370_881}  # channels -> parameters
TUTORIAL_DISCRIMINATOR = {3: 2_765_633, 1: 2_763_585}


def parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def generator_formula(channels: int, filters: int, blocks: int, downsamplings: int = 2) -> int:
    """The tutorial's generator layer by layer: 7x7 stem (no bias) + IN, stride-2 3x3 downs (no bias) + IN, residual
    blocks of two 3x3 convs (no bias) + IN each, transposed 3x3 ups (no bias) + IN, 7x7 head with bias."""
    widths = [filters * 2**i for i in range(downsamplings + 1)]
    count = 49 * channels * filters + 2 * filters
    count += sum(9 * a * b + 2 * b for a, b in zip(widths, widths[1:]))
    count += blocks * 2 * (9 * widths[-1] ** 2 + 2 * widths[-1])
    count += sum(9 * b * a + 2 * a for a, b in zip(widths, widths[1:]))
    return count + 49 * filters * channels + channels


def discriminator_formula(channels: int, filters: int, layers: int) -> int:
    """The tutorial's PatchGAN: 4x4 conv with bias, then 4x4 convs without bias doubling the channels, each + IN, then a
    4x4 conv with bias to one map."""
    widths = [filters * 2**i for i in range(layers + 1)]
    count = 16 * channels * filters + filters
    count += sum(16 * a * b + 2 * b for a, b in zip(widths, widths[1:]))
    return count + 16 * widths[-1] + 1


# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_of_the_tutorial_size_has_its_parameter_count(channels):
    generator = ResnetGenerator(in_channels=channels, out_channels=channels)
    assert parameters(generator) == TUTORIAL_GENERATOR[channels] == generator_formula(channels, 64, 9)


def test_generator_is_one_channel_with_nine_residual_blocks_by_default():
    generator = ResnetGenerator()
    assert generator.stem[1].in_channels == 1 and generator.head[1].out_channels == 1
    assert len(generator.residual) == 9
    assert isinstance(generator.head[-1], nn.Tanh)


@pytest.mark.parametrize(("filters", "blocks", "downsamplings"), [(8, 1, 2), (16, 3, 1), (4, 0, 3)])
def test_generator_sizes_are_arguments(filters, blocks, downsamplings):
    generator = ResnetGenerator(filters=filters, residual_blocks=blocks, downsamplings=downsamplings)
    assert parameters(generator) == generator_formula(1, filters, blocks, downsamplings)


def test_generator_pads_by_reflection_and_normalises_each_image():
    generator = ResnetGenerator(filters=4, residual_blocks=1)
    layers = list(generator.modules())
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in layers) == 2 + 2 * 1  # stem, head, two per block
    norms = [m for m in layers if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine and not m.track_running_stats for m in norms)


@pytest.mark.parametrize("size", [(32, 32), (32, 48), (64, 36)])
def test_generator_maps_an_image_to_an_image_of_the_same_size_in_minus_one_to_one(size):
    torch.manual_seed(0)
    generator = ResnetGenerator(filters=4, residual_blocks=1)
    image = torch.rand(2, 1, *size) * 2 - 1
    out = generator(image)
    assert out.shape == image.shape
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("shape", [(1, 1, 30, 32), (1, 1, 32, 33), (1, 32, 32)])
def test_generator_refuses_a_size_it_cannot_give_back_in_one_line(shape):
    with pytest.raises(ValueError, match="multiples of 4") as refused:
        ResnetGenerator(filters=4, residual_blocks=1)(torch.zeros(shape))
    assert "\n" not in str(refused.value)


# --------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("channels", [1, 3])
def test_patchgan_of_the_tutorial_size_has_its_parameter_count(channels):
    discriminator = PatchGANDiscriminator(in_channels=channels)
    assert parameters(discriminator) == TUTORIAL_DISCRIMINATOR[channels] == discriminator_formula(channels, 64, 3)


@pytest.mark.parametrize(("filters", "layers"), [(8, 3), (16, 2), (4, 4)])
def test_patchgan_sizes_are_arguments(filters, layers):
    assert parameters(PatchGANDiscriminator(filters=filters, layers=layers)) == discriminator_formula(1, filters, layers)


def test_patchgan_is_monai_patch_discriminator_with_instance_norm_and_leaky_relu():
    from monai.networks.nets import PatchDiscriminator

    discriminator = PatchGANDiscriminator()
    assert isinstance(discriminator, PatchDiscriminator)
    layers = list(discriminator.modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in layers) == 3
    assert all(m.negative_slope == 0.2 for m in layers if isinstance(m, nn.LeakyReLU))
    strides = [m.stride[0] for m in layers if isinstance(m, nn.Conv2d)]
    assert strides == [2, 2, 2, 1, 1] and all(m.kernel_size == (4, 4) for m in layers if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(("size", "patches"), [(256, 30), (128, 14), (32, 2)])
def test_patchgan_scores_a_map_of_overlapping_70_pixel_patches(size, patches):
    """One raw score per 70 x 70 receptive field (stride 8): a 30 x 30 map for a 256 x 256 image."""
    discriminator = PatchGANDiscriminator(filters=4) if size < 256 else PatchGANDiscriminator(filters=8)
    scores = discriminator(torch.rand(2, 1, size, size))
    assert scores.shape == (2, 1, patches, patches)


def test_patchgan_refuses_an_image_too_small_for_its_last_normalisation():
    with pytest.raises(ValueError, match=r"H, W >= 24"):
        PatchGANDiscriminator(filters=4)(torch.zeros(1, 1, 16, 16))


def test_initialisation_is_the_tutorials_normal_with_std_0_02():
    torch.manual_seed(0)
    generator = ResnetGenerator()
    kernels = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(float(kernels.std()) - 0.02) < 0.001 and abs(float(kernels.mean())) < 0.001
    scales = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)])
    assert abs(float(scales.mean()) - 1.0) < 0.01  # ours: N(1, 0.02); the tutorial's N(0, 0.02) (docs/deviations.md)
