"""The training ledger adds up stretches: a finished run folder becomes one row with cumulative steps,
its validation log is kept, and the learning curve and the model card's table are redrawn from them."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("training_ledger", REPO / "scripts" / "training_ledger.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "LEDGER", tmp_path / "ledger")
    monkeypatch.setattr(module, "STRETCHES", tmp_path / "ledger" / "stretches.csv")
    monkeypatch.setattr(module, "PLOT", tmp_path / "learning_curve.png")
    card = tmp_path / "README.md"
    card.write_text("# card\n\n<!-- ledger:begin -->\nold\n<!-- ledger:end -->\n\nrest\n")
    monkeypatch.setattr(module, "CARD", card)
    return module


def finished_run(folder: Path, epochs: int, steps_per_epoch: int, best_epoch: int) -> Path:
    """A run folder as train.yaml leaves it: learning-curve logs and the best model's score record."""
    folder.mkdir(parents=True)
    with (folder / "unet_train_log.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["utc", "epoch", "iteration", "loss", "wall_s", "cpu_s"])
        for step in range(1, epochs * steps_per_epoch + 1):
            writer.writerow([f"2026-12-01T10:{step % 60:02d}:00Z", (step - 1) // steps_per_epoch + 1, step, 0.3, 1.8, 3.6])
    with (folder / "unet_val_log.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["utc", "epoch", "iteration", "val_mean_dice", "val_mean_iou"])
        for epoch in range(1, epochs + 1):
            writer.writerow(["2026-12-01T10:00:00Z", epoch, epoch * steps_per_epoch, 0.80 + 0.01 * epoch, 0.7])
    (folder / "unet.json").write_text(json.dumps({"metric": "val_mean_dice", "score": 0.80 + 0.01 * best_epoch, "epoch": best_epoch}))
    return folder


def add(ledger, run: Path, start_step: int, committed: bool, precision: str | None = "bf16", cpu: str | None = "test CPU") -> None:
    args = ledger.argparse.Namespace(network="unet", run=run, start_step=start_step, start_from="test", precision=precision, cpu=cpu, committed=committed, note="")
    ledger.add(args)


def test_two_stretches_add_up_and_the_shipped_step_follows_the_committed_one(ledger, tmp_path):
    add(ledger, finished_run(tmp_path / "one", epochs=3, steps_per_epoch=23, best_epoch=2), start_step=0, committed=True)
    add(ledger, finished_run(tmp_path / "two", epochs=4, steps_per_epoch=23, best_epoch=4), start_step=46, committed=False)
    rows = ledger.read_csv(ledger.STRETCHES)
    assert [(r["stretch"], r["start_step"], r["end_step"], r["best_step"]) for r in rows] == [("1", "0", "69", "46"), ("2", "46", "138", "138")]
    assert rows[0]["wall_h"] == f"{69 * 1.8 / 3600:.2f}" and rows[0]["cpu_h"] == f"{69 * 3.6 / 3600:.2f}"
    assert ledger.shipped_step("unet") == 46  # the second stretch's weights were not committed
    assert (ledger.LEDGER / "unet_2_val.csv").is_file()


def test_render_redraws_the_curve_and_only_the_cards_table(ledger, tmp_path):
    add(ledger, finished_run(tmp_path / "one", epochs=2, steps_per_epoch=23, best_epoch=2), start_step=92, committed=True)
    card = ledger.CARD.read_text()
    assert card.startswith("# card\n") and card.endswith("\nrest\n") and "old" not in card
    assert "| UNet | 1 |" in card and "92 → 138" in card and "**0.8200**" in card
    assert ledger.PLOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_row_says_the_cpu_and_precision_the_runs_record_says(ledger, tmp_path):
    """An AVX2 CPU trains fp32 in NCHW (precision and channels_last: auto): the row must not say bf16."""
    run = finished_run(tmp_path / "one", epochs=1, steps_per_epoch=23, best_epoch=1)
    record = {"precision": "fp32", "channels_last": False, "machine": {"cpu": "AMD EPYC", "cpu_bf16_units": False}}
    (run / "run.json").write_text(json.dumps(record))
    add(ledger, run, start_step=0, committed=False, precision=None, cpu=None)
    (row,) = ledger.read_csv(ledger.STRETCHES)
    assert (row["cpu"], row["precision"]) == ("AMD EPYC (no bf16 units)", "fp32, NCHW")
