"""The evaluation report: bootstrap statistics on known arrays, and the report that
``connected-unets evaluate`` and ``configs/evaluate.yaml`` write for the shipped UNet weights on the
validation split of the shipped sample ROI datalist (3 lesions)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import monai.bundle
import numpy as np
import pytest
from conftest import kept_rng_state
import torch
from monai.transforms import Activationsd, AsDiscreted, Compose
from PIL import Image

from connected_unets.cli import main
from connected_unets.evaluation import (
    CASE_COLUMNS,
    CaseResult,
    bootstrap_ci,
    check_inputs,
    pick_cases,
    pooled_roc,
    evaluation_workflow,
    load_cases,
    read_detections,
    run_evaluation,
    summarize_cases,
    whole_roi_reference,
    with_probabilities,
)
from connected_unets.metrics import pixel_roc_auc

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
CONFIGS = BUNDLE / "configs"
ROIS = BUNDLE / "sample_data" / "rois"
DATALIST = json.loads((ROIS / "datalist.json").read_text())
VALIDATION = [entry["lesion"] for entry in DATALIST["validation"]]
UNET = BUNDLE / "models" / "unet.pt"
REPORT_FILES = ("cases.csv", "summary.json", "summary.md", "roc.png", "montage.png", "run.json")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def evaluate_cli(*args: str) -> int:
    with kept_rng_state():
        return main(["evaluate", "--model", "unet", "--device", "cpu", *args])


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def case(lesion: str, dice: float, iou: float, auc: float = 0.9, patient: str = "P1") -> CaseResult:
    """A scored case with tiny arrays, for the statistics (which read only the scores)."""
    label = np.zeros((4, 4), dtype=bool)
    label[1:3, 1:3] = True
    prob = np.where(label, 0.8, 0.1).astype(np.float16)
    return CaseResult(
        image=f"{lesion}.png", lesion=lesion, patient=patient, pathology="", box=(0, 0, 4, 4), roi_box=(0, 0, 4, 4),
        dice=dice, iou=iou, auc=auc, roi=np.zeros((4, 4), np.uint8), label=label, pred=label, prob=prob,
    )  # fmt: skip


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_with_its_seed():
    values = np.random.default_rng(1).uniform(size=30)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_bootstrap_of_constant_values_has_zero_width():
    assert bootstrap_ci([0.7] * 12) == pytest.approx((0.7, 0.7))


def test_bootstrap_of_one_case_is_that_case():
    assert bootstrap_ci([0.42]) == pytest.approx((0.42, 0.42))


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_cases():
    rng = np.random.default_rng(0)
    few, many = rng.uniform(size=20), rng.uniform(size=2000)
    (low_few, high_few), (low_many, high_many) = bootstrap_ci(few), bootstrap_ci(many)
    assert low_few < few.mean() < high_few and low_many < many.mean() < high_many
    assert high_many - low_many < (high_few - low_few) / 5  # width ~ 1/sqrt(n): sqrt(100) = 10


def test_bootstrap_ci_of_the_mean_matches_the_normal_approximation():
    """For a large sample the percentile CI is mean +- 1.96 sd / sqrt(n)."""
    values = np.random.default_rng(3).normal(0.8, 0.1, size=900)
    low, high = bootstrap_ci(values, n_resamples=20000)
    half_width = 1.96 * values.std() / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half_width, abs=0.1 * half_width)
    assert high == pytest.approx(values.mean() + half_width, abs=0.1 * half_width)


def test_bootstrap_leaves_out_resamples_where_the_statistic_is_undefined():
    """The IoU90 mean of resamples without an IoU >= 0.9 is NaN; the CI uses the others."""
    summary = summarize_cases([case("a", 0.97, 0.95), case("b", 0.3, 0.2), case("c", 0.4, 0.25)])
    assert summary["iou90_mean"] == {
        "value": pytest.approx(0.95), "ci": [pytest.approx(0.95)] * 2, "ci_patient": [pytest.approx(0.95)] * 2,
    }  # fmt: skip
    assert summary["iou90_fraction"]["value"] == pytest.approx(1 / 3)
    assert summary["iou90_fraction"]["ci"] == [pytest.approx(0.0), pytest.approx(1.0)]


# --------------------------------------------------------------------------- summary pieces


def interval_blocks(summary: dict) -> list[dict]:
    """Every block of a summary that holds a confidence interval."""
    blocks = [summary[k] for k in ("dice", "iou", "auc", "iou90_fraction", "iou90_mean")]
    return blocks + list((summary["detection"] or {}).values())


def test_summary_gives_patient_intervals_beside_the_lesion_ones():
    """Two patients with two near-identical lesions each and one with a single lesion: resampling
    3 patients spreads the mean Dice wider than resampling 5 lesions as if independent."""
    cases = [
        case("a1", 0.95, 0.91, patient="A"), case("a2", 0.94, 0.90, patient="A"),
        case("b1", 0.55, 0.40, patient="B"), case("b2", 0.56, 0.41, patient="B"),
        case("c1", 0.75, 0.60, patient="C"),
    ]  # fmt: skip
    summary = summarize_cases(cases, detected={"a1": True, "a2": True, "b1": False, "b2": True, "c1": True})
    assert summary["n_cases"] == 5 and summary["n_patients"] == 3
    assert summary["bootstrap"]["unit"] == "lesion"
    assert summary["bootstrap"]["units"] == {"ci": "lesion", "ci_patient": "patient"}
    for block in interval_blocks(summary):
        low, high = block["ci_patient"]
        assert low <= high and len(block["ci"]) == 2
    (lesion_low, lesion_high), (patient_low, patient_high) = summary["dice"]["ci"], summary["dice"]["ci_patient"]
    assert patient_high - patient_low > lesion_high - lesion_low


def test_lesions_without_a_patient_id_are_patients_of_their_own():
    """Not one big patient: with no ids the patient intervals are the lesion intervals."""
    cases = [case(name, dice, dice, patient="") for name, dice in zip("abcdef", (0.9, 0.7, 0.8, 0.6, 0.95, 0.85))]
    summary = summarize_cases(cases)
    assert summary["n_patients"] == 6
    for block in interval_blocks(summary):
        assert block["ci_patient"] == pytest.approx(block["ci"], abs=1e-12)


def test_final_segmentation_accuracy_is_detection_rate_times_iou90_mean():
    cases = [case("a", 0.97, 0.95), case("b", 0.96, 0.92), case("c", 0.6, 0.5)]
    summary = summarize_cases(cases, detected={"a": True, "b": True, "c": False})
    detection = summary["detection"]
    assert detection["rate"]["value"] == pytest.approx(2 / 3)
    assert detection["final_segmentation_accuracy"]["value"] == pytest.approx(2 / 3 * (0.95 + 0.92) / 2)
    low, high = detection["final_segmentation_accuracy"]["ci"]
    assert 0.0 <= low <= detection["final_segmentation_accuracy"]["value"] <= high <= 0.95


def test_the_whole_roi_reference_scores_a_mask_that_fills_each_roi():
    """4x4 ROIs with a 2x2 mass: a full mask has Dice 2*4/(4+16) = 0.4 and IoU 4/16 = 0.25."""
    reference = whole_roi_reference([case("a", 0.9, 0.8), case("b", 0.7, 0.6)])
    assert reference == pytest.approx({"dice": 0.4, "iou": 0.25})


def test_best_median_and_worst_cases_are_picked_by_dice():
    cases = [case("a", 0.5, 0.3), case("b", 0.9, 0.8), case("c", 0.1, 0.05), case("d", 0.7, 0.6)]
    assert pick_cases(cases) == {"best": 1, "median": 3, "worst": 2}


def test_pooled_roc_auc_equals_the_auc_of_all_pixels_together():
    rng = np.random.default_rng(5)
    cases = []
    for index in range(3):
        label = rng.uniform(size=(16, 16)) < 0.3
        prob = np.clip(rng.normal(np.where(label, 0.65, 0.35), 0.2), 0, 1).astype(np.float16)
        cases.append(CaseResult(
            image="", lesion=str(index), patient="", pathology="", box=(), roi_box=(), dice=0, iou=0, auc=0,
            roi=np.zeros((16, 16), np.uint8), label=label, pred=label, prob=prob,
        ))  # fmt: skip
    fpr, tpr, auc = pooled_roc(cases)
    everything = np.concatenate([c.prob.astype(np.float64).ravel() for c in cases])
    labels = np.concatenate([c.label.ravel() for c in cases])
    assert auc == pytest.approx(pixel_roc_auc(everything, labels), abs=1e-9)
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0 and np.all(np.diff(fpr) >= 0)


def test_with_probabilities_keeps_the_sigmoid_output_beside_the_thresholded_mask():
    post = Compose([Activationsd(keys="pred", sigmoid=True), AsDiscreted(keys="pred", threshold=0.5)])
    logits = torch.tensor([[[-2.0, 0.0, 3.0]]])
    out = with_probabilities(post)({"pred": logits})
    assert torch.allclose(out["prob"], torch.sigmoid(logits))
    assert out["pred"].tolist() == [[[0.0, 1.0, 1.0]]]


def test_detections_accept_flags_and_probabilities(tmp_path):
    path = tmp_path / "detections.csv"
    path.write_text("lesion,detected\na,1\nb,no\nc,0.7\nd,0.2\nother,yes\n")
    assert read_detections(path, ["a", "b", "c", "d"]) == {"a": True, "b": False, "c": True, "d": False}


@pytest.mark.parametrize(
    "text, message",
    [
        ("lesion,detected\na,1\n", "no detection for 1 lesion(s) of the split, e.g. b"),
        ("lesion,found\na,1\nb,1\n", "needs the columns 'lesion' and 'detected'"),
        ("lesion,detected\na,1\nb,maybe\n", "line 3: detected 'maybe' is not a flag or a probability"),
    ],
    ids=["missing-lesion", "missing-column", "bad-value"],
)
def test_detections_file_problems_are_named(tmp_path, text, message):
    path = tmp_path / "detections.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        read_detections(path, ["a", "b"])
    assert str(raised.value).startswith(str(path)) and message in str(raised.value)


def test_check_inputs_counts_the_cases_of_the_split():
    assert check_inputs(ROIS / "datalist.json", "validation", UNET) == len(VALIDATION)


# --------------------------------------------------------------------------- the report, end to end


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory):
    """``connected-unets evaluate --dataset-dir ROIS --split validation --model unet --out DIR``."""
    out = tmp_path_factory.mktemp("cli") / "report"
    assert evaluate_cli("--dataset-dir", str(ROIS), "--split", "validation", "--out", str(out)) == 0
    return out


@pytest.fixture(scope="module")
def bundle_report(tmp_path_factory):
    """``python -m monai.bundle run --config_file "['configs/common.yaml','configs/train.yaml','configs/evaluate.yaml']"
    --dataset_dir ROIS --network_name unet --model_file models/unet.pt --output_dir DIR``, in process."""
    out = tmp_path_factory.mktemp("bundle") / "report"
    with kept_rng_state():
        monai.bundle.run(
            config_file=[str(CONFIGS / "common.yaml"), str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            dataset_dir=str(ROIS),
            network_name="unet",
            model_file=str(UNET),
            output_dir=str(out),
            device="$torch.device('cpu')",
        )
    return out


@pytest.fixture(scope="module")
def loose_report(tmp_path_factory):
    """The CLI with boxes loosened by 30 % per side and a detections file (lesion 1 missed)."""
    folder = tmp_path_factory.mktemp("loose")
    detections = folder / "detections.csv"
    detections.write_text("lesion,detected\n" + "".join(f"{lesion},{int(i != 0)}\n" for i, lesion in enumerate(VALIDATION)))
    out = folder / "report"
    assert evaluate_cli("--out", str(out), "--box-extra-margin", "0.3", "--detections", str(detections)) == 0
    return out


def test_cases_csv_has_one_row_per_lesion_of_the_split(cli_report):
    rows = read_rows(cli_report / "cases.csv")
    assert [row["lesion"] for row in rows] == VALIDATION
    assert list(rows[0]) == list(CASE_COLUMNS)
    for row, entry in zip(rows, DATALIST["validation"]):
        assert row["image"] == entry["image"] and row["patient"] == entry["patient"]
        assert [int(v) for v in row["box"].split()] == entry["box"]


def test_summary_means_are_the_means_of_the_per_case_columns(cli_report):
    rows = read_rows(cli_report / "cases.csv")
    summary = json.loads((cli_report / "summary.json").read_text())
    assert summary["n_cases"] == len(rows)
    for metric in ("dice", "iou", "auc"):
        column = [float(row[metric]) for row in rows]
        assert summary[metric]["mean"] == pytest.approx(np.mean(column), abs=1e-6)
        assert summary[metric]["median"] == pytest.approx(np.median(column), abs=1e-6)
    ious = np.array([float(row["iou"]) for row in rows])
    assert summary["iou90_fraction"]["value"] == pytest.approx(np.mean(ious >= 0.9))


def test_whole_roi_reference_is_that_of_the_real_label_crops(cli_report):
    """The reference in summary.json, recomputed from the sample's label PNGs over each case's roi_box
    (at the lesion image's resolution: the report scores at 256 x 256, hence the tolerance)."""
    summary = json.loads((cli_report / "summary.json").read_text())
    expected = []
    for row in read_rows(cli_report / "cases.csv"):
        entry = next(e for e in DATALIST["validation"] if e["lesion"] == row["lesion"])
        x0, y0, x1, y1 = (int(v) for v in row["roi_box"].split())
        mass = (np.asarray(Image.open(ROIS / entry["label"])) > 127)[y0:y1, x0:x1].sum()
        expected.append(2 * mass / (mass + (x1 - x0) * (y1 - y0)))
    assert summary["whole_roi"]["dice"] == pytest.approx(np.mean(expected), abs=0.005)
    assert summary["dice"]["mean"] > summary["whole_roi"]["dice"] + 0.1  # the shipped UNet learnt more than the box
    assert f"| reference: Dice / IoU of a mask filling the whole ROI | {summary['whole_roi']['dice']:.3f} /" in (
        cli_report / "summary.md"
    ).read_text()


def test_summary_confidence_intervals_contain_the_means(cli_report):
    summary = json.loads((cli_report / "summary.json").read_text())
    for metric in ("dice", "iou", "auc"):
        low, high = summary[metric]["ci"]
        assert 0.0 <= low <= summary[metric]["mean"] <= high <= 1.0


def test_shipped_unet_segments_the_sample_validation_lesions_well(cli_report):
    """The shipped UNet scored validation Dice 0.851 on 49 lesions; the sample's 3 are of that kind."""
    summary = json.loads((cli_report / "summary.json").read_text())
    assert summary["dice"]["mean"] > 0.75 and summary["auc"]["mean"] > 0.85


def test_figures_are_png_images(cli_report):
    for name in ("roc.png", "montage.png"):
        with Image.open(cli_report / name) as image:
            image.verify()
            assert image.format == "PNG"
        with Image.open(cli_report / name) as image:
            width, height = image.size
            assert width >= 300 and height >= 300
            assert np.asarray(image.convert("L")).std() > 10  # a picture, not a blank canvas


def test_summary_md_names_the_numbers_the_cases_and_the_files(cli_report):
    text = (cli_report / "summary.md").read_text()
    summary = json.loads((cli_report / "summary.json").read_text())
    assert f"| Dice | {summary['dice']['mean']:.3f} |" in text
    assert all(lesion in text for lesion in {summary["cases"][k]["lesion"] for k in ("best", "median", "worst")})
    assert all(name in text for name in REPORT_FILES if name != "summary.md")
    assert not [p.name for p in cli_report.iterdir() if p.name.startswith(".tmp-")]


def test_the_report_says_which_intervals_resample_patients(cli_report):
    rows = read_rows(cli_report / "cases.csv")
    summary = json.loads((cli_report / "summary.json").read_text())
    assert summary["n_patients"] == len({row["patient"] for row in rows})
    for metric in ("dice", "iou", "auc"):
        low, high = summary[metric]["ci_patient"]
        assert 0.0 <= low <= summary[metric]["mean"] <= high <= 1.0
    text = (cli_report / "summary.md").read_text()
    assert "| metric | mean | median | 95 % CI, lesions resampled | 95 % CI, patients resampled |" in text
    assert f"draws the {summary['n_patients']} patients with all their lesions" in text


def test_run_evaluation_reports_every_scored_case_to_its_progress_callback(tmp_path):
    """``on_cases`` (the CLI's progress bar) hears of each case once (handlers.CaseCounter)."""
    workflow = evaluation_workflow(tmp_path / "report", dataset_dir=ROIS, network="unet", weights=UNET, device="cpu")
    total = load_cases(workflow)
    counted: list[int] = []
    with kept_rng_state():
        summary = run_evaluation(workflow, on_cases=counted.append)
    assert counted and all(n > 0 for n in counted)
    assert sum(counted) == total == summary["n_cases"] == len(VALIDATION)


def test_cli_prints_the_summary_and_where_the_report_is(tmp_path, capsys):
    assert evaluate_cli("--out", str(tmp_path)) == 0
    captured = capsys.readouterr()
    assert "Dice" in captured.out and str(tmp_path) in captured.out
    assert f"{len(VALIDATION)}/{len(VALIDATION)}" in captured.err  # the progress bar over cases
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_FILES)


def test_cli_and_bundle_write_identical_per_case_csvs(cli_report, bundle_report):
    assert (bundle_report / "cases.csv").read_bytes() == (cli_report / "cases.csv").read_bytes()
    assert sorted(p.name for p in bundle_report.iterdir()) == sorted(REPORT_FILES)


def test_loosened_boxes_crop_more_context(cli_report, loose_report):
    tight = {row["lesion"]: [int(v) for v in row["roi_box"].split()] for row in read_rows(cli_report / "cases.csv")}
    loose = {row["lesion"]: [int(v) for v in row["roi_box"].split()] for row in read_rows(loose_report / "cases.csv")}
    for lesion in VALIDATION:
        (tx0, ty0, tx1, ty1), (lx0, ly0, lx1, ly1) = tight[lesion], loose[lesion]
        assert lx1 - lx0 > tx1 - tx0 and ly1 - ly0 > ty1 - ty0
    assert json.loads((loose_report / "summary.json").read_text())["info"]["box_extra_margin"] == 0.3


def test_detections_add_a_column_and_the_detection_rate(loose_report):
    rows = read_rows(loose_report / "cases.csv")
    assert [row["detected"] for row in rows] == ["0"] + ["1"] * (len(VALIDATION) - 1)
    detection = json.loads((loose_report / "summary.json").read_text())["detection"]
    assert detection["rate"]["value"] == pytest.approx((len(VALIDATION) - 1) / len(VALIDATION))
    assert "final segmentation accuracy" in (loose_report / "summary.md").read_text()


# --------------------------------------------------------------------------- bad input


def write_datalist(folder: Path, **splits) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalist.json").write_text(json.dumps(splits))
    return folder


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda tmp: ["--dataset-dir", str(tmp / "nothing")], "nothing/datalist.json: datalist not found"),
        (lambda tmp: ["--dataset-dir", str(ROIS), "--split", "test"], "datalist.json: no split 'test' (splits: training, validation)"),
        (lambda tmp: ["--dataset-dir", str(write_datalist(tmp / "d", test=[])), "--split", "test"], "datalist.json: split 'test' is empty"),
        (lambda tmp: ["--weights", str(tmp / "missing.pt")], "missing.pt: weights not found"),
        (lambda tmp: ["--detections", str(tmp / "none.csv")], "none.csv: detections file not found"),
    ],
    ids=["missing-datalist", "unknown-split", "empty-split", "missing-weights", "missing-detections"],
)
def test_bad_input_is_one_line_on_stderr_with_status_2(make_args, message, tmp_path, capsys):
    assert evaluate_cli("--out", str(tmp_path / "out"), *make_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_weights_of_another_network_are_a_one_line_error(capsys, tmp_path):
    assert evaluate_cli("--out", str(tmp_path), "--weights", str(BUNDLE / "models" / "model.pt")) == 2
    err = capsys.readouterr().err
    assert "model.pt: not weights of UNet" in err and err.count("\n") == 1
