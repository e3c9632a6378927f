"""The model-comparison table of docs/results.md, from what scripts/compare_models.sh wrote.

Reads, for every run folder under runs/compare/<tag>/: model.json (best epoch and its validation
Dice), eval_tight/summary.json and eval_loose/summary.json (the evaluation reports), and prints a
markdown table: Dice, IoU with 95 % bootstrap CIs, IoU90, pooled pixel AUC, the Dice gain of each
Connected network over its single U-Net (with a paired bootstrap CI over lesions when both runs'
cases.csv are here), and the paper's stated gains beside it. With ``--write``
it replaces the table between the markers in docs/results.md (atomically); a network with no run
folder here keeps the row the document already has, so runs made on different machines (or in
different sessions) can fill one table.

    python scripts/results_table.py [--runs runs/compare] [--write docs/results.md] [--block results] [--tags ...]

``--block NAME`` picks the table between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` (one
document can hold several runs, e.g. one block per seed).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from connected_unets import bundle as catalogue
from connected_unets.doc_blocks import ci_cell, marked_block, points_range, write_marked_block
from connected_unets.evaluation import paired_dice_gain_ci
from connected_unets.networks import get_network

REPO = Path(__file__).resolve().parents[1]
NO_ASPP = "_noaspp"  # a Connected network's run without ASPP (the paper's ablation)
# the catalogue's networks in its order, then the Connected ones without ASPP (scripts/compare_models.sh's runs)
TAGS = [*catalogue.network_names(), *(name + NO_ASPP for name in catalogue.connected_networks())]
# peers of the catalogue (DynUNet): trained by the same train.yaml, compared with the default network
PEER_TAGS = list(catalogue.PEERS)
# Dice gain (points) of each Connected network over its base network stated in the paper (CBIS-DDSM, INbreast)
PAPER_GAIN = {"connected_unets": (3.6, 4.15), "connected_aunets": (3.4, 2.17), "connected_resunets": (4.0, 1.42)}


def base_of(network: str) -> str:
    """The single U-Net a network builds on: connected_resunets -> resunet (the catalogue's)."""
    return catalogue.base_network(network)


def is_connected(network: str) -> bool:
    return network in catalogue.connected_networks()


def display_name(tag: str) -> str:
    """The catalogue's display name of the run's network, ``(no ASPP)`` added for an ablation run."""
    return catalogue.display_name(tag.removesuffix(NO_ASPP)) + (" (no ASPP)" if tag.endswith(NO_ASPP) else "")


def parameters(tag: str) -> int:
    if tag in PEER_TAGS:  # configs/<peer>.yaml defines it
        network = catalogue.open_config([f"{tag}.yaml"]).get_parsed_content("network_def")
    else:
        network = get_network(tag.removesuffix(NO_ASPP), aspp=not tag.endswith(NO_ASPP), in_channels=3, out_channels=1)
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def _row(tag: str, run: Path, base_dice: dict[str, float]) -> str | None:
    tight, loose = (run / f"eval_{kind}" / "summary.json" for kind in ("tight", "loose"))
    if not (tight.is_file() and loose.is_file()):
        return None
    best = json.loads((run / "model.json").read_text())
    state_epochs = _epochs_run(run / "train.log")
    t, l = json.loads(tight.read_text()), json.loads(loose.read_text())
    network = tag.removesuffix(NO_ASPP)
    gain = ""
    if is_connected(network) and (base := base_of(network)) in base_dice:
        gain = f"{100 * (t['dice']['mean'] - base_dice[base]):+.1f}"
        paired = paired_dice_gain_ci(run / "eval_tight" / "cases.csv", run.parent / base / "eval_tight" / "cases.csv")
        if paired is not None:
            gain += f" ({points_range(paired)})"
    paper = "" if tag not in PAPER_GAIN else "+{:.2f} / +{:.2f}".format(*PAPER_GAIN[tag])
    iou90 = t["iou90_fraction"]["value"]
    return (
        f"| {display_name(tag)} | {parameters(tag) / 1e6:.2f} M | {best['epoch']} of {state_epochs} "
        f"| {t['dice']['mean']:.3f} ({ci_cell(t['dice'])}) | {t['iou']['mean']:.3f} ({ci_cell(t['iou'])}) "
        f"| {iou90:.2f} | {t['pooled_auc']:.3f} | {l['dice']['mean']:.3f} ({ci_cell(l['dice'])}) | {gain} | {paper} |"
    )


def _epochs_run(log: Path) -> str:
    epochs = re.findall(r"Epoch: (\d+)/\d+, Iter", log.read_text()) if log.is_file() else []
    return epochs[-1] if epochs else "?"


def _peer_differences(runs: Path, tags: list[str]) -> list[str]:
    """Each peer's paired Dice difference to the default network (tight boxes), over lesions and over patients."""
    reference = catalogue.DEFAULT_NETWORK
    found = []
    for tag in [t for t in PEER_TAGS if t in tags]:
        cases, reference_cases = runs / tag / "eval_tight" / "cases.csv", runs / reference / "eval_tight" / "cases.csv"
        lesions, patients = (paired_dice_gain_ci(cases, reference_cases, by_patient=flag) for flag in (False, True))
        if lesions is not None and patients is not None:
            found.append(f"{display_name(tag)} {points_range(lesions)} over lesions, {points_range(patients)} over patients")
    if not found:
        return []
    return ["", f"Paired Dice difference to {display_name(reference)} (tight boxes, points, 95 % CI): " + "; ".join(found) + "."]


def table(runs: Path, previous: dict[str, str] | None = None, tags: list[str] = TAGS) -> str:
    """The markdown table of ``tags``; ``previous`` maps display names to rows to keep for networks not run here."""
    previous = previous or {}
    base_dice = {}
    for tag in [name for name in catalogue.network_names() if not is_connected(name)]:
        summary = runs / tag / "eval_tight" / "summary.json"
        if summary.is_file():
            base_dice[tag] = json.loads(summary.read_text())["dice"]["mean"]
    lines = [
        "| network | trainable parameters | best epoch | Dice, tight boxes (95 % CI) | IoU, tight (95 % CI) "
        "| IoU ≥ 0.9 share | pooled pixel AUC | Dice, boxes loosened 30 % (95 % CI) | Dice gain over its base, points (paired 95 % CI) "
        "| paper's gain, CBIS-DDSM / INbreast |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    missing = []
    for tag in [t for t in [*TAGS, *PEER_TAGS] if t in tags]:
        row = _row(tag, runs / tag, base_dice) or previous.get(display_name(tag))
        if row is None:
            missing.append(display_name(tag))
        else:
            lines.append(row)
    clustered = []
    for tag in [t for t in TAGS if t in tags and is_connected(t.removesuffix(NO_ASPP))]:
        base = base_of(tag.removesuffix(NO_ASPP))
        interval = paired_dice_gain_ci(runs / tag / "eval_tight" / "cases.csv", runs / base / "eval_tight" / "cases.csv", by_patient=True)
        if interval is not None:
            clustered.append(f"{display_name(tag)} {points_range(interval)}")
    if clustered:
        lines.append("")
        lines.append("Paired gain CIs resampling patients (with all their lesions) instead of lesions: " + "; ".join(clustered) + ".")
    lines += _peer_differences(runs, tags)
    references = [
        json.loads(summary.read_text()).get("whole_roi")
        for summary in sorted(runs.glob("*/eval_tight/summary.json"))
    ]
    reference = next((r for r in references if r), None)
    if reference:
        lines.append("")
        lines.append(
            f"Reference: a mask filling the whole ROI scores Dice {reference['dice']:.3f} / IoU {reference['iou']:.3f} "
            "on these lesions (tight boxes)."
        )
    if missing:
        lines.append("")
        lines.append(f"Not finished yet (no evaluation report): {', '.join(missing)}.")
    return "\n".join(lines)


def rows_by_name(document: str, block: str = "results") -> dict[str, str]:
    """The table rows already between the markers of ``block`` in ``document``, keyed by network name."""
    text = marked_block(document, block)
    if text is None:
        return {}
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| network ")]
    return {row.split("|")[1].strip(): row for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "compare")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose marked table to replace")
    parser.add_argument("--block", default="results", help="name in the markers of the table to replace")
    parser.add_argument("--tags", nargs="+", default=TAGS, choices=[*TAGS, *PEER_TAGS], metavar="TAG",
                        help=f"networks of the table (default: the nine of compare_models.sh; peers: {', '.join(PEER_TAGS)})")
    args = parser.parse_args()
    if args.write and not args.write.is_file():
        raise SystemExit(f"{args.write}: no such file")
    document = args.write.read_text() if args.write else ""
    text = table(args.runs, rows_by_name(document, args.block), args.tags)
    print(text)
    if args.write:
        write_marked_block(args.write, args.block, text)


if __name__ == "__main__":
    main()
