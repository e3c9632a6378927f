"""scripts/synthesis_comparison.py: the with-vs-without table of docs/synthesis.md reads the two runs'
reports and gives the paired difference synthetic minus real."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("synthesis_comparison", REPO / "scripts" / "synthesis_comparison.py")
synthesis_comparison = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthesis_comparison)

BASE = {"a1": ("A", 0.80), "a2": ("A", 0.70), "b1": ("B", 0.90), "c1": ("C", 0.60)}


def _run(root: Path, run: str, gain: float, best_epoch: int) -> None:
    """One run folder as scripts/compare_synthetic.sh leaves it: model.json and eval/{tight,loose}."""
    (root / run).mkdir(parents=True)
    (root / run / "model.json").write_text(json.dumps({"metric": "val_mean_dice", "score": 0.8, "epoch": best_epoch}))
    for kind in ("tight", "loose"):
        folder = root / run / "eval" / kind
        folder.mkdir(parents=True)
        dice = {lesion: (patient, value + gain) for lesion, (patient, value) in BASE.items()}
        rows = "".join(f"{lesion},{patient},{value}\n" for lesion, (patient, value) in dice.items())
        (folder / "cases.csv").write_text("lesion,patient,dice\n" + rows)
        mean = sum(value for _, value in dice.values()) / len(dice)
        block = {"mean": mean, "ci": [mean - 0.05, mean + 0.05]}
        (folder / "summary.json").write_text(json.dumps({"dice": block, "iou": block, "iou90_fraction": {"value": 0.25}}))


def test_the_difference_is_synthetic_minus_real_with_its_paired_interval(tmp_path):
    _run(tmp_path, "real", 0.0, best_epoch=3)
    _run(tmp_path, "real_synthetic", 0.02, best_epoch=5)  # every lesion 2 points better
    text = synthesis_comparison.table(tmp_path)
    assert "| real DM ROIs only | 3 | tight | 0.750 (0.700–0.800)" in text
    assert "| real + synthetic (CESM -> DM) | 5 | loosened 30 % | 0.770 (0.720–0.820)" in text
    assert "| tight | +2.0 | +2.0 to +2.0 | +2.0 to +2.0 |" in text
    assert "| loosened 30 % | +2.0 | +2.0 to +2.0 | +2.0 to +2.0 |" in text


def test_a_missing_report_is_named(tmp_path):
    _run(tmp_path, "real", 0.0, best_epoch=3)
    with pytest.raises(SystemExit, match=r"real_synthetic/model\.json: missing; run scripts/compare_synthetic\.sh first"):
        synthesis_comparison.table(tmp_path)
