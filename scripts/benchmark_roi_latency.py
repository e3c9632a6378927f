"""Seconds that one new ROI takes once the model is loaded (the Slicer module's interactive case).

Loads the Segmenter once (as the Slicer module's cached model does), then times
``Segmenter.segment`` on one ROI of a shipped sample mammogram ``--repeats`` times and prints the
median wall time and the median CPU time of this process (summed over its threads: on a CPU that
other jobs share, the CPU time of a ``--threads 1`` run estimates the wall time of one idle core).
Without ``--weights`` it uses the bundle's weights when they exist, else a random-initialised
state_dict of the same network written to a temporary file: the time does not depend on the values.

    python scripts/benchmark_roi_latency.py --device cpu --repeats 5 [--plain]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from connected_unets.bundle import bundle_dir, weights_file
from connected_unets.inference import Segmenter
from connected_unets.networks import get_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="connected_resunets")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--weights", default=None, help="state_dict file; default: the bundle's, else random")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rois", type=int, default=1, help="ROIs per call (all in one batch)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--plain", action="store_true", help="the plain network instead of the fast path (Segmenter fast=False)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = bundle_dir()
    samples = json.loads((bundle / "sample_data" / "samples.json").read_text())
    sample = next(s for s in samples if len(s["boxes"]) >= min(args.rois, 2)) if args.rois > 1 else samples[0]
    image = np.asarray(Image.open(bundle / "sample_data" / sample["image"]))
    boxes = (sample["boxes"] * args.rois)[: args.rois]

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        bundle_weights = weights_file(args.model, bundle)
        if weights is None and not bundle_weights.is_file():
            weights = Path(tmp) / "random.pt"
            torch.save(get_network(args.model, in_channels=3, out_channels=1).state_dict(), weights)
            print(f"no trained weights at {bundle_weights}: timing random-initialised weights")
        started = time.perf_counter()
        segmenter = Segmenter.from_bundle(model=args.model, device=args.device, weights=weights, fast=not args.plain)
        load_s = time.perf_counter() - started
        segmenter.segment(image, boxes, source=sample["image"])  # warm-up (first call allocates)
        times, cpu_times = [], []
        for _ in range(args.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            segmenter.segment(image, boxes, source=sample["image"])
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
    print(
        f"model {args.model} ({'plain' if args.plain else 'fast'} path) on {segmenter.device} (torch {torch.__version__}, {torch.get_num_threads()} threads): "
        f"load {load_s:.2f} s; {args.rois} ROI(s) of {sample['image']} per call: "
        f"median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s over {args.repeats} calls; "
        f"CPU time per call (all threads) median {statistics.median(cpu_times):.3f} s"
    )


if __name__ == "__main__":
    main()
