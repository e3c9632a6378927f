"""scripts/results_table.py: the comparison table of docs/results.md keeps what it cannot recompute."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from connected_unets.evaluation import paired_dice_gain_ci

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "results_table.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results_table = _load_script()
COMMITTED = (REPO / "docs" / "results.md").read_text()


def test_the_committed_document_has_a_row_per_network_run_so_far():
    rows = results_table.rows_by_name(COMMITTED)
    assert {"UNet", "AUNet", "ResUNet", "Connected-ResUNets", "Connected-UNets (no ASPP)"} <= set(rows)
    assert all(row.count("|") == 11 for row in rows.values())


def test_networks_without_a_run_folder_keep_their_rows(tmp_path):
    """Runs made in another session (runs/ is gone) stay in the table; nothing is invented for the rest."""
    previous = results_table.rows_by_name(COMMITTED)
    text = results_table.table(tmp_path, {"UNet": previous["UNet"]})
    assert previous["UNet"] in text.splitlines()
    assert [line for line in text.splitlines() if line.startswith("| ")][1:] == [previous["UNet"]]  # header, row
    assert "Not finished yet (no evaluation report): AUNet, ResUNet," in text


def test_write_replaces_only_the_named_block(tmp_path):
    document = tmp_path / "results.md"
    document.write_text("intro\n<!-- a:begin -->\nold a\n<!-- a:end -->\nmiddle\n<!-- b:begin -->\nold b\n<!-- b:end -->\n")
    subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", str(tmp_path / "none"), "--write", str(document), "--block", "b"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    text = document.read_text()
    assert "old a" in text and "old b" not in text
    assert text.startswith("intro\n<!-- a:begin -->") and "middle\n<!-- b:begin -->\n| network |" in text


def test_a_missing_document_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--write", str(tmp_path / "absent.md")], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip() == f"{tmp_path / 'absent.md'}: no such file"


def _cases_csv(path: Path, dice_by_lesion: dict[str, tuple[str, float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{lesion},{patient},{dice}\n" for lesion, (patient, dice) in dice_by_lesion.items())
    path.write_text("lesion,patient,dice\n" + rows)
    return path


def test_paired_gain_ci_of_a_constant_gain_is_that_gain_both_ways(tmp_path):
    """Every lesion 0.1 better: the paired interval has zero width, resampling lesions or patients."""
    base = {"a1": ("A", 0.5), "a2": ("A", 0.7), "b1": ("B", 0.2), "c1": ("C", 0.9)}
    ours = {lesion: (patient, dice + 0.1) for lesion, (patient, dice) in base.items()}
    cases, base_cases = _cases_csv(tmp_path / "c" / "cases.csv", ours), _cases_csv(tmp_path / "b" / "cases.csv", base)
    for by_patient in (False, True):
        low, high = paired_dice_gain_ci(cases, base_cases, by_patient=by_patient)
        assert low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_resampling_patients_keeps_their_lesions_together(tmp_path):
    """Each patient has one lesion 0.2 better and one 0.2 worse: resampled by patient the mean gain
    is always 0, resampled by lesion it is not."""
    base = {f"{p}{i}": (p, 0.5) for p in "ABCDEF" for i in (1, 2)}
    ours = {lesion: (patient, 0.7 if lesion.endswith("1") else 0.3) for lesion, (patient, _) in base.items()}
    cases, base_cases = _cases_csv(tmp_path / "c" / "cases.csv", ours), _cases_csv(tmp_path / "b" / "cases.csv", base)
    low, high = paired_dice_gain_ci(cases, base_cases, by_patient=True)
    assert low == pytest.approx(0.0) and high == pytest.approx(0.0)
    low, high = paired_dice_gain_ci(cases, base_cases)
    assert low < -0.05 and high > 0.05


def test_paired_gain_ci_needs_the_same_lesions(tmp_path):
    cases = _cases_csv(tmp_path / "c" / "cases.csv", {"a1": ("A", 0.5)})
    base_cases = _cases_csv(tmp_path / "b" / "cases.csv", {"b1": ("B", 0.5)})
    assert paired_dice_gain_ci(cases, base_cases) is None


def test_the_networks_and_their_names_are_the_catalogues():
    from connected_unets import bundle

    singles = [name for name in bundle.network_names() if name not in bundle.connected_networks()]
    assert results_table.TAGS == [*bundle.network_names(), *(f"{name}_noaspp" for name in bundle.connected_networks())]
    assert [results_table.display_name(tag) for tag in bundle.network_names()] == [info.display for info in bundle.NETWORKS.values()]
    assert results_table.display_name("connected_unets_noaspp") == "Connected-UNets (no ASPP)"
    assert {results_table.base_of(name) for name in bundle.connected_networks()} == set(singles)
    assert set(results_table.PAPER_GAIN) == set(bundle.connected_networks())


def test_compare_models_sh_runs_the_tags_the_table_reads():
    """The runs scripts/compare_models.sh makes (its tag list, computed from the catalogue) are the table's."""
    script = (REPO / "scripts" / "compare_models.sh").read_text()
    snippet = script[script.index("all_tags=$(") : script.index("\n)\n", script.index("all_tags=$(")) + 3]
    done = subprocess.run(["bash", "-euc", snippet + 'echo "$all_tags"'], cwd=REPO / "monai_bundle", capture_output=True, text=True, check=True)
    tags = done.stdout.split()
    assert sorted(tags) == sorted(results_table.TAGS)
    assert all(tags.index(results_table.base_of(tag.removesuffix("_noaspp"))) <= tags.index(tag) for tag in tags)  # a base before its Connected runs


def _run_folder(runs: Path, tag: str, dice_by_lesion: dict[str, tuple[str, float]]) -> None:
    """A run folder as scripts/evaluate_shipped.sh and training leave it: model.json, both reports."""
    folder = runs / tag
    for kind in ("tight", "loose"):
        _cases_csv(folder / f"eval_{kind}" / "cases.csv", dice_by_lesion)
        mean = sum(d for _, d in dice_by_lesion.values()) / len(dice_by_lesion)
        summary = {
            "dice": {"mean": mean, "ci": [mean - 0.02, mean + 0.02]}, "iou": {"mean": mean - 0.1, "ci": [mean - 0.12, mean - 0.08]},
            "iou90_fraction": {"value": 0.0}, "pooled_auc": 0.9,
        }  # fmt: skip
        (folder / f"eval_{kind}" / "summary.json").write_text(json.dumps(summary))
    (folder / "model.json").write_text(json.dumps({"epoch": 3}))


def test_a_peer_gets_a_row_and_its_paired_difference_to_the_default_network(tmp_path):
    """DynUNet (configs/dynunet.yaml) is compared with Connected-ResUNets on the same lesions."""
    reference = {"a1": ("A", 0.8), "a2": ("A", 0.6), "b1": ("B", 0.7)}
    _run_folder(tmp_path, "connected_resunets", reference)
    _run_folder(tmp_path, "dynunet", {lesion: (patient, dice - 0.05) for lesion, (patient, dice) in reference.items()})
    text = results_table.table(tmp_path, tags=["connected_resunets", "dynunet"])
    dynunet_row = next(line for line in text.splitlines() if line.startswith("| DynUNet |"))
    assert "| 0.650 (0.630–0.670) |" in dynunet_row
    assert dynunet_row.split("|")[2].strip().endswith(" M")  # parameters counted from configs/dynunet.yaml
    assert "Paired Dice difference to Connected-ResUNets (tight boxes, points, 95 % CI): DynUNet -5.0 to -5.0 over lesions, -5.0 to -5.0 over patients." in text
