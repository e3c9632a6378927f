"""Does bf16 train as well as fp32? The same first steps of train.yaml in both precisions, side by side.

Runs ``configs/train.yaml`` twice from the same seed and the same random initialisation, on the
shipped training data, for ``--epochs`` epochs (23 optimizer steps each): once with ``--precision
fp32`` and once with ``--precision bf16`` (both channels_last, as the default). Reads the two runs'
learning-curve logs (``<network>_train_log.csv``, ``_val_log.csv``) and writes a table of the loss
per step, the validation Dice, the step times, and a plot.

    python scripts/compare_training_precision.py --out docs/precision_check.md   # + docs/precision_check.png
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
from pathlib import Path

from connected_unets.io import atomic_output
from connected_unets.precision import cpu_has_fast_bf16, cpu_model

REPO = Path(__file__).resolve().parents[1]


def train(precision: str, network: str, epochs: int, out: Path, data: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", "['configs/common.yaml','configs/train.yaml']",
        "--logging_file", "configs/logging.conf", "--network_name", network, "--dataset_dir", str(data),
        "--output_dir", str(out), "--ckpt_dir", str(out), "--epochs", str(epochs), "--precision", precision, "--seed", "0",
    ]  # fmt: skip
    with (out / "train.log").open("w") as log:
        subprocess.run(command, cwd=REPO / "monai_bundle", stdout=log, stderr=subprocess.STDOUT, check=True)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--network", default="connected_resunets")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "precision_check")
    parser.add_argument("--out", type=Path, default=None, help="markdown table; the plot goes beside it (.png)")
    args = parser.parse_args()
    if not cpu_has_fast_bf16():
        print(f"note: {cpu_model()} has no bf16 units; bf16 is emulated here and slow", file=sys.stderr)
    logs = {}
    for precision in ("fp32", "bf16"):
        folder = args.runs / precision
        if not (folder / f"{args.network}_val_log.csv").is_file():
            train(precision, args.network, args.epochs, folder, args.data)
        logs[precision] = (read(folder / f"{args.network}_train_log.csv"), read(folder / f"{args.network}_val_log.csv"))
    (fp32, fp32_val), (bf16, bf16_val) = logs["fp32"], logs["bf16"]
    differences = [abs(float(a["loss"]) - float(b["loss"])) for a, b in zip(fp32, bf16)]
    lines = [
        f"{args.network}, {len(fp32)} optimizer steps of batch 8 from the same seed and initialisation, on {cpu_model()} "
        "(`python scripts/compare_training_precision.py`).",
        "",
        "| | fp32 (channels_last) | bf16 autocast (channels_last) |",
        "|---|---|---|",
        f"| median step time (s) | {statistics.median(float(r['wall_s']) for r in fp32):.2f} | {statistics.median(float(r['wall_s']) for r in bf16):.2f} |",
        f"| mean training loss, all steps | {statistics.mean(float(r['loss']) for r in fp32):.4f} | {statistics.mean(float(r['loss']) for r in bf16):.4f} |",
        f"| training loss, last step | {float(fp32[-1]['loss']):.4f} | {float(bf16[-1]['loss']):.4f} |",
        f"| validation Dice after the run | {float(fp32_val[-1]['val_mean_dice']):.4f} | {float(bf16_val[-1]['val_mean_dice']):.4f} |",
        "",
        f"Largest per-step loss difference {max(differences):.4f}, median {statistics.median(differences):.4f}.",
        "",
        "| step | loss fp32 | loss bf16 |",
        "|---|---|---|",
        *(f"| {a['iteration']} | {float(a['loss']):.4f} | {float(b['loss']):.4f} |" for a, b in zip(fp32, bf16)),
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is None:
        return
    with atomic_output(args.out) as tmp:
        tmp.write_text(table)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, rows in (("fp32", fp32), ("bf16 autocast", bf16)):
        axis.plot([int(r["iteration"]) for r in rows], [float(r["loss"]) for r in rows], marker=".", label=name)
    axis.set_xlabel("optimizer step (batch 8)")
    axis.set_ylabel("training loss (1 - 0.4 Dice - 0.6 IoU)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_output(args.out.with_suffix(".png")) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


if __name__ == "__main__":
    main()
