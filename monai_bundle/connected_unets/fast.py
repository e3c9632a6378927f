"""A faster, numerically equivalent evaluation-mode copy of a network (the Segmenter's fast path).

Why: the interactive case (one new ROI in Slicer) is bound by convolution time on a CPU. Two exact
rewrites help and are kept because they were measured to help (``docs/benchmarks.md``):

- **channels_last** (NHWC) weights and inputs: oneDNN's convolutions run without the layout
  reorders they need for NCHW tensors; on a 2-core AVX2 CPU this alone is most of the gain.
- **BatchNorm folding**: in evaluation mode a BatchNorm is a per-channel affine map ``a * x + c``
  and disappears into the convolution before it. Our networks use two patterns:
  ``Conv -> BN`` (ASPP branches, residual paths, shortcuts, gating signals, attention outputs),
  folded the usual way, and the authors' ``Conv -> ReLU -> BN`` unit, folded with
  ``a * relu(z) + c == max(a * z + c, c)`` (exact when every ``a > 0``, which the module checks;
  units with a non-positive scale are left alone). A pre-activation BN (``BN -> ReLU -> Conv``)
  has no convolution before it and stays.

Tried and not kept (measured, see docs/benchmarks.md): TorchScript ``freeze`` +
``optimize_for_inference`` (slower than eager channels_last on this CPU) and ``torch.compile``
(18 % less CPU time per ROI, but 1.5 minutes of compilation on 2 cores before the first ROI and
again for every new number of ROIs: a loss for an interactive tool).

The result differs from the plain network only by floating-point rounding (the folded weights are
computed in float64); :func:`max_abs_difference` measures it, and ``Segmenter.from_bundle`` uses
the fast copy only when the probabilities agree within a tolerance.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "FastNetwork",
    "ShiftedReLU",
    "fast_if_equivalent",
    "fold_batch_norm",
    "full_fp32",
    "max_abs_difference",
    "optimize_for_inference",
]


class ShiftedReLU(nn.Module):
    """``max(x, shift)`` per channel: what ``ReLU -> BN`` becomes once the BN scale is in the conv."""

    def __init__(self, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift = self.shift.to(x.dtype)
        if torch.is_grad_enabled() and x.requires_grad:
            return torch.maximum(x, shift)
        # in place like the ReLU(inplace=True) it replaces (x is the conv's fresh output): 5x faster
        # than torch.maximum's broadcast into a new tensor on the CPU
        return x.clamp_min_(shift)


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation-mode BN as ``a * x + c`` (float64)."""
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = weight / torch.sqrt(var + bn.eps)
    return scale, bias - mean * scale


def _fold_into_conv(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Replace ``conv``'s weights so that ``conv(x)`` becomes ``scale * conv(x) + shift`` (in place)."""
    weight = conv.weight.detach().double() * scale.reshape(-1, 1, 1, 1)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    bias = bias * scale + shift
    dtype = conv.weight.dtype
    conv.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)


def _foldable_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d) and module.track_running_stats and module.running_var is not None


def _plain_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d)  # per-output-channel scaling works for any groups/dilation


def fold_batch_norm(network: nn.Module) -> int:
    """Fold every ``Conv2d -> BatchNorm2d`` and ``Conv2d -> ReLU -> BatchNorm2d`` (all BN scales > 0)
    that follow each other inside an ``nn.Sequential`` into the convolution, in place; the BN becomes
    ``Identity`` (and the ReLU a :class:`ShiftedReLU`). Evaluation mode only. Returns the count."""
    if network.training:
        raise ValueError("fold_batch_norm: the network must be in eval mode (BN uses running statistics)")
    folded = 0
    for sequential in [m for m in network.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequential._modules)
        i = 0
        while i < len(names):
            conv = sequential._modules[names[i]]
            if not _plain_conv(conv):
                i += 1
                continue
            nxt = sequential._modules[names[i + 1]] if i + 1 < len(names) else None
            after = sequential._modules[names[i + 2]] if i + 2 < len(names) else None
            if _foldable_bn(nxt):
                scale, shift = _bn_scale_shift(nxt)
                _fold_into_conv(conv, scale, shift)
                sequential._modules[names[i + 1]] = nn.Identity()
                folded += 1
                i += 2
            elif isinstance(nxt, nn.ReLU) and _foldable_bn(after):
                scale, shift = _bn_scale_shift(after)
                if bool((scale > 0).all()):
                    _fold_into_conv(conv, scale, shift)
                    sequential._modules[names[i + 1]] = ShiftedReLU(shift.to(conv.weight.dtype))
                    sequential._modules[names[i + 2]] = nn.Identity()
                    folded += 1
                i += 3
            else:
                i += 1
    return folded


class FastNetwork(nn.Module):
    """Evaluation-mode wrapper: feeds the (folded) network channels_last inputs. Same call signature
    and output values as the network it was made from; ``.network`` is the rewritten copy."""

    def __init__(self, network: nn.Module, channels_last: bool = True) -> None:
        super().__init__()
        self.network = network
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.network(x)


def optimize_for_inference(
    network: nn.Module,
    device: str | torch.device = "cpu",
    fold: bool = True,
    channels_last: bool = True,
) -> FastNetwork:
    """A rewritten evaluation-mode copy of ``network`` on ``device`` (the original is untouched):
    BatchNorm folded into the convolutions, channels_last memory format, no autograd state.
    AMP is the caller's ``torch.autocast`` (the Segmenter enables it on CUDA)."""
    device = torch.device(device)
    fast = copy.deepcopy(network).eval().to(device)
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    count = fold_batch_norm(fast) if fold else 0
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    logger.debug("optimize_for_inference: %d BatchNorm(s) folded, channels_last=%s, %s", count, channels_last, device)
    return FastNetwork(fast, channels_last=channels_last).eval()


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """No TF32 in cuDNN convolutions and CUDA matmuls inside the block (restored after): TF32
    rounds to 10 mantissa bits differently for NCHW and NHWC kernels, which would hide whether a
    rewrite is exact. A no-op on the CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@torch.inference_mode()
def max_abs_difference(
    reference: Callable[[torch.Tensor], torch.Tensor],
    candidate: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    sigmoid: bool = True,
) -> float:
    """Largest absolute difference of the two networks' outputs (probabilities with ``sigmoid``) on
    ``inputs``, both in float32 without autocast or TF32: the check that the fast path changes nothing."""
    with full_fp32(), torch.autocast(inputs.device.type, enabled=False):
        expected = reference(inputs).float()
        got = candidate(inputs).float()
    if sigmoid:
        expected, got = torch.sigmoid(expected), torch.sigmoid(got)
    return float((expected - got).abs().max())


def _in_channels(network: nn.Module) -> int:
    conv = next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{type(network).__name__}: no Conv2d found, cannot make a probe input")
    return conv.in_channels


def fast_if_equivalent(
    network: nn.Module, device: str | torch.device = "cpu", tolerance: float = 1e-4, size: int = 64, key: str | None = None
) -> nn.Module:
    """:func:`optimize_for_inference` of ``network`` if its probabilities on a seeded random
    (2, C, size, size) probe differ from the plain network's by at most ``tolerance``, else the
    plain network (in eval mode, on ``device``) with a warning: the fast path may never change a mask.

    ``key`` (:func:`connected_unets.fast_verdicts.verdict_key`) names the weights, code and machine:
    a verdict already measured under it is taken instead of probing again, and a new one is kept."""
    from . import fast_verdicts

    device = torch.device(device)
    plain = network.eval().to(device)
    fast = optimize_for_inference(plain, device)
    difference = fast_verdicts.recall(key) if key is not None else None
    if difference is None:
        generator = torch.Generator().manual_seed(0)
        probe = torch.rand(2, _in_channels(plain), size, size, generator=generator).to(device)
        difference = max_abs_difference(plain, fast, probe)
        if key is not None:
            fast_verdicts.remember(key, difference)
    else:
        logger.debug("fast inference path: verdict of an earlier probe of these weights on this machine (%.2e)", difference)
    if difference <= tolerance:
        logger.debug("fast inference path: max |probability difference| %.2e on the probe", difference)
        return fast
    logger.warning(
        "fast inference path differs from the plain network by %.2e (> %.0e) on a probe input; using the plain network",
        difference,
        tolerance,
    )
    return plain
