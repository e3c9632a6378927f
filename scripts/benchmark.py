"""Size, FLOPs, speed and memory of the six networks and two MONAI peers, every figure from ONE run.

Why one run: the CPU this project is developed on is shared, so absolute times drift with the load
of other jobs; ratios between models measured in the same run are what counts. Timed calls are
interleaved (round r times every model once before round r+1 starts), so load drift spreads over
all models instead of landing on whichever ran last.

Models: ``unet aunet resunet connected_unets connected_aunets connected_resunets`` (3 in / 1 out,
256 x 256) and the peers ``monai_basicunet`` = ``BasicUNet(features=(32, 64, 128, 256, 512, 32))``
(7.78 M parameters, the size of the paper's UNet; it is the reference of every ratio) and
``monai_attentionunet`` = ``AttentionUnet(channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2))``
(7.94 M; the widths of the paper's AUNet, whose gate differs).

Per model: parameters; FLOPs of one 256 x 256 ROI (``torch.utils.flop_counter``, 2 per
multiply-add); latency at batch 1 and throughput at each ``--batch-sizes`` for the ``plain`` path
(eval + inference_mode) and the ``fast`` path (``connected_unets.fast.optimize_for_inference``:
BatchNorm folded, channels_last; on CUDA also ``amp``, fp16 autocast); a training step (forward +
backward + Adam step, DiceIoULoss, batch ``--train-batch``); peak memory. On the CPU peak memory is
measured in a fresh subprocess per model and phase: ``ru_maxrss`` at the end minus the RSS just
before the phase (weights and input already allocated), so it counts activations, workspaces and
gradients/optimizer state, not the imports. On CUDA it is ``torch.cuda.max_memory_allocated`` minus
the allocation before the phase, and achieved TFLOP/s are compared with the card's peak
(``--peak-tflops`` or the datasheet table below).

``--pipeline-steps N`` adds the training data pipeline of ``configs/train.yaml`` (its CacheDataset,
transforms and DataLoader ``num_workers``): images/s the loader delivers alone, and a training step
fed by it, next to the model-only step.

    python scripts/benchmark.py --repeats 3 --threads 1 --out docs/benchmark_results.md
    python scripts/benchmark.py --models connected_resunets monai_basicunet --batch-sizes 8 --repeats 2
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "monai_bundle"

from connected_unets.bundle import network_names, open_config, weights_file  # noqa: E402
from connected_unets.fast import full_fp32, optimize_for_inference  # noqa: E402
from connected_unets.io import atomic_output  # noqa: E402
from connected_unets.losses import DiceIoULoss  # noqa: E402
from connected_unets.networks import get_network  # noqa: E402

OURS = network_names()
PEERS = ("monai_basicunet", "monai_attentionunet")
ALL_MODELS = OURS + PEERS
REFERENCE = "monai_basicunet"
TARGET = "connected_resunets"
TARGET_RATIO = 2.5
ROI = 256

# Vendor datasheet peaks in TFLOP/s, dense (no sparsity): fp32 (CUDA cores), tf32 and fp16/bf16
# tensor cores with fp32 accumulation. Matched by substring of torch.cuda.get_device_name().
KNOWN_PEAKS: dict[str, dict[str, float]] = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0},
    "H100": {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0},
    "A10G": {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0},
    "A10": {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "fp16": 362.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0},
    "RTX 4090": {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2},
    "RTX 3090": {"fp32": 35.6, "tf32": 35.6, "fp16": 71.0},
    "V100": {"fp32": 15.7, "tf32": 15.7, "fp16": 125.0},
    "T4": {"fp32": 8.1, "tf32": 8.1, "fp16": 65.0},
}


def build_model(name: str) -> nn.Module:
    """One of the benchmarked networks, 3 in / 1 out, with its default (paper) widths."""
    if name in OURS:
        return get_network(name, in_channels=3, out_channels=1)
    from monai.networks.nets import AttentionUnet, BasicUNet

    if name == "monai_basicunet":
        return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(32, 64, 128, 256, 512, 32))
    if name == "monai_attentionunet":
        return AttentionUnet(spatial_dims=2, in_channels=3, out_channels=1, channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2))
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(ALL_MODELS)}")


def shipped_weights(name: str) -> Path | None:
    """The bundle's trained weights of ``name`` if shipped (timings do not depend on the values; the
    fast-vs-plain difference is more telling with trained BatchNorm statistics)."""
    if name not in OURS:
        return None
    path = weights_file(name, BUNDLE)
    return path if path.is_file() else None


def load_model(name: str, seed: int = 0) -> tuple[nn.Module, str]:
    """The model in eval mode with shipped weights when there are some, else seeded random ones."""
    torch.manual_seed(seed)
    model = build_model(name)
    weights = shipped_weights(name)
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval(), (str(weights.relative_to(REPO)) if weights else "random init")


def count_flops(model: nn.Module, size: int = ROI) -> int:
    """FLOPs of one (1, 3, size, size) forward pass (torch's counter: 2 per multiply-add)."""
    x = torch.rand(1, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.cpu().eval()(x)
    return int(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Task:
    """One timed measurement, run once per round."""

    model: str
    kind: str  # latency | throughput | train
    path: str  # plain | fast | amp
    batch: int
    run: Callable[[], Any]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.kind}/{self.path}/b{self.batch}"


def inference_call(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, amp: bool) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode(), torch.autocast(x.device.type, enabled=amp):
            return network(x)

    return call


def train_call(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> Callable[[], Any]:
    """One Adam step of a private copy of ``model`` (training mode)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    loss_fn = DiceIoULoss()
    scaler = torch.amp.GradScaler(x.device.type, enabled=amp)

    def call() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, enabled=amp):
            loss = loss_fn(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    return call


def max_differences(plain: nn.Module, fast: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Fast vs plain in fp32 (no TF32): max |logit| and |probability| difference, share of equal 0.5-masks."""
    with torch.inference_mode(), full_fp32():
        a, b = plain(x).float(), fast(x).float()
    pa, pb = torch.sigmoid(a), torch.sigmoid(b)
    return {
        "max_abs_logit": float((a - b).abs().max()),
        "max_abs_prob": float((pa - pb).abs().max()),
        "equal_mask_share": float(((pa > 0.5) == (pb > 0.5)).float().mean()),
    }


# ----------------------------------------------------------------------------- memory (CPU probe)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _phase_call(name: str, model: nn.Module, phase: str, x: torch.Tensor) -> Callable[[], Any]:
    if phase == "infer_plain":
        return inference_call(model, x, False)
    if phase == "infer_fast":
        return inference_call(optimize_for_inference(model, x.device), x, False)
    if phase == "infer_amp":
        return inference_call(optimize_for_inference(model, x.device), x, True)
    if phase == "train":
        return train_call(model, x, (torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) > 0.5).float(), False)
    raise ValueError(f"unknown memory phase {phase!r}")


def memory_probe(name: str, phase: str, batch: int) -> dict[str, Any]:
    """Run in a fresh process: peak RSS growth of one phase (infer_plain, infer_fast, train).

    A 32 x 32 warm-up on a throwaway copy first pages in the library code (file-backed pages of
    libtorch count in RSS); then the kernel's peak mark is reset and the phase runs twice at full
    size: delta = VmHWM after - VmRSS before (weights and input already allocated)."""
    import gc

    model, _ = load_model(name)
    _phase_call(name, copy.deepcopy(model), phase, torch.rand(min(batch, 2), 3, 32, 32))()
    gc.collect()
    x = torch.rand(batch, 3, ROI, ROI)
    call = _phase_call(name, model, phase, x)
    reset = _reset_peak_rss()
    before = _status_bytes("VmRSS")
    for _ in range(2):  # the second call shows whether memory is held between calls
        call()
    peak = _status_bytes("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss_before": before, "peak": peak, "delta": peak - before, "method": "VmHWM reset" if reset else "ru_maxrss"}


def cpu_memory(name: str, phase: str, batch: int, threads: int) -> dict[str, Any]:
    """:func:`memory_probe` in a fresh subprocess, so every model starts from the same state."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, __file__, "--memory-probe", name, phase, str(batch), "--threads", str(threads)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {name} {phase} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- data pipeline


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (the report is read on other clones), else as given."""
    try:
        return Path(path).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def pipeline_benchmark(model_name: str, steps: int, device: torch.device, dataset_dir: Path, progress: tqdm) -> dict[str, Any]:
    """Training batches from configs/train.yaml's own DataLoader: loader alone, loader + step, and
    the same step on a batch already in memory (model only)."""
    parser = open_config(["train.yaml"], BUNDLE, {"dataset_dir": str(dataset_dir), "network_name": model_name, "device": device})
    batch_size = int(parser.get_parsed_content("batch_size"))
    num_workers = int(parser.get_parsed_content("num_workers"))
    started = time.perf_counter()
    loader = parser.get_parsed_content("train#dataloader")
    cache_s = time.perf_counter() - started
    network = parser.get_parsed_content("network")
    inferer = parser.get_parsed_content("train#inferer")  # the trainer's: precision and memory format
    loss_fn = parser.get_parsed_content("loss")
    optimizer = parser.get_parsed_content("optimizer")
    network.train()

    def step(batch: dict[str, torch.Tensor]) -> None:
        x, y = batch["image"].to(device), batch["label"].to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(inferer(x, network), y)
        loss.backward()
        optimizer.step()
        sync(device)

    def batches() -> Any:
        while True:  # as many epochs as needed (a small dataset has few batches per epoch)
            yield from loader

    # loader alone: after the batches the workers prefetched while starting (num_workers x 2)
    it = batches()
    first = next(it)
    for _ in range(2 * num_workers):
        next(it)
    loader_times = []
    for _ in range(steps):
        t = time.perf_counter()
        next(it)
        loader_times.append(time.perf_counter() - t)
        progress.update(1)
    step(first)  # warm-up
    model_times, fed_times = [], []
    for _ in range(steps):
        sync(device)
        t = time.perf_counter()
        step(first)
        model_times.append(time.perf_counter() - t)
        progress.update(1)
    for _ in range(steps):
        t = time.perf_counter()
        step(next(it))
        fed_times.append(time.perf_counter() - t)
        progress.update(1)
    per_batch = {k: statistics.median(v) for k, v in (("loader", loader_times), ("model", model_times), ("fed", fed_times))}
    return {
        "model": model_name,
        "dataset_dir": _shown_path(dataset_dir),
        "training_items": len(loader.dataset),
        "batch_size": batch_size,
        "num_workers": num_workers,
        "cache_build_s": cache_s,
        "steps": steps,
        "median_s_per_batch": per_batch,
        "images_per_s": {k: batch_size / v for k, v in per_batch.items()},
        "samples_s": {"loader": loader_times, "model": model_times, "fed": fed_times},
    }


# ----------------------------------------------------------------------------- report


def peak_tflops(device: torch.device, override: list[float] | None) -> dict[str, float] | None:
    """Peak TFLOP/s for the fp32 path (tf32 when cuDNN may use it) and the AMP path."""
    if override:
        return {"fp32": override[0], "amp": override[-1]}
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in KNOWN_PEAKS.items():
        if key in name:
            return {"fp32": peaks["tf32"] if torch.backends.cudnn.allow_tf32 else peaks["fp32"], "amp": peaks["fp16"]}
    return None


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


def markdown(result: dict[str, Any]) -> str:
    """The run as markdown tables: absolute figures, then ratios to the reference model."""
    env = result["environment"]
    models = result["models"]
    paths = result["paths"]
    batches = result["batch_sizes"]
    lines = [
        f"Command: `{env['command']}`  ",
        f"Date: {env['date']}; device: {env['device_name']}; torch {env['torch']}, {env['threads']} thread(s); "
        f"load average before {env['load_before']}, after {env['load_after']}; {env['repeats']} timed repeats "
        f"(medians; min and CPU times in the JSON).  ",
        f"Peak memory: {env['memory_method']}.  ",
        "Peers: monai_basicunet = BasicUNet(features=(32, 64, 128, 256, 512, 32)), monai_attentionunet = "
        "AttentionUnet(channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2)); weights: "
        + ", ".join(f"{name} {m['weights']}" for name, m in models.items() if m["weights"] != "random init")
        + ", the others random init.",
        "",
    ]
    head = ["model", "params (M)", "GFLOP/ROI"]
    for p in paths:
        head.append(f"b1 latency {p} (s)")
    for b in batches:
        for p in paths:
            head.append(f"b{b} {p} (ROI/s)")
    head += [f"train b{result['train_batch']} (s/step)", "train (img/s)"]
    mem_cols = list(next(iter(models.values()))["memory"].keys())
    head += [f"peak mem {c} (MB)" for c in mem_cols]
    head += ["fast max abs Δp", "equal mask px"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        row = [name, fmt(m["params"] / 1e6), fmt(m["flops"] / 1e9)]
        row += [fmt(m["latency_s"].get(p)) for p in paths]
        row += [fmt(m["throughput_roi_s"].get(f"{p}/b{b}")) for b in batches for p in paths]
        train = m["train_step_s"]
        row += [fmt(train), fmt(result["train_batch"] / train if train else None)]
        row += [fmt(m["memory"][c] / 2**20 if m["memory"].get(c) is not None else None) for c in mem_cols]
        diff = m["fast_vs_plain"]
        row += [f"{diff['max_abs_prob']:.1e}", f"{100 * diff['equal_mask_share']:.4f} %"]
        lines.append("| " + " | ".join(row) + " |")
    ref = models.get(REFERENCE)
    if ref is not None:
        lines += ["", f"Ratios to {REFERENCE} (same path, same run; time ratios > 1 = slower):", ""]
        head = ["model", "params", "FLOPs"] + [f"b1 latency {p}" for p in paths]
        head += [f"b{b} s/ROI {p}" for b in batches for p in paths] + ["train step"] + [f"mem {c}" for c in mem_cols]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

        def ratio(a: float | None, b: float | None) -> str:
            return "–" if a is None or not b else f"{a / b:.2f}"

        for name, m in models.items():
            row = [name, ratio(m["params"], ref["params"]), ratio(m["flops"], ref["flops"])]
            row += [ratio(m["latency_s"].get(p), ref["latency_s"].get(p)) for p in paths]
            row += [ratio(ref["throughput_roi_s"].get(f"{p}/b{b}"), m["throughput_roi_s"].get(f"{p}/b{b}")) for b in batches for p in paths]
            row += [ratio(m["train_step_s"], ref["train_step_s"])]
            row += [ratio(m["memory"].get(c), ref["memory"].get(c)) for c in mem_cols]
            lines.append("| " + " | ".join(row) + " |")
    target = result.get("target")
    if target:
        lines += ["", f"Target: {TARGET} per-ROI latency within {TARGET_RATIO}x of {REFERENCE}: "
                  + "; ".join(f"{k} {v:.2f}x" for k, v in target["ratios"].items())
                  + f" -> {'met' if target['met'] else 'NOT met'} (fast path vs the reference's faster path)."]
    if result.get("achieved_tflops"):
        peaks = result.get("peak_tflops")
        lines += ["", "Achieved TFLOP/s at the largest batch" + (f" (peak fp32 path {peaks['fp32']}, amp {peaks['amp']})" if peaks else "") + ":", ""]
        lines += ["| model | " + " | ".join(paths) + " |", "|" + "---|" * (len(paths) + 1)]
        for name, per_path in result["achieved_tflops"].items():
            cells = []
            for p in paths:
                value = per_path.get(p)
                peak = peaks["amp" if p == "amp" else "fp32"] if peaks else None
                cells.append("–" if value is None else f"{value:.2f}" + (f" ({100 * value / peak:.0f} %)" if peak else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    pipe = result.get("pipeline")
    if pipe:
        ips = pipe["images_per_s"]
        lines += [
            "",
            f"Training data pipeline (configs/train.yaml, {pipe['model']}, batch {pipe['batch_size']}, "
            f"num_workers {pipe['num_workers']}, {pipe['training_items']} training ROIs from {pipe['dataset_dir']}, "
            f"median of {pipe['steps']} batches): loader alone {ips['loader']:.1f} img/s, model-only step "
            f"{ips['model']:.1f} img/s, step fed by the loader {ips['fed']:.1f} img/s "
            f"({'the loader starves the model' if ips['fed'] < 0.9 * ips['model'] else 'the model is the bottleneck'}).",
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--models", nargs="+", default=list(ALL_MODELS), choices=ALL_MODELS, metavar="MODEL")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32], help="throughput batch sizes (latency is always batch 1)")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (after --warmup rounds)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--paths", nargs="+", default=None, help="inference paths: plain fast (CPU), plain fast amp (CUDA)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    parser.add_argument("--pipeline-steps", type=int, default=0, help="batches for the train.yaml data-pipeline measurement (0: skip)")
    parser.add_argument("--pipeline-model", default="unet", choices=OURS)
    parser.add_argument("--dataset-dir", type=Path, default=None, help="prepared ROIs (default: runs/data/cdd_cesm_dm, else the bundle's sample ROIs)")
    parser.add_argument("--peak-tflops", nargs="+", type=float, default=None, help="peak TFLOP/s of the card: FP32_PATH [AMP_PATH]")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown here and the JSON next to it (.json), atomically")
    parser.add_argument("--memory-probe", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        name, phase, batch = args.memory_probe
        print(json.dumps(memory_probe(name, phase, int(batch))))
        return

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda but no CUDA GPU is available")
        torch.backends.cudnn.benchmark = True
    paths = args.paths or (["plain", "fast", "amp"] if device.type == "cuda" else ["plain", "fast"])
    if "amp" in paths and device.type != "cuda":
        parser.error("the amp path needs a CUDA device")
    load_before = os.getloadavg()
    torch.manual_seed(0)

    # build everything first, then time in interleaved rounds
    tasks: list[Task] = []
    models: dict[str, dict[str, Any]] = {}
    setup = tqdm(args.models, desc="build, FLOPs, exactness", unit="model")
    for name in setup:
        model, weights = load_model(name)
        flops = count_flops(model)
        model = model.to(device)
        fast = optimize_for_inference(model, device)
        probe = torch.rand(2, 3, ROI, ROI, device=device)
        diff = max_differences(model, fast, probe)
        runners = {"plain": (model, False), "fast": (fast, False), "amp": (fast, True)}
        inputs = {b: torch.rand(b, 3, ROI, ROI, device=device) for b in {1, *args.batch_sizes}}
        for path in paths:
            network, amp = runners[path]
            tasks.append(Task(name, "latency", path, 1, inference_call(network, inputs[1], amp)))
            for b in args.batch_sizes:
                tasks.append(Task(name, "throughput", path, b, inference_call(network, inputs[b], amp)))
        if not args.no_train:
            tb = args.train_batch
            x, y = torch.rand(tb, 3, ROI, ROI, device=device), (torch.rand(tb, 1, ROI, ROI, device=device) > 0.5).float()
            tasks.append(Task(name, "train", "plain", tb, train_call(copy.deepcopy(model), x, y, False)))
            if device.type == "cuda":
                tasks.append(Task(name, "train", "amp", tb, train_call(copy.deepcopy(model), x, y, True)))
        models[name] = {"params": sum(p.numel() for p in model.parameters()), "flops": flops, "weights": weights,
                        "fast_vs_plain": diff, "memory": {}}

    memory_jobs = []
    if not args.no_memory:
        phases = [("infer_plain", 1), ("infer_fast", 1)] + ([("infer_amp", 1)] if "amp" in paths else [])
        phases += [] if args.no_train else [("train", args.train_batch)]
        memory_jobs = [(name, phase, batch) for name in args.models for phase, batch in phases]
    rounds = args.warmup + args.repeats
    pipeline_units = 3 * args.pipeline_steps if args.pipeline_steps else 0
    total = rounds * len(tasks) + len(memory_jobs) + pipeline_units
    with tqdm(total=total, desc="timing", unit="call") as bar:
        for r in range(rounds):
            for task in tasks:
                bar.set_postfix_str(task.key, refresh=False)
                sync(device)
                wall, cpu = time.perf_counter(), time.process_time()
                task.run()
                sync(device)
                if r >= args.warmup:
                    task.wall.append(time.perf_counter() - wall)
                    task.cpu.append(time.process_time() - cpu)
                bar.update(1)
        for name, phase, batch in memory_jobs:
            bar.set_postfix_str(f"memory {name} {phase}", refresh=False)
            if device.type == "cuda":
                models[name]["memory"][phase] = cuda_memory(name, phase, batch, device)
            else:
                models[name]["memory"][phase] = cpu_memory(name, phase, batch, torch.get_num_threads())["delta"]
            bar.update(1)
        pipeline = None
        if args.pipeline_steps:
            dataset_dir = args.dataset_dir or next(
                (p for p in (REPO / "runs" / "data" / "cdd_cesm_dm", BUNDLE / "sample_data" / "rois") if (p / "datalist.json").is_file())
            )
            bar.set_postfix_str("train.yaml data pipeline", refresh=False)
            pipeline = pipeline_benchmark(args.pipeline_model, args.pipeline_steps, device, dataset_dir, bar)

    for task in tasks:
        m = models[task.model]
        median = statistics.median(task.wall)
        m.setdefault("samples", {})[task.key] = {"wall_s": task.wall, "cpu_s": task.cpu, "median_s": median, "min_s": min(task.wall)}
        if task.kind == "latency":
            m.setdefault("latency_s", {})[task.path] = median
        elif task.kind == "throughput":
            m.setdefault("throughput_roi_s", {})[f"{task.path}/b{task.batch}"] = task.batch / median
        elif task.kind == "train" and task.path == "plain":
            m["train_step_s"] = median
        elif task.kind == "train":
            m[f"train_step_{task.path}_s"] = median
    for m in models.values():
        m.setdefault("latency_s", {})
        m.setdefault("throughput_roi_s", {})
        m.setdefault("train_step_s", None)

    result: dict[str, Any] = {
        "environment": {
            "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores visible)",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "repeats": args.repeats,
            "memory_method": "torch.cuda.max_memory_allocated minus allocated before the phase (2 calls)" if device.type == "cuda"
            else "fresh subprocess per model and phase, after a 32x32 warm-up on a copy: peak RSS (VmHWM, reset just before) over 2 calls minus RSS before them",
        },
        "paths": paths,
        "batch_sizes": args.batch_sizes,
        "train_batch": args.train_batch,
        "models": models,
    }
    if TARGET in models and REFERENCE in models and "fast" in paths:
        ours = models[TARGET]["latency_s"]["fast"]
        ref_best = min(v for k, v in models[REFERENCE]["latency_s"].items() if k in ("plain", "fast"))
        ratios = {"vs plain": ours / models[REFERENCE]["latency_s"]["plain"]} if "plain" in paths else {}
        ratios["vs its faster path"] = ours / ref_best

        def cpu_s(name: str, path: str) -> float:
            return statistics.median(models[name]["samples"][f"{name}/latency/{path}/b1"]["cpu_s"])

        if device.type == "cpu":  # CPU time of this process: less sensitive to other jobs than wall time
            ratios["CPU time vs its faster path"] = cpu_s(TARGET, "fast") / min(
                cpu_s(REFERENCE, p) for p in paths if p in ("plain", "fast"))
        result["target"] = {"ratios": ratios, "met": ratios["vs its faster path"] <= TARGET_RATIO}
    if device.type == "cuda":
        largest = max(args.batch_sizes)
        result["peak_tflops"] = peak_tflops(device, args.peak_tflops)
        result["achieved_tflops"] = {
            name: {p: m["flops"] * m["throughput_roi_s"][f"{p}/b{largest}"] / 1e12 for p in paths} for name, m in models.items()
        }
    if pipeline:
        result["pipeline"] = pipeline
    text = markdown(result)
    print(text)
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(text)
        with atomic_output(args.out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


def cuda_memory(name: str, phase: str, batch: int, device: torch.device) -> int:
    """Peak CUDA allocation growth of one phase (in-process: the caching allocator's counters)."""
    model, _ = load_model(name)
    model = model.to(device)
    x = torch.rand(batch, 3, ROI, ROI, device=device)
    call = _phase_call(name, model, phase, x)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    for _ in range(2):
        call()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del call, model, x
    torch.cuda.empty_cache()
    return int(peak)


if __name__ == "__main__":
    main()
