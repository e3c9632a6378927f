"""ConnectedResUNets with vs without the synthetic pairs: the table of docs/synthesis.md.

Reads what scripts/compare_synthetic.sh wrote under runs/synthesis_compare/: for the runs ``real``
and ``real_synthetic``, model.json (best epoch, its validation Dice) and eval/{tight,loose}/
(summary.json, cases.csv), and prints one row per run (Dice and IoU with 95 % bootstrap CIs,
IoU90) and the paired difference synthetic minus real per lesion and per patient, for tight boxes
and for boxes loosened by 30 % per side. ``--write`` puts it between the ``synthesis_comparison``
markers of a markdown file.

    python scripts/synthesis_comparison.py [RUNS] [--write docs/synthesis.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from connected_unets.doc_blocks import ci_cell, points_range, write_marked_block
from connected_unets.evaluation import paired_dice_gain_ci

REPO = Path(__file__).resolve().parents[1]
RUNS = {"real": "real DM ROIs only", "real_synthetic": "real + synthetic (CESM -> DM)"}
BOXES = {"tight": "tight", "loose": "loosened 30 %"}
BLOCK = "synthesis_comparison"


def _points(interval: tuple[float, float] | None) -> str:
    return "–" if interval is None else points_range(interval)


def table(runs: Path) -> str:
    """The markdown table of the two runs; a SystemExit naming the first missing file."""
    lines = [
        "| training data | best epoch | boxes | Dice (95 % CI) | IoU (95 % CI) | IoU ≥ 0.9 |",
        "|---|---|---|---|---|---|",
    ]
    summaries = {}
    for run, label in RUNS.items():
        best = json.loads(_needed(runs / run / "model.json").read_text())
        for kind, boxes in BOXES.items():
            summary = summaries[run, kind] = json.loads(_needed(runs / run / "eval" / kind / "summary.json").read_text())
            lines.append(
                f"| {label} | {best['epoch']} | {boxes} | {summary['dice']['mean']:.3f} ({ci_cell(summary['dice'])}) "
                f"| {summary['iou']['mean']:.3f} ({ci_cell(summary['iou'])}) | {summary['iou90_fraction']['value']:.2f} |"
            )
    lines += ["", "| boxes | Dice difference, synthetic minus real (points) | 95 % CI over lesions | over patients |", "|---|---|---|---|"]
    for kind, boxes in BOXES.items():
        ours, base = (runs / run / "eval" / kind / "cases.csv" for run in ("real_synthetic", "real"))
        gain = summaries["real_synthetic", kind]["dice"]["mean"] - summaries["real", kind]["dice"]["mean"]
        lines.append(
            f"| {boxes} | {100 * gain:+.1f} | {_points(paired_dice_gain_ci(ours, base))} "
            f"| {_points(paired_dice_gain_ci(ours, base, by_patient=True))} |"
        )
    return "\n".join(lines)


def _needed(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run scripts/compare_synthetic.sh first")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="?", default=REPO / "runs" / "synthesis_compare")
    parser.add_argument("--write", type=Path, default=None, help=f"markdown file whose {BLOCK} block to replace")
    args = parser.parse_args()
    text = table(args.runs)
    print(text)
    if args.write:
        write_marked_block(args.write, BLOCK, text)


if __name__ == "__main__":
    main()
