"""Time the mass detector's training step (the configured network, anchors, matcher and losses).

Builds ``configs/common.yaml``'s RetinaNet as ``detect_train.yaml`` trains it, feeds it batches of
random working images with one mass box each (every other image a negative), and reports seconds
per optimizer step after warm-up, at the precision ``resolve_precision`` picks (``--precision``),
with the number of threads torch uses. From ``--train-images`` it derives an epoch's time and how
many epochs fit ``--minutes``, to size ``scripts/train_detector.sh``'s EPOCHS.

    python scripts/benchmark_detector_step.py --size 512 --batch 4 [--steps 5] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from connected_unets.bundle import open_config, parsed
from connected_unets.precision import cpu_model, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="working size (detection_size)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after 2 warm-up steps")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--train-images", type=int, default=194, help="images per epoch (the shipped training split)")
    parser.add_argument("--val-images", type=int, default=48, help="images searched per validation")
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()

    from connected_unets.detector_training import float_outputs

    torch.manual_seed(0)
    device = torch.device("cpu")
    detector = parsed(open_config(["detect_inference.yaml"], overrides={"detection_size": args.size, "device": device}), "retinanet").train()
    detector.network.register_forward_hook(float_outputs)
    optimizer = torch.optim.AdamW(detector.network.parameters(), lr=5e-4)
    precision = resolve_precision(args.precision, device)
    side = args.size / 8

    def batch() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        images = torch.rand(args.batch, 1, args.size, args.size)
        targets = []
        for index in range(args.batch):
            boxes = torch.tensor([[side, side, 2.5 * side, 2.2 * side]]) if index % 2 == 0 else torch.zeros((0, 4))
            targets.append({"boxes": boxes, "labels": torch.zeros(len(boxes), dtype=torch.long)})
        return images, targets

    def step() -> None:
        images, targets = batch()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses = detector(images, targets)
        (losses["classification"].float() + losses["box_regression"].float()).backward()
        optimizer.step()

    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - started) / args.steps
    detector.eval()
    with torch.inference_mode():
        images, _ = batch()
        started = time.perf_counter()
        detector(images, use_inferer=False)
        per_image_search = (time.perf_counter() - started) / args.batch
    epoch_s = math.ceil(args.train_images / args.batch) * per_step + args.val_images * per_image_search
    print(json.dumps({
        "cpu": cpu_model(), "threads": torch.get_num_threads(), "precision": precision, "size": args.size, "batch": args.batch,
        "seconds_per_step": round(per_step, 3), "seconds_per_image_search": round(per_image_search, 3),
        "seconds_per_epoch": round(epoch_s, 1), "epochs_in_budget": int(args.minutes * 60 // epoch_s), "minutes": args.minutes,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
