"""Training-step and one-ROI inference time of a network under each CPU setting, all from ONE run.

What it answers: which memory format / precision / compilation should ``configs/train.yaml`` use on
this CPU (``precision: auto`` decides at run time from the CPU's bf16 units). Settings, each with 1
and 2 torch threads:

- ``fp32``: contiguous NCHW fp32 (the network as built).
- ``channels_last``: NHWC weights and inputs, fp32.
- ``bf16``: NCHW under ``torch.autocast('cpu', bfloat16)``.
- ``channels_last+bf16``: both (what ``precision: auto`` picks on a CPU with AMX / AVX512-BF16).
- ``compile(...)``: the whole training step through ``torch.compile``, in the setting
  ``precision: auto`` trains with on this CPU (``channels_last+bf16`` where the CPU has bf16 units,
  ``channels_last`` fp32 otherwise); its compilation time is reported apart (``--no-compile`` skips
  it: minutes on 2 cores).

A training step is what ``SupervisedTrainer`` does per iteration: forward through
:class:`connected_unets.precision.PrecisionInferer` (the trainer's inferer), DiceIoULoss in fp32,
backward, Adam (lr 1e-4, eps 1e-7), batch ``--batch`` of 256 x 256 ROIs. Timed calls are
interleaved (round r times every setting once) so load drift spreads over all settings; the
reported figure is the median round. Ratios are against ``fp32`` at the same thread count.

    python scripts/benchmark_training.py --out docs/benchmark_training.md
    python scripts/benchmark_training.py --models unet --repeats 2 --no-compile
    python scripts/benchmark_training.py --settings channels_last "compile(channels_last)"   # an AVX2-only CPU
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from connected_unets.bundle import PEERS, network_names, open_config
from connected_unets.fast import optimize_for_inference
from connected_unets.io import atomic_output
from connected_unets.losses import DiceIoULoss
from connected_unets.networks import get_network
from connected_unets.precision import PrecisionInferer, cpu_has_fast_bf16, cpu_model, to_memory_format

SETTINGS: dict[str, tuple[bool, str, bool]] = {  # name: (channels_last, precision, compiled)
    "fp32": (False, "fp32", False),
    "channels_last": (True, "fp32", False),
    "bf16": (False, "bf16", False),
    "channels_last+bf16": (True, "bf16", False),
}
_AUTO = "channels_last+bf16" if cpu_has_fast_bf16() else "channels_last"  # what train.yaml's defaults run here
SETTINGS[f"compile({_AUTO})"] = (*SETTINGS[_AUTO][:2], True)
ROI = 256


def cpu_description() -> dict[str, Any]:
    """What the figures depend on: the CPU's name, its bf16 units and torch's SIMD level."""
    return {
        "cpu": cpu_model(),
        "simd": torch.backends.cpu.get_cpu_capability(),
        "amx": bool(torch.cpu._is_amx_tile_supported()),
        "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
        "fast_bf16": cpu_has_fast_bf16(),
        "torch": torch.__version__,
    }


@dataclass
class Task:
    """One timed call, run once per round."""

    model: str
    kind: str  # train | infer
    setting: str
    threads: int
    run: Callable[[], Any]
    wall: list[float] = field(default_factory=list)
    compile_s: float | None = None


def train_step(model: nn.Module, setting: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    """One optimizer step of a private copy of ``model`` the way the bundle's trainer takes it."""
    channels_last, precision, compiled = SETTINGS[setting]
    model = to_memory_format(copy.deepcopy(model), channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    inferer = PrecisionInferer(precision, channels_last)
    loss_fn = DiceIoULoss()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(inferer(x, model), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return torch.compile(step) if compiled else step


def infer_one_roi(model: nn.Module, precision: str) -> Callable[[], torch.Tensor]:
    """The Segmenter's fast path (BatchNorm folded, channels_last) on one ROI, fp32 or bf16."""
    fast = optimize_for_inference(copy.deepcopy(model).eval())
    inferer = PrecisionInferer(precision, channels_last=True)
    x = torch.rand(1, 3, ROI, ROI)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return inferer(x, fast)

    return call


def build_network(name: str) -> nn.Module:
    """One of the six networks, or a peer of the catalogue (``dynunet``: configs/dynunet.yaml, nnU-Net-style DynUNet)."""
    if name in PEERS:
        return open_config([f"{name}.yaml"]).get_parsed_content("network_def")
    return get_network(name, in_channels=3, out_channels=1)


def build_tasks(models: list[str], settings: list[str], threads: list[int], batch: int) -> list[Task]:
    torch.manual_seed(0)
    x = torch.rand(batch, 3, ROI, ROI)
    y = (torch.rand(batch, 1, ROI, ROI) > 0.7).float()
    tasks = []
    for name in models:
        torch.manual_seed(0)
        model = build_network(name)
        for n in threads:
            tasks += [Task(name, "train", s, n, train_step(model, s, x, y)) for s in settings]
            tasks += [Task(name, "infer", p, n, infer_one_roi(model, p)) for p in ("fp32", "bf16")]
    return tasks


def run(tasks: list[Task], warmup: int, repeats: int) -> None:
    progress = tqdm(total=len(tasks) * (warmup + repeats), desc="timed calls", unit="call")
    for round_index in range(warmup + repeats):
        for task in tasks:
            torch.set_num_threads(task.threads)
            start = time.perf_counter()
            task.run()
            elapsed = time.perf_counter() - start
            if round_index == 0 and task.setting.startswith("compile"):
                task.compile_s = elapsed  # the first call compiles
            if round_index >= warmup:
                task.wall.append(elapsed)
            progress.update()
    progress.close()


def markdown(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    lines = [
        f"Run {result['date']}: {cpu['cpu']} ({cpu['simd']}, AMX {cpu['amx']}, AVX512-BF16 {cpu['avx512_bf16']}), "
        f"torch {cpu['torch']}, batch {result['batch']}, {result['repeats']} timed rounds after {result['warmup']} warm-up, "
        "median round; ratio = speed-up over fp32 at the same thread count.",
        "",
        "| model | what | setting | threads | s per call | images/s | speed-up vs fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["kind"] == row["kind"] and r["threads"] == row["threads"] and r["setting"] == "fp32")
        images = (result["batch"] if row["kind"] == "train" else 1) / row["median_s"]
        what = f"train step b{result['batch']}" if row["kind"] == "train" else "one ROI (fast path)"
        setting = row["setting"] + (f" (compile {row['compile_s']:.0f} s)" if row.get("compile_s") else "")
        lines.append(f"| {row['model']} | {what} | {setting} | {row['threads']} | {row['median_s']:.3f} | {images:.2f} | {base['median_s'] / row['median_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--models", nargs="+", default=["connected_resunets", "unet"], choices=[*network_names(), *PEERS])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), help="settings to time (default: all; fp32, the ratios' base, is always timed)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile setting")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here and the JSON beside it")
    args = parser.parse_args()

    chosen = {"fp32", *args.settings}
    settings = [s for s in SETTINGS if s in chosen and not (args.no_compile and SETTINGS[s][2])]
    tasks = build_tasks(args.models, settings, args.threads, args.batch)
    run(tasks, args.warmup, args.repeats)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_description(),
        "batch": args.batch,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "rows": [
            {"model": t.model, "kind": t.kind, "setting": t.setting, "threads": t.threads, "median_s": statistics.median(t.wall), "all_s": t.wall, "compile_s": t.compile_s}
            for t in tasks
        ],
    }
    table = markdown(result)
    print(table)
    if args.out is not None:
        with atomic_output(args.out) as tmp:
            tmp.write_text(table)
        with atomic_output(args.out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
