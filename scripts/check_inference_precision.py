"""Check that bf16 inference draws the masks fp32 draws, on the validation lesions, and record it.

The Segmenter runs bf16 (``precision: auto`` in inference.yaml, on a CPU with AMX / AVX512-BF16)
only for weights whose record says so: this script segments every lesion of the split in fp32 and
in bf16 (same fast network, same boxes), and passes when the masks agree on >= 99.9 % of the pixels
of the ROIs the network saw and the mean Dice against the reference masks moves by < 0.001. The
result goes into the weights' JSON record (key ``bf16``: pixel agreement, Dice both ways, the weights'
sha256, torch version, CPU), which ``connected_unets.inference.bf16_verified`` reads. Re-run it
whenever the weights change.

    python scripts/check_inference_precision.py                 # the shipped default model
    python scripts/check_inference_precision.py --model unet
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from connected_unets.bundle import DEFAULT_NETWORK, weights_file
from connected_unets.inference import Segmenter
from connected_unets.io import file_sha256
from connected_unets.io import atomic_output, load_image, load_mask
from connected_unets.metrics import dice
from connected_unets.precision import cpu_has_fast_bf16, cpu_model
from connected_unets.roi import MarginRule, expand_box, validate_box

REPO = Path(__file__).resolve().parents[1]
MIN_AGREEMENT = 0.999
MAX_DICE_CHANGE = 0.001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", default=DEFAULT_NETWORK)
    parser.add_argument("--weights", type=Path, default=None, help="default: the bundle's file of --model (the record is written beside it)")
    parser.add_argument("--dataset-dir", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm")
    parser.add_argument("--split", default="validation")
    args = parser.parse_args()
    if not cpu_has_fast_bf16():
        parser.exit(0, "this CPU has no bf16 units (AMX / AVX512-BF16): bf16 stays off here, nothing to check\n")

    weights = args.weights or weights_file(args.model)
    entries = json.loads((args.dataset_dir / "datalist.json").read_text())[args.split]
    fp32 = Segmenter.from_bundle(model=args.model, device="cpu", weights=weights, precision="fp32")
    bf16 = Segmenter.from_bundle(model=args.model, device="cpu", weights=weights, precision="bf16")
    equal = total = 0
    dice_fp32, dice_bf16 = [], []
    for entry in tqdm(entries, desc="fp32 vs bf16", unit="lesion"):
        image = load_image(args.dataset_dir / entry["image"]).array
        label = load_mask(args.dataset_dir / entry["label"]) > 0
        (a,) = fp32.segment_rois(image, [entry["box"]], source=entry["image"])
        (b,) = bf16.segment_rois(image, [entry["box"]], source=entry["image"])
        x0, y0, x1, y1 = expand_box(validate_box(entry["box"], image.shape), image.shape, MarginRule())
        equal += int((a.mask[y0:y1, x0:x1] == b.mask[y0:y1, x0:x1]).sum())
        total += (y1 - y0) * (x1 - x0)
        dice_fp32.append(dice(a.mask, label))
        dice_bf16.append(dice(b.mask, label))
    agreement = equal / total
    change = statistics.mean(dice_bf16) - statistics.mean(dice_fp32)
    record = {
        "passed": agreement >= MIN_AGREEMENT and abs(change) < MAX_DICE_CHANGE,
        "pixel_agreement": agreement,
        "dice_fp32": statistics.mean(dice_fp32),
        "dice_bf16": statistics.mean(dice_bf16),
        "dice_change": change,
        "lesions": len(entries),
        "criteria": f"pixel agreement >= {MIN_AGREEMENT}, |Dice change| < {MAX_DICE_CHANGE}",
        "weights_sha256": file_sha256(weights),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}",
    }
    record_file = Path(weights).with_suffix(".json")
    existing = json.loads(record_file.read_text()) if record_file.is_file() else {}
    with atomic_output(record_file) as tmp:
        tmp.write_text(json.dumps({**existing, "bf16": record}, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    print(f"{'PASSED' if record['passed'] else 'FAILED'}: recorded in {record_file}")


if __name__ == "__main__":
    main()
