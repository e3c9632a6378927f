"""connected_unets.precision: the memory format and arithmetic a run uses, chosen from the machine at run time."""

import pytest
import torch
from torch import nn

from connected_unets.precision import PrecisionInferer, resolve_channels_last, to_memory_format


def test_auto_channels_last_follows_the_cpus_simd_level():
    """NHWC where torch's CPU kernels use AVX-512 (faster there), NCHW on an AVX2-only CPU (slower there)."""
    expected = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    assert resolve_channels_last("auto", "cpu") is expected


@pytest.mark.parametrize(("given", "expected"), [(True, True), (False, False), ("true", True), ("False", False), (" FALSE ", False)])
def test_a_flag_or_its_word_is_taken_as_given(given, expected):
    """`--channels_last false` on the bundle's command line arrives as the word 'false': it means false."""
    assert resolve_channels_last(given, "cpu") is expected


def test_an_unknown_value_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^channels_last 'yes': choose auto, true or false$"):
        resolve_channels_last("yes", "cpu")


@pytest.mark.parametrize("word", ["false", "auto"])
def test_an_unresolved_word_never_reaches_the_network(word):
    """A non-empty string is truthy: taken as it is, 'false' would silently mean channels_last."""
    with pytest.raises(ValueError, match="expected true or false"):
        to_memory_format(nn.Conv2d(1, 1, 3), word)
    with pytest.raises(ValueError, match="expected true or false"):
        PrecisionInferer("fp32", word)


def test_the_memory_format_changes_strides_not_values():
    conv = nn.Conv2d(2, 3, 3)
    x = torch.rand(1, 2, 8, 8)
    before = conv(x)
    after = to_memory_format(conv, True)
    assert after.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(PrecisionInferer("fp32", True)(x, after), before, atol=1e-6)

