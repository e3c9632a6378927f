"""How the network's arithmetic runs on this machine: memory format and autocast dtype, chosen at run time.

Why at run time: the CPUs this project trains on differ. On an Intel Xeon with AMX (and AVX512-BF16)
bf16 autocast makes a ConnectedResUNets training step about 3x faster than fp32; on a CPU without
bf16 units (an AMD EPYC with AVX2 only) bf16 is emulated and slower than fp32. ``precision: auto``
in the configs asks :func:`resolve_precision`, which decides from what the CPU reports (measured in
``docs/benchmarks.md``, ``scripts/benchmark_training.py``).

channels_last (NHWC) changes no value, only strides, and its speed depends on the CPU too: a training
step runs 1.33-1.37x faster in fp32 (3.4-3.9x with bf16) on the AMX Xeon, but 0.77-0.94x as fast on
the AVX2-only AMD EPYC (``docs/benchmarks.md``). ``channels_last: auto`` asks
:func:`resolve_channels_last`.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "PRECISIONS",
    "PrecisionInferer",
    "cpu_has_fast_bf16",
    "cpu_model",
    "resolve_channels_last",
    "resolve_precision",
    "to_memory_format",
]

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), which every measured figure is stated beside."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 arithmetic units (AMX tiles or AVX512-BF16), so bf16 beats fp32."""
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``fp32`` or ``bf16`` for ``precision`` in ``auto|fp32|bf16`` on ``device``.

    ``auto`` is bf16 on a CPU with bf16 units and on a CUDA GPU that supports bf16, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def resolve_channels_last(channels_last: bool | str, device: torch.device | str) -> bool:
    """Whether to run NHWC for ``channels_last`` in ``auto|true|false`` (a bool, or its word as a
    command line gives it: ``--channels_last false`` arrives as the string 'false').

    ``auto`` is NHWC on a CUDA GPU and on a CPU whose torch kernels use AVX-512 (faster there), and
    NCHW elsewhere (slower on AVX2-only CPUs; unmeasured on others, so the network as built)."""
    if isinstance(channels_last, str) and channels_last.strip().lower() in ("auto", "true", "false"):
        channels_last = {"true": True, "false": False}.get(channels_last.strip().lower(), "auto")
    if isinstance(channels_last, bool):
        return channels_last
    if channels_last != "auto":
        raise ValueError(f"channels_last {channels_last!r}: choose auto, true or false")
    device = torch.device(device)
    if device.type == "cuda":
        return True
    return device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _checked_flag(channels_last: object) -> bool:
    """``channels_last`` as resolved (a bool): a word such as 'false' would silently count as true."""
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last {channels_last!r}: expected true or false (resolve 'auto' with connected_unets.precision.resolve_channels_last)")
    return channels_last


def to_memory_format(network: nn.Module, channels_last: bool) -> nn.Module:
    """``network`` with its 4-D parameters in channels_last (NHWC) or contiguous (NCHW) strides."""
    channels_last = _checked_flag(channels_last)
    return network.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class PrecisionInferer(Inferer):
    """Run the network on channels_last inputs and/or under bf16 autocast; hand back fp32 logits.

    MONAI's engines only autocast on CUDA (``amp``), so the CPU's bf16 comes in through the inferer,
    which the trainer and the evaluator both call: the loss, the sigmoid and the metrics stay fp32.
    ``inner`` is another inferer to wrap (e.g. the ROI-batch inferer); by default the network is
    called directly.
    """

    def __init__(self, precision: str = "fp32", channels_last: bool = False, inner: Inferer | None = None) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision {precision!r}: resolve 'auto' first (connected_unets.precision.resolve_precision)")
        self.precision = precision
        self.channels_last = _checked_flag(channels_last)
        self.inner = inner

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            outputs = self.inner(inputs, network, *args, **kwargs) if self.inner is not None else network(inputs, *args, **kwargs)
        return outputs.float()
