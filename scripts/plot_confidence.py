"""Does a low per-ROI confidence warn of a poor mask? Confidence against Dice, one point per lesion.

Reads the per-lesion CSV that ``scripts/evaluate_test_time.py --out X.md`` writes beside its table
(``X.csv``: setting, boxes, lesion, dice, confidence, ...) and draws one panel per box kind (tight,
loose) for one setting, with Spearman's rank correlation in each title. The plot goes to
``docs/confidence_vs_dice.png`` in the repository by default.

    python scripts/plot_confidence.py docs/test_time_results.csv --setting baseline
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from connected_unets.io import atomic_output  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("results", type=Path, help="per-lesion CSV of scripts/evaluate_test_time.py")
    parser.add_argument("--setting", default="baseline", help="which setting's rows to plot (default %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "confidence_vs_dice.png")
    args = parser.parse_args()

    with args.results.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["setting"] == args.setting]
    if not rows:
        parser.error(f"{args.results}: no rows of setting {args.setting!r}")
    kinds = [kind for kind in ("tight", "loose") if any(row["boxes"] == kind for row in rows)]
    figure, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 4), squeeze=False, sharey=True)
    for axis, kind in zip(axes[0], kinds, strict=True):
        confidence = [float(row["confidence"]) for row in rows if row["boxes"] == kind]
        dice = [float(row["dice"]) for row in rows if row["boxes"] == kind]
        rho = spearmanr(confidence, dice).statistic
        axis.scatter(confidence, dice, s=14, alpha=0.75)
        axis.set(title=f"{kind} boxes: Spearman {rho:.2f} (n={len(dice)})", xlabel="per-ROI confidence", ylim=(0, 1))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("Dice against the reference mask")
    figure.suptitle(f"Confidence vs Dice, validation lesions ({args.setting})", fontsize=10)
    figure.tight_layout()
    with atomic_output(args.out) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
