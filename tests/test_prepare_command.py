"""``connected-unets prepare`` end to end: the folder reader on the shipped CDD-CESM sample, resuming,
the paper's offline x6 augmentation, and the bundle's train config reading what prepare wrote."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from test_cbis_ddsm import build_tree

from connected_unets.cli import main as cli_main
from connected_unets.data.folder import read_folder

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "monai_bundle" / "sample_data"
HALF = "training=0.5,validation=0.5"


def run_prepare(root: Path, out: Path, *extra: str) -> dict:
    assert cli_main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), *extra]) == 0
    return json.loads((out / "datalist.json").read_text())


def test_prepare_of_the_shipped_sample_gives_the_shipped_roi_datalist_and_pixels(tmp_path):
    datalist = run_prepare(SAMPLE, tmp_path, "--split", HALF)
    shipped = json.loads((SAMPLE / "rois" / "datalist.json").read_text())
    assert datalist == shipped
    for item in datalist["training"] + datalist["validation"]:
        for key in ("image", "label"):
            assert np.array_equal(np.array(Image.open(tmp_path / item[key])), np.array(Image.open(SAMPLE / "rois" / item[key])))


def test_a_second_run_rewrites_nothing(tmp_path):
    first = run_prepare(SAMPLE, tmp_path)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    assert run_prepare(SAMPLE, tmp_path) == first
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")} == written


def test_an_interrupted_run_redoes_only_the_unfinished_image(tmp_path):
    run_prepare(SAMPLE, tmp_path)
    records = sorted((tmp_path / ".prepare").glob("*.json"))
    unfinished = json.loads(records[0].read_text())["lesions"]
    records[0].unlink()  # as if the run had stopped while writing this image
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    run_prepare(SAMPLE, tmp_path)
    changed = {p.relative_to(tmp_path).as_posix() for p in before if p.stat().st_mtime_ns != before[p]}
    assert changed == {item[key] for item in unfinished for key in ("image", "label")}


def test_offline_augmentation_gives_six_copies_of_training_lesions_only(tmp_path):
    datalist = run_prepare(SAMPLE, tmp_path, "--split", HALF, "--augment-offline")
    kinds = [item["augmentation"] for item in datalist["training"]]
    assert sorted(set(kinds)) == ["clahe1", "clahe2", "none", "rot180", "rot270", "rot90"]
    assert len(kinds) == 6 * kinds.count("none")
    assert {item["augmentation"] for item in datalist["validation"]} == {"none"}
    for item in datalist["training"]:
        label = np.array(Image.open(tmp_path / item["label"])) > 0
        x0, y0, x1, y1 = item["box"]
        assert label[y0:y1, x0:x1].sum() == label.sum() > 0  # the box still encloses the whole lesion


def test_a_rotated_copy_is_the_original_rotated_counter_clockwise(tmp_path):
    datalist = run_prepare(SAMPLE, tmp_path, "--split", HALF, "--augment-offline")
    by_kind = {(item["lesion"], item["augmentation"]): item for item in datalist["training"]}
    lesion = datalist["training"][0]["lesion"]
    original, rotated = by_kind[(lesion, "none")], by_kind[(lesion, "rot90")]
    for key in ("image", "label"):
        assert np.array_equal(np.array(Image.open(tmp_path / rotated[key])), np.rot90(np.array(Image.open(tmp_path / original[key]))))


def test_images_and_masks_are_paired_by_name_and_the_unpaired_are_counted(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("P60_L_DM_MLO", "P72_R_DM_CC"):
        shutil.copy(SAMPLE / "images" / f"{name}.jpg", tmp_path / "images")
        shutil.copy(SAMPLE / "masks" / f"{name}.png", tmp_path / "masks" / f"{name}_mask.png")
    shutil.copy(SAMPLE / "images" / "P206_L_DM_CC.jpg", tmp_path / "images")  # no mask
    shutil.copy(SAMPLE / "masks" / "P264_L_DM_CC.png", tmp_path / "masks")  # no image
    result = read_folder(tmp_path)
    assert [r.image.name for r in result.records] == ["P60_L_DM_MLO.jpg", "P72_R_DM_CC.jpg"]
    assert sorted(s.kind for s in result.skipped) == ["mask without image", "no mask for image"]
    datalist = run_prepare(tmp_path, tmp_path / "out", "--split", "training=1")
    assert len(datalist["training"]) == 3  # P72 has two masses


def test_a_cdd_cesm_manifest_keeps_mass_rows_and_counts_the_others(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks_bin").mkdir()
    rows = [("P60_L_DM_MLO.jpg", "P60", "1"), ("P72_R_DM_CC.jpg", "P72", "1"), ("P206_L_DM_CC.jpg", "P206", "0")]
    for file, _, _ in rows:
        shutil.copy(SAMPLE / "images" / file, tmp_path / "images")
        shutil.copy(SAMPLE / "masks" / f"{Path(file).stem}.png", tmp_path / "masks_bin")
    with (tmp_path / "manifest.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("file", "patient", "is_mass"), *rows])
    result = read_folder(tmp_path)
    assert [r.patient for r in result.records] == ["P60", "P72"]
    assert [(Path(s.file).name, s.kind) for s in result.skipped] == [("P206_L_DM_CC.jpg", "not a mass")]


def test_a_manifest_row_whose_mask_is_missing_is_skipped_and_counted(tmp_path, capsys):
    shutil.copytree(SAMPLE, tmp_path / "sample", ignore=shutil.ignore_patterns("rois"))
    (tmp_path / "sample" / "masks" / "P60_L_DM_MLO.png").unlink()
    datalist = run_prepare(tmp_path / "sample", tmp_path / "out")
    assert [s["kind"] for s in datalist["skipped"]] == ["missing mask file"]
    assert "P60_L_DM_MLO.png" in datalist["skipped"][0]["reason"]
    assert "missing mask file" in capsys.readouterr().out


def test_the_bundle_trains_on_a_prepared_cbis_ddsm_datalist(tmp_path, run_bundle, one_torch_thread):
    """train.yaml with --dataset_dir set to what prepare wrote (16-bit crops of real CBIS-DDSM DICOMs);
    the other overrides only make the model tiny and the run short."""
    build_tree(tmp_path / "cbis", "csv")
    out = tmp_path / "rois"
    assert cli_main(["prepare", "--dataset", "cbis-ddsm", "--root", str(tmp_path / "cbis"), "--out", str(out), "--split", "training=0.5,validation=0.5"]) == 0
    run_bundle([
        "run", "--config_file", "['configs/common.yaml','configs/train.yaml']", "--dataset_dir", str(out),
        "--roi_size", "[32,32]", "--network_def#features", "[8,16,32,64]", "--num_workers", "0", "--batch_size", "2",
        "--epochs", "1", "--output_dir", str(tmp_path / "eval"), "--ckpt_dir", str(tmp_path / "models"),
    ])  # fmt: skip
    state = torch.load(tmp_path / "eval" / "connected_resunets_train_state.pt", weights_only=True)
    datalist = json.loads((out / "datalist.json").read_text())
    assert dict(state["trainer"]) == {"epoch_length": 1, "iteration": 1, "max_epochs": 1}  # 2 training lesions, batch 2
    assert len(datalist["training"]) == 2
    assert json.loads((tmp_path / "models" / "model.json").read_text())["epoch"] == 1  # validated and saved
