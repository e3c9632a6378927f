"""Specification of the six networks: the authors' Keras models, ported to PyTorch.

Parameter counts are the ones Keras reports for the authors' code (GitHub
AsmaBaccouche/Connected-Unets-and-more, get_unet ... get_rwnet; table in docs/architecture.md);
layers, init and BatchNorm follow Keras; every network returns logits and checks its input size.
"""

from __future__ import annotations

import math
import re

from pathlib import Path

import pytest
import torch
from torch import nn

from connected_unets.networks import (
    CONNECTED,
    NETWORKS,
    AUNet,
    ConnectedAUNets,
    ConnectedResUNets,
    ConnectedUNets,
    ResUNet,
    UNet,
    get_network,
)
from connected_unets.networks.blocks import ASPP, ConvBlock

NAMES = list(NETWORKS)
BASELINES = [name for name in NAMES if name not in CONNECTED]
TINY = (8, 16, 32, 64)  # same depth (divisor 16) as the default (32, 64, 128, 256), far fewer weights

# Keras counts of the authors' model functions (the parameter table of docs/architecture.md):
# name -> (3-ch trainable, 3-ch non-trainable, 1-ch trainable, 1-ch non-trainable).
# Non-trainable = BN moving mean + variance = running_mean + running_var here.
KERAS_COUNTS = {
    "unet": (7_765_985, 5_888, 7_765_409, 5_888),
    "aunet": (11_015_237, 6_720, 11_014_661, 6_720),
    "resunet": (8_023_681, 1_920, 8_023_041, 1_920),
    "connected_unets": (20_036_545, 16_128, 20_035_969, 16_128),
    "connected_aunets": (26_581_289, 25_984, 26_580_713, 25_984),
    "connected_resunets": (20_697_063, 22_342, 20_696_419, 22_338),
}
# the table's model names
TABLE_NAMES = {
    "UNet": "unet",
    "AUNet": "aunet",
    "ResUNet": "resunet",
    "Connected-UNets": "connected_unets",
    "Connected-AUNets": "connected_aunets",
    "Connected-ResUNets": "connected_resunets",
}
CLASSES = {
    "unet": UNet,
    "aunet": AUNet,
    "resunet": ResUNet,
    "connected_unets": ConnectedUNets,
    "connected_aunets": ConnectedAUNets,
    "connected_resunets": ConnectedResUNets,
}
ASPP_COUNT = {"unet": 0, "aunet": 0, "resunet": 0, "connected_unets": 3, "connected_aunets": 4, "connected_resunets": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    """``model(name)``: the default network (3 -> 1 channels, default features), built once per module."""
    cache: dict[str, nn.Module] = {}

    def build(name: str) -> nn.Module:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = get_network(name)
        return cache[name]

    return build


def trainable(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def bn_running_stats(network: nn.Module) -> int:
    return sum(b.numel() for n, b in network.named_buffers() if n.endswith(("running_mean", "running_var")))


def convs(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


# --------------------------------------------------------------------------- parameter counts


def test_expected_counts_are_those_documented_in_docs_architecture():
    """The constants above are the table of docs/architecture.md (Keras builds of the authors' code)."""
    note = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
    table = {}
    for line in note.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] in TABLE_NAMES:
            numbers = [int(c.replace(",", "")) for c in cells[2:]]
            total3, train3, non3, total1, train1, non1 = numbers
            assert total3 == train3 + non3 and total1 == train1 + non1, line
            table[TABLE_NAMES[cells[0]]] = (train3, non3, train1, non1)
    assert table == KERAS_COUNTS


@pytest.mark.parametrize("name", NAMES)
def test_three_channel_counts_match_keras_exactly(model, name):
    network = model(name)
    assert trainable(network) == KERAS_COUNTS[name][0]
    assert bn_running_stats(network) == KERAS_COUNTS[name][1]


@pytest.mark.parametrize("name", NAMES)
def test_one_channel_counts_match_keras_exactly(name):
    network = get_network(name, in_channels=1)
    assert trainable(network) == KERAS_COUNTS[name][2]
    assert bn_running_stats(network) == KERAS_COUNTS[name][3]


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_is_trainable_and_only_bn_has_buffers(model, name):
    network = model(name)
    assert all(p.requires_grad for p in network.parameters())
    buffers = {n.rsplit(".", 1)[-1] for n, _ in network.named_buffers()}
    assert buffers <= {"running_mean", "running_var", "num_batches_tracked"}


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("out_channels", [1, 2])
@pytest.mark.parametrize("size", [(32, 32), (32, 48)], ids=["32x32", "32x48"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_logits_of_the_input_size(model, name, size, out_channels):
    network = model(name) if out_channels == 1 else get_network(name, out_channels=out_channels)
    network.eval()
    head_outputs = []
    hook = network.head.register_forward_hook(lambda module, args, out: head_outputs.append(out))
    try:
        with torch.no_grad():
            out = network(torch.rand(2, 3, *size))
    finally:
        hook.remove()
    assert out.shape == (2, out_channels, *size)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # logits: the 1x1 head is the last layer, no sigmoid/softmax after it
    assert len(head_outputs) == 1 and out is head_outputs[0]
    assert isinstance(network.head, nn.Conv2d) and network.head.kernel_size == (1, 1)


@pytest.mark.parametrize("size", [(40, 32), (32, 40), (24, 24), (8, 8)])
@pytest.mark.parametrize("name", NAMES)
def test_size_not_a_multiple_of_16_is_a_value_error_naming_network_and_size(model, name, size):
    network = model(name)
    with pytest.raises(ValueError) as caught:
        network(torch.rand(1, 3, *size))
    message = str(caught.value)
    assert CLASSES[name].__name__ in message
    assert f"{size[0]}x{size[1]}" in message and "16" in message
    assert "\n" not in message


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 1, 3, 32, 32)], ids=["3-D", "5-D"])
@pytest.mark.parametrize("name", NAMES)
def test_input_that_is_not_4d_is_a_value_error(model, name, shape):
    with pytest.raises(ValueError, match=rf"{CLASSES[name].__name__}: expected a 4-D input") as caught:
        model(name)(torch.rand(*shape))
    assert re.search(r"\D+".join(map(str, shape)), str(caught.value)), "the message shows the shape"


@pytest.mark.parametrize("name", NAMES)
def test_the_size_divisor_follows_the_number_of_levels(name):
    network = get_network(name, features=(8, 16, 32)).eval()  # 3 poolings: multiples of 8
    with torch.no_grad():
        assert network(torch.rand(1, 3, 24, 40)).shape == (1, 1, 24, 40)
    with pytest.raises(ValueError, match="multiples of 8, got 12x16"):
        network(torch.rand(1, 3, 12, 16))


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", NAMES)
def test_get_network_builds_each_name(name):
    network = get_network(name, in_channels=1, out_channels=2, features=TINY)
    assert type(network) is CLASSES[name]
    assert network.head.out_channels == 2
    first = convs(network)[0]
    assert first.in_channels == 1 and first.out_channels == TINY[0]


def test_get_network_ignores_case():
    assert type(get_network("Connected_ResUNets", features=TINY)) is ConnectedResUNets


def test_unknown_name_is_a_value_error_listing_the_valid_names():
    with pytest.raises(ValueError, match="unknown network 'vnet'") as caught:
        get_network("vnet")
    for name in NAMES:
        assert name in str(caught.value)


@pytest.mark.parametrize("name", CONNECTED)
def test_aspp_false_builds_the_connected_models_without_aspp(model, name):
    with_aspp = get_network(name, features=TINY)
    without = get_network(name, features=TINY, aspp=False)
    assert not any(isinstance(m, ASPP) for m in without.modules())
    assert trainable(without) < trainable(with_aspp)
    assert trainable(get_network(name, aspp=False)) < trainable(model(name))
    # each ASPP became a plain Conv-ReLU-BN block
    blocks = sum(isinstance(m, ConvBlock) for m in without.modules())
    assert blocks - sum(isinstance(m, ConvBlock) for m in with_aspp.modules()) == ASPP_COUNT[name]
    with torch.no_grad():
        assert without.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


@pytest.mark.parametrize("name", BASELINES)
def test_aspp_false_is_accepted_and_ignored_by_the_baselines(name):
    torch.manual_seed(0)
    plain = get_network(name, features=TINY)
    torch.manual_seed(0)
    flagged = get_network(name, features=TINY, aspp=False)
    assert type(flagged) is CLASSES[name]
    plain_state, flagged_state = plain.state_dict(), flagged.state_dict()
    assert plain_state.keys() == flagged_state.keys()
    assert all(torch.equal(plain_state[k], flagged_state[k]) for k in plain_state)


@pytest.mark.parametrize("name", NAMES)
def test_aspp_modules_per_network(model, name):
    assert sum(isinstance(m, ASPP) for m in model(name).modules()) == ASPP_COUNT[name]


# --------------------------------------------------------------------------- Keras layers and init


@pytest.mark.parametrize("name", NAMES)
def test_batch_norm_uses_keras_defaults(model, name):
    norms = [m for m in model(name).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms, "every network has BatchNorm layers"
    for norm in norms:
        assert isinstance(norm, nn.BatchNorm2d)
        assert norm.eps == pytest.approx(1e-3) and norm.momentum == pytest.approx(0.01)
        assert norm.affine and norm.track_running_stats
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


@pytest.mark.parametrize("name", NAMES)
def test_convolutions_have_zero_biases_after_init(model, name):
    for conv in convs(model(name)):
        assert conv.bias is not None, f"{conv} has no bias (Keras Conv2D has one)"
        assert torch.all(conv.bias == 0)


@pytest.mark.parametrize("name", NAMES)
def test_convolution_kernels_are_glorot_uniform(model, name):
    for conv in convs(model(name)):
        weight = conv.weight.detach()
        receptive = math.prod(conv.kernel_size)
        fan_sum = (conv.in_channels + conv.out_channels) * receptive // conv.groups
        bound = math.sqrt(6.0 / fan_sum)
        assert weight.abs().max() <= bound * (1 + 1e-6), conv
        if weight.numel() >= 4096:  # PyTorch's default init would stay well inside these
            assert weight.abs().max() >= 0.95 * bound, conv
            assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1), conv


@pytest.mark.parametrize("name", ["resunet", "connected_resunets"])
def test_squeeze_excite_dense_layers_are_truncated_he_normal_without_bias(model, name):
    linears = [m for m in model(name).modules() if isinstance(m, nn.Linear)]
    assert linears
    for linear in linears:
        assert linear.bias is None
        std = math.sqrt(2.0 / linear.in_features)
        # Keras truncates at 2 standard deviations (its std is rescaled by 1/0.8796 at most)
        assert linear.weight.abs().max() <= 2 * std / 0.87962566103423978 + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_init_is_seeded_by_torch(name):
    torch.manual_seed(1)
    first = get_network(name, features=TINY).state_dict()
    torch.manual_seed(1)
    second = get_network(name, features=TINY).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


# --------------------------------------------------------------------------- the Connected link


@pytest.mark.parametrize("name", CONNECTED)
def test_gradients_reach_encoder1_and_decoder1_through_the_link(model, name):
    """The output depends on U-Net 1 only through the decoder-1 -> encoder-2 link."""
    network = model(name).train()
    network.zero_grad(set_to_none=True)
    try:
        network(torch.rand(2, 3, 32, 32)).sum().backward()
        encoder1_first = convs(network.encoder1)[0]
        decoder1_first = convs(network.decoder1)[0]
        for conv in (encoder1_first, decoder1_first, network.encoder2.links[0][0]):
            assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0, conv
        unused = [n for n, p in network.named_parameters() if p.grad is None]
        assert not unused, f"parameters outside the forward pass: {unused[:5]}"
    finally:
        network.zero_grad(set_to_none=True)
        network.eval()


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_parameter_takes_part_in_the_forward_pass(name):
    network = get_network(name, features=TINY)
    network(torch.rand(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in network.parameters())


# --------------------------------------------------------------------------- TorchScript


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", NAMES)
def test_networks_are_scriptable(name):
    network = get_network(name, features=TINY).eval()
    scripted = torch.jit.script(network)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))
    with pytest.raises(Exception, match=re.escape("multiples of 16")):
        scripted(torch.rand(1, 3, 40, 32))


def test_aspp_given_as_a_string_is_refused_rather_than_read_as_true():
    """A command line's "false" is a non-empty, truthy string: silently building the ASPP model is the bug."""
    with pytest.raises(ValueError, match="aspp must be True or False, got 'false'"):
        get_network("connected_unets", aspp="false")

