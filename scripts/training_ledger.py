"""The cumulative training ledger of the shipped models: one row per training stretch, a learning curve.

Training here happens in stretches (a background run in one session, continued in a later one from
the committed weights by ``scripts/continue_training.sh``); ``runs/`` does not outlive a session, so
what a stretch did is recorded in the repository when it ends:

- ``monai_bundle/docs/ledger/stretches.csv``: network, stretch, dates, the cumulative optimizer step
  at its start and end, epochs, best epoch and its cumulative step, best validation Dice, wall and
  CPU hours, CPU, precision, where it started from, whether its best weights were committed;
- ``monai_bundle/docs/ledger/<network>_<stretch>_val.csv``: its validation log (Dice per epoch),
  whose steps the learning curve shifts by the stretch's start;
- ``docs/learning_curve.png`` and the table between ``<!-- ledger:begin -->`` / ``<!-- ledger:end -->``
  in the model card (``monai_bundle/docs/README.md``).

    python scripts/training_ledger.py add connected_resunets runs/connected_resunets --start-step 92 \\
        --start-from "shipped model.pt (epoch 4 of 5)" --committed
    python scripts/training_ledger.py render
    python scripts/training_ledger.py shipped-step connected_resunets    # where a new stretch starts
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

from connected_unets.bundle import display_name, weights_name
from connected_unets.doc_blocks import write_marked_block
from connected_unets.io import atomic_output
from connected_unets.precision import cpu_has_fast_bf16, cpu_model

REPO = Path(__file__).resolve().parents[1]
LEDGER = REPO / "monai_bundle" / "docs" / "ledger"
STRETCHES = LEDGER / "stretches.csv"
CARD = REPO / "monai_bundle" / "docs" / "README.md"
PLOT = REPO / "docs" / "learning_curve.png"
FIELDS = (
    "network", "stretch", "started", "ended", "start_step", "end_step", "epochs", "best_epoch", "best_step",
    "best_val_dice", "wall_h", "cpu_h", "cpu", "precision", "start_from", "committed", "note",
)  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict], fields: list[str] | tuple[str, ...]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def cpu_label(model: str, bf16_units: bool | None) -> str:
    """The CPU as the ledger names it: its model and whether it has bf16 units (unsaid when unknown)."""
    return model + ("" if bf16_units is None else " (AMX/AVX512-BF16)" if bf16_units else " (no bf16 units)")


def cpu_name() -> str:
    return cpu_label(cpu_model(), cpu_has_fast_bf16())


def recorded_setting(run: Path) -> tuple[str | None, str | None]:
    """The CPU and the precision the run's own run.json records (None where it has no record): the
    ledger may be written on another machine, and a default would be wrong on a CPU that trains fp32."""
    record = run / "run.json"
    if not record.is_file():
        return None, None
    info = json.loads(record.read_text())
    machine = info.get("machine", {})
    cpu = cpu_label(machine["cpu"], machine.get("cpu_bf16_units")) if machine.get("cpu") else None
    precision = None
    if "precision" in info:
        precision = {"bf16": "bf16 autocast", "fp32": "fp32"}.get(info["precision"], str(info["precision"]))
        if "channels_last" in info:
            precision += ", channels_last" if info["channels_last"] else ", NCHW"
    return cpu, precision


def add(args: argparse.Namespace) -> None:
    """Record the run folder of one finished stretch."""
    run = Path(args.run)
    steps = read_csv(run / f"{args.network}_train_log.csv")
    val = read_csv(run / f"{args.network}_val_log.csv")
    score = json.loads((run / Path(weights_name(args.network)).with_suffix(".json")).read_text())
    recorded_cpu, recorded_precision = recorded_setting(run)
    stretches = read_csv(STRETCHES) if STRETCHES.is_file() else []
    number = 1 + sum(1 for r in stretches if r["network"] == args.network)
    best_epoch = int(score["epoch"])
    best_row = next(r for r in val if int(r["epoch"]) == best_epoch)
    stretches.append({
        "network": args.network, "stretch": number, "started": steps[0]["utc"], "ended": steps[-1]["utc"],
        "start_step": args.start_step, "end_step": args.start_step + int(steps[-1]["iteration"]),
        "epochs": int(steps[-1]["epoch"]), "best_epoch": best_epoch, "best_step": args.start_step + int(best_row["iteration"]),
        "best_val_dice": f"{float(score['score']):.4f}",
        "wall_h": f"{sum(float(r['wall_s']) for r in steps) / 3600:.2f}", "cpu_h": f"{sum(float(r['cpu_s']) for r in steps) / 3600:.2f}",
        "cpu": args.cpu or recorded_cpu or cpu_name(), "precision": args.precision or recorded_precision or "not recorded", "start_from": args.start_from,
        "committed": "yes" if args.committed else "no", "note": args.note,
    })  # fmt: skip
    LEDGER.mkdir(parents=True, exist_ok=True)
    write_csv(STRETCHES, stretches, FIELDS)
    write_csv(LEDGER / f"{args.network}_{number}_val.csv", val, list(val[0]))
    render(args)


def shipped_step(network: str) -> int:
    """Cumulative optimizer steps behind the shipped weights of ``network``: the best step of its
    last stretch whose weights were committed (0 when none was)."""
    committed = [r for r in read_csv(STRETCHES) if r["network"] == network and r["committed"] == "yes"] if STRETCHES.is_file() else []
    return int(committed[-1]["best_step"]) if committed else 0


def card_table(stretches: list[dict[str, str]]) -> str:
    lines = [
        "| network | stretch | dates (UTC) | steps (cumulative) | epochs | best: epoch, step, validation Dice | wall h | CPU h | CPU, precision | from | weights committed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in stretches:
        dates = r["started"][:10] if r["started"] == r["ended"] else f"{r['started'][:16].replace('T', ' ')} – {r['ended'][11:16]}"
        lines.append(
            f"| {display_name(r['network'])} | {r['stretch']} | {dates} | {r['start_step']} → {r['end_step']} | {r['epochs']} | "
            f"{r['best_epoch']}, {r['best_step']}, **{r['best_val_dice']}** | {r['wall_h']} | {r['cpu_h']} | {r['cpu']}, {r['precision']} | "
            f"{r['start_from']} | {r['committed']} |"
        )
    return "\n".join(lines)


def plot(stretches: list[dict[str, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for network in dict.fromkeys(r["network"] for r in stretches):
        xs, ys = [], []
        for r in (r for r in stretches if r["network"] == network):
            log = LEDGER / f"{network}_{r['stretch']}_val.csv"
            if not log.is_file():  # a stretch from before the ledger: only its best checkpoint is known
                xs.append(int(r["best_step"]))
                ys.append(float(r["best_val_dice"]))
                continue
            for row in read_csv(log):
                xs.append(int(r["start_step"]) + int(row["iteration"]))
                ys.append(float(row["val_mean_dice"]))
        axis.plot(xs, ys, marker=".", label=display_name(network))
    axis.set_xlabel("cumulative optimizer steps (batch 8)")
    axis.set_ylabel("validation Dice (49 lesions, tight boxes)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_output(PLOT) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def render(_: argparse.Namespace | None = None) -> None:
    """Redraw the learning curve and the model card's ledger table from the ledger files."""
    stretches = read_csv(STRETCHES)
    plot(stretches)
    write_marked_block(CARD, "ledger", card_table(stretches))
    print(f"{len(stretches)} stretches; wrote {PLOT} and the table in {CARD}; {datetime.date.today()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="record a finished stretch from its run folder")
    adding.add_argument("network")
    adding.add_argument("run", type=Path)
    adding.add_argument("--start-step", type=int, required=True, help="cumulative optimizer steps of the weights the stretch started from")
    adding.add_argument("--start-from", default="random initialisation")
    adding.add_argument("--precision", default=None, help="default: what the run's run.json records")
    adding.add_argument("--cpu", default=None, help="default: what the run's run.json records, else this machine's CPU")
    adding.add_argument("--committed", action="store_true", help="the stretch's best weights were committed to the bundle")
    adding.add_argument("--note", default="")
    adding.set_defaults(run_command=add)
    commands.add_parser("render", help="redraw the learning curve and the model card table").set_defaults(run_command=render)
    shipped = commands.add_parser("shipped-step", help="print the cumulative step of the shipped weights of NETWORK")
    shipped.add_argument("network")
    shipped.set_defaults(run_command=lambda a: print(shipped_step(a.network)))
    args = parser.parse_args()
    args.run_command(args)


if __name__ == "__main__":
    main()
