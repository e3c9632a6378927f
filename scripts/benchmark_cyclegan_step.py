"""Time of one CycleGAN training step (both generators, both discriminators) at given sizes, to size a budget.

Builds the networks of configs/cyclegan_train.yaml at the sizes given, runs one warm-up step and
``--steps`` timed steps of connected_unets.gan_training.CycleGANStep on random images (batch 1,
as training), and prints the median seconds per step and what an hour buys at ``--epoch-steps``
steps per epoch (max of the two domains' ROI counts). Numbers are only worth something on a quiet
machine; say what else was running beside them.
Usage: python scripts/benchmark_cyclegan_step.py --crop 128 --gan-filters 32 --disc-filters 32 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from connected_unets.gan_training import CycleGANStep, ImagePool
from connected_unets.networks import PatchGANDiscriminator, ResnetGenerator
from connected_unets.precision import cpu_model, resolve_precision, to_memory_format


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--gan-filters", type=int, default=32)
    parser.add_argument("--residual-blocks", type=int, default=9)
    parser.add_argument("--disc-filters", type=int, default=32)
    parser.add_argument("--disc-layers", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--epoch-steps", type=int, default=230, help="steps per epoch, max(ROIs of A, ROIs of B)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, "cpu")
    torch.manual_seed(0)
    gens = [to_memory_format(ResnetGenerator(filters=args.gan_filters, residual_blocks=args.residual_blocks), True) for _ in range(2)]
    discs = [to_memory_format(PatchGANDiscriminator(filters=args.disc_filters, layers=args.disc_layers), True) for _ in range(2)]
    opt_g = torch.optim.Adam([p for g in gens for p in g.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([p for d in discs for p in d.parameters()], lr=2e-4, betas=(0.5, 0.999))
    step = CycleGANStep(*gens, *discs, opt_g, opt_d, ImagePool(50), ImagePool(50), precision=precision, channels_last=True)
    batch = {"a": torch.rand(1, 1, args.crop, args.crop) * 2 - 1, "b": torch.rand(1, 1, args.crop, args.crop) * 2 - 1}
    step(None, batch)  # warm-up: oneDNN picks its kernels
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step(None, batch)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    per_epoch = median * args.epoch_steps
    print(f"{cpu_model()}, {torch.get_num_threads()} threads, {precision}; crop {args.crop}, generator {args.gan_filters} filters "
          f"x {args.residual_blocks} blocks, PatchGAN {args.disc_filters} filters x {args.disc_layers} layers")  # fmt: skip
    print(f"step: median {median:.2f} s (min {min(times):.2f}, max {max(times):.2f}, {args.steps} steps)")
    print(f"epoch of {args.epoch_steps} steps: {per_epoch / 60:.1f} min; one hour: {3600 / per_epoch:.1f} epochs, {3600 / median:.0f} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
