"""Whole-picture search at every front door of the package: ``Segmenter.detect`` / ``segment_image``,
``connected-unets segment`` without ``--box``, bundle inference items without boxes,
``detect_inference.yaml``, ``evaluate --detector``, and the bad inputs of the issue.

The detector is always the real one: the bundle's network, from a weights file (the
``detector_weights`` fixture of conftest.py: untrained, it proposes boxes near the anchors with
scores near 0.6), loaded through the same options users give (``--detector-weights``,
``Segmenter.from_bundle(detector_weights=...)``, ``--detector_file``). What is checked here is
the plumbing: which boxes reach which table, in which pixels, with which score, and what
happens when nothing is found. Whether the trained detector finds the masses is
tests/test_shipped_detector.py's.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import SAMPLE_DATA, run_bundle_command, threshold_admitting
from PIL import Image

from connected_unets import cli
from connected_unets.detection import Detector, DetectorMissing, WorkingGeometry, working_image
from connected_unets.evaluation.froc import ImageDetections, match_image
from connected_unets.inference import Segmenter, segment_datalist
from connected_unets.io import load_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small batches: one thread is faster on a busy 2-core machine

SAMPLES = json.loads((SAMPLE_DATA / "samples.json").read_text())
GOOD = SAMPLES[0]  # P60_L_DM_MLO.jpg, one mass
GOOD_IMAGE = SAMPLE_DATA / GOOD["image"]
GOOD_BOX = tuple(GOOD["boxes"][0])
NO_WEIGHTS = "no detector weights: train them with scripts/train_detector.sh, or"
NOTHING = 0.99  # a threshold above every score of the untrained detector (about 0.6): nothing is found


@pytest.fixture(scope="module")
def detector(detector_weights, one_torch_thread) -> Detector:
    """The real detector from the weights file, every candidate of its box selector let through."""
    return Detector.from_bundle(device="cpu", weights=detector_weights, threshold=1e-6)


@pytest.fixture(scope="module")
def segmenter(random_weights, detector_weights, one_torch_thread) -> Segmenter:
    """A Segmenter whose detector keeps every candidate (no record beside the weights: threshold 0.5)."""
    return Segmenter.from_bundle(weights=random_weights, device="cpu", detector_weights=detector_weights)


@pytest.fixture(scope="module")
def one_mass_threshold(detector) -> float:
    """A threshold at which the detector finds exactly one mass on the good image."""
    threshold = threshold_admitting([d.score for d in detector.detect(load_image(GOOD_IMAGE))], 1)
    assert len(detector.detect(load_image(GOOD_IMAGE), threshold=threshold)) == 1
    return threshold


@pytest.fixture(scope="module")
def finds_one(random_weights, detector_weights, one_mass_threshold) -> Segmenter:
    """A Segmenter whose detector finds one mass on the good image (segmenting more would be slow)."""
    return Segmenter.from_bundle(weights=random_weights, device="cpu", detector_weights=detector_weights, detection_threshold=one_mass_threshold)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def row_box(row: dict) -> tuple[int, int, int, int]:
    return int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"])


# --------------------------------------------------------------------------- without detector weights


def test_the_python_api_says_in_one_line_that_there_are_no_detector_weights(random_weights, tmp_path):
    segmenter = Segmenter.from_bundle(weights=random_weights, device="cpu", detector_weights=tmp_path / "none.pt")
    with pytest.raises(DetectorMissing) as raised:
        segmenter.detect(load_image(GOOD_IMAGE))
    message = str(raised.value)
    assert NO_WEIGHTS in message and message.endswith("give --box") and "\n" not in message
    assert isinstance(raised.value, FileNotFoundError)


def test_segment_without_box_and_without_detector_weights_exits_2_with_one_line(capsys, random_weights, tmp_path):
    out = tmp_path / "mask.png"
    code, _, err = run_cli(capsys, "segment", GOOD_IMAGE, "--out", out, "--weights", random_weights, "--detector-weights", tmp_path / "none.pt")
    assert code == 2
    assert err.count("\n") == 1 and NO_WEIGHTS in err and "or give --box" in err
    assert not out.exists()


def test_bundle_inference_skips_an_item_without_boxes_saying_there_is_no_detector(random_weights, tmp_path):
    blind = Segmenter.from_bundle(weights=random_weights, device="cpu", detector_weights=tmp_path / "none.pt")
    summary = segment_datalist(blind, [{"image": str(GOOD_IMAGE)}, {"image": str(GOOD_IMAGE), "boxes": [list(GOOD_BOX)]}], tmp_path / "out")
    (skipped,) = summary["skipped"]
    assert NO_WEIGHTS in skipped["reason"] and 'give the item its "boxes"' in skipped["reason"] and skipped["reason"].startswith(str(GOOD_IMAGE))
    assert len(summary["written"]) == 1  # the item with boxes is segmented as before


# --------------------------------------------------------------------------- the search itself


def test_detections_are_whole_pixel_boxes_inside_the_picture_best_first(segmenter):
    image = load_image(GOOD_IMAGE)
    detections = segmenter.detect(image)
    assert detections, "the untrained detector proposes boxes with scores near 0.6, above the default 0.5"
    rows, cols = image.array.shape
    for box, score in detections:
        x0, y0, x1, y1 = box
        assert all(isinstance(v, int) for v in box) and 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows
        assert segmenter.detector.threshold <= score <= 1.0
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)


def test_a_dicom_with_non_square_pixels_is_answered_in_its_own_pixels(detector, tmp_path):
    """512 rows of 0.45 mm, 256 columns of 0.9 mm: the network sees a square 512 x 512 working image
    (0.45 mm pixels), so a box's columns in the DICOM are half the working image's, its rows the same."""
    from dicom_factory import write_dicom

    squeezed = np.asarray(Image.open(GOOD_IMAGE).convert("L").resize((256, 512), Image.Resampling.LANCZOS))
    image = load_image(write_dicom(tmp_path / "anisotropic.dcm", squeezed.astype(np.uint16) * 16, PixelSpacing=[0.45, 0.9]))
    assert image.array.shape == (512, 256) and image.spacing == (0.45, 0.9)
    geometry = WorkingGeometry.of(image.array.shape, 512, image.spacing)
    assert geometry.content == (512, 512)
    (raw,) = detector.predict([working_image(image.array, geometry)])  # MONAI's (row0, col0, row1, col1), working pixels
    expected = sorted(
        ((math.floor(c0 / 2 + 1e-6), math.floor(r0 + 1e-6), math.ceil(c1 / 2 - 1e-6), math.ceil(r1 - 1e-6)), round(s, 5))
        for (r0, c0, r1, c1), s in zip(raw["boxes"].tolist(), raw["scores"].tolist())
    )
    found = detector.detect(image)  # the front door: the LoadedImage hands over its pixel spacing
    assert found and sorted((d.box, round(d.score, 5)) for d in found) == expected
    assert all(d.box[2] <= 256 and d.box[3] <= 512 for d in found)


def test_an_image_smaller_than_the_working_size_is_searched_in_its_own_pixels(detector):
    small = load_image(GOOD_IMAGE).array[100:300, 120:270]  # 200 rows x 150 columns, under 512: enlarged
    found = detector.detect(small)
    assert found and all(0 <= x0 < x1 <= 150 and 0 <= y0 < y1 <= 200 for (x0, y0, x1, y1), _ in found)


@pytest.mark.parametrize(
    "what, picture",
    [
        ("a blank image", np.full((600, 400), 7.0, np.float32)),
        ("a near-black 16-bit image", np.random.default_rng(0).integers(0, 300, (400, 300)).astype(np.uint16)),
    ],
)
def test_a_picture_without_anything_to_find_gives_no_detections_and_an_empty_mask(segmenter, what, picture):
    assert segmenter.detect(picture) == []
    mask, detections = segmenter.segment_image(picture)
    assert detections == [] and mask.shape == picture.shape and not mask.any()


@pytest.mark.parametrize(
    "what, picture, words",
    [
        ("a 3-D volume", np.zeros((4, 64, 64), np.float32), "expected a 2-D grayscale image"),
        ("an RGB array", np.zeros((64, 64, 3), np.uint8), "expected a 2-D grayscale image"),
        ("a 16 x 16 thumbnail", np.ones((16, 16), np.float32), "mass detection needs at least 32 pixels"),
        ("NaN pixels", np.full((64, 64), np.nan, np.float32), "NaN or infinity"),
    ],
)
def test_what_cannot_be_searched_is_a_one_line_error(segmenter, what, picture, words):
    with pytest.raises(ValueError) as raised:
        segmenter.detect(picture, source="input")
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_an_rgb_file_is_searched_as_luminance(capsys, caplog, random_weights, detector_weights, tmp_path):
    rgb = np.stack([np.asarray(Image.open(GOOD_IMAGE).convert("L"))] * 3, axis=-1)
    rgb[..., 0] = np.clip(rgb[..., 0].astype(int) + 10, 0, 255)  # not grey: a real colour picture
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    code, out, err = run_cli(capsys, "segment", tmp_path / "colour.png", "--out", tmp_path / "mask.png", "--weights", random_weights,
                             "--detector-weights", detector_weights, "--detection-threshold", NOTHING)  # fmt: skip
    assert code == 0, err
    assert "converted to luminance" in caplog.text and "0 mass(es) detected" in out


def test_a_3d_volume_file_is_a_one_line_error(capsys, random_weights, detector_weights, tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 5), np.float32), np.eye(4)), tmp_path / "volume.nii.gz")
    code, _, err = run_cli(capsys, "segment", tmp_path / "volume.nii.gz", "--out", tmp_path / "mask.png", "--weights", random_weights,
                           "--detector-weights", detector_weights)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "volume.nii.gz" in err


# --------------------------------------------------------------------------- found masses at every door


def test_segment_image_outlines_each_detected_mass_as_segment_rois_does(finds_one):
    image = load_image(GOOD_IMAGE)
    (pair,) = finds_one.segment_detections(image)
    detection, result = pair
    assert result.box == detection.box
    (expected,) = finds_one.segment_rois(image.array, [detection.box], value_range=image.value_range)
    np.testing.assert_array_equal(result.mask, expected.mask)
    mask, detections = finds_one.segment_image(image)
    assert detections == [detection] and mask.shape == image.array.shape
    np.testing.assert_array_equal(mask, expected.mask)


def test_segment_without_box_writes_the_mask_and_one_table_row_per_detection(capsys, random_weights, detector_weights, detector, tmp_path):
    image = load_image(GOOD_IMAGE)
    threshold = threshold_admitting([d.score for d in detector.detect(image)], 2)
    expected = detector.detect(image, threshold=threshold)
    out, table = tmp_path / "mask.png", tmp_path / "found.csv"
    code, printed, err = run_cli(capsys, "segment", GOOD_IMAGE, "--out", out, "--weights", random_weights, "--detector-weights", detector_weights,
                                 "--detection-threshold", threshold, "--detections-out", table)  # fmt: skip
    assert code == 0, err
    assert f"{len(expected)} mass(es) detected (score >= {threshold:.2f})" in printed
    rows = read_rows(table)
    assert [row_box(r) for r in rows] == [d.box for d in expected]  # input pixels, best first
    assert [float(r["score"]) for r in rows] == pytest.approx([d.score for d in expected], abs=1e-4)
    assert [r["detection"] for r in rows] == [str(k) for k in range(1, len(expected) + 1)] and {r["image"] for r in rows} == {str(GOOD_IMAGE)}
    rois = read_rows(tmp_path / "mask_rois.csv")  # the segmentation of each detected box, in the same order
    assert [row_box(r) for r in rois] == [d.box for d in expected]
    for row, roi in zip(rows, rois):
        assert (row["confidence"], row["area_px"], row["area_mm2"]) == (roi["confidence"], roi["area_px"], roi["area_mm2"])
    mask = np.asarray(Image.open(out)) > 0
    areas = [int(r["area_px"]) for r in rows]
    assert mask.shape == image.array.shape and max(areas) <= int(mask.sum()) <= sum(areas)  # the union of the masses


def test_segment_without_box_that_finds_nothing_writes_an_empty_result(capsys, random_weights, detector_weights, tmp_path):
    out, table = tmp_path / "mask.png", tmp_path / "found.csv"
    code, printed, err = run_cli(capsys, "segment", GOOD_IMAGE, "--out", out, "--weights", random_weights, "--detector-weights", detector_weights,
                                 "--detection-threshold", NOTHING, "--detections-out", table)  # fmt: skip
    assert code == 0, err
    assert "0 mass(es) detected" in printed
    assert not np.asarray(Image.open(out)).any()
    assert read_rows(table) == [] and read_rows(tmp_path / "mask_rois.csv") == []


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--box", "175", "142", "302", "267", "--detections-out", "found.csv"], "leave out --box"),
        (["--detections-out", "found.txt"], "ending in .csv"),
    ],
)
def test_a_detections_table_that_cannot_be_is_one_line(capsys, random_weights, detector_weights, tmp_path, monkeypatch, extra, words):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "segment", GOOD_IMAGE, "--out", tmp_path / "mask.png", "--weights", random_weights,
                           "--detector-weights", detector_weights, *extra)  # fmt: skip
    assert code == 2 and words in err and err.count("\n") == 1
    assert not (tmp_path / "mask.png").exists()


def test_bundle_inference_searches_items_without_boxes(finds_one, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 200), 40, np.uint8)).save(blank)
    (expected,) = finds_one.detect(load_image(GOOD_IMAGE))
    summary = segment_datalist(finds_one, [{"image": str(GOOD_IMAGE)}, {"image": str(blank)}], tmp_path / "out")
    assert summary["skipped"] == []
    good, empty = summary["written"]
    assert good["rois"] == 1 and Path(good["detections"]).name == "P60_L_DM_MLO_mask_detections.csv"
    (row,) = read_rows(Path(good["detections"]))
    assert row_box(row) == expected.box and float(row["score"]) == pytest.approx(expected.score, abs=1e-4)
    assert [row_box(r) for r in read_rows(Path(good["mask"]).with_name("P60_L_DM_MLO_mask_rois.csv"))] == [expected.box]
    # a picture where nothing is found: an empty mask and an empty detections table, not a skip
    assert empty["rois"] == 0 and not np.asarray(Image.open(empty["mask"])).any() and read_rows(Path(empty["detections"])) == []


@pytest.mark.slow
def test_inference_yaml_searches_an_item_without_boxes_with_the_configured_detector(random_weights, detector_weights, finds_one, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "samples.json").write_text(json.dumps([{"image": str(GOOD_IMAGE), "boxes": []}]))
    (expected,) = finds_one.detect(load_image(GOOD_IMAGE))
    run_bundle_command([
        "run", "--config_file", "['configs/common.yaml','configs/inference.yaml']", "--dataset_dir", str(tmp_path / "data"),
        "--output_dir", str(tmp_path / "out"), "--model_file", str(random_weights), "--detector_file", str(detector_weights),
        "--detection_threshold", str(finds_one.detection_threshold),
    ])  # fmt: skip
    summary = json.loads((tmp_path / "out" / "inference_summary.json").read_text())
    (entry,) = summary["written"]
    assert summary["skipped"] == [] and entry["rois"] == 1
    (row,) = read_rows(Path(entry["detections"]))
    assert row_box(row) == pytest.approx(expected.box, abs=1) and float(row["score"]) == pytest.approx(expected.score, abs=1e-3)


@pytest.mark.slow
def test_detect_inference_yaml_writes_a_detections_table_for_the_sample(detector_weights, detector, tmp_path):
    run_bundle_command([
        "run", "--config_file", "['configs/common.yaml','configs/detect_inference.yaml']",
        "--detector_file", str(detector_weights), "--output_dir", str(tmp_path), "--detection_threshold", "0.3",
    ])  # fmt: skip
    summary = json.loads((tmp_path / "detection_summary.json").read_text())
    assert len(summary["searched"]) == len(SAMPLES) and summary["skipped"] == [] and summary["threshold"] == 0.3
    rows = read_rows(tmp_path / "detections.csv")
    assert len(rows) == sum(s["detections"] for s in summary["searched"]) > 0
    good = [r for r in rows if Path(r["image"]).name == GOOD_IMAGE.name]
    expected = detector.detect(load_image(GOOD_IMAGE), threshold=0.3)
    assert len(good) == len(expected)
    for row, detection in zip(sorted(good, key=row_box), sorted(expected, key=lambda d: d.box)):
        assert row_box(row) == pytest.approx(detection.box, abs=1) and float(row["score"]) == pytest.approx(detection.score, abs=1e-3)


# --------------------------------------------------------------------------- evaluate --detector


@pytest.fixture(scope="module")
def sample_detection_data(tmp_path_factory):
    """The shipped sample as a detection datalist (its mass masks' boxes and label maps), all validation."""
    from connected_unets.data.detection import prepare_detection
    from connected_unets.data.folder import read_folder

    data = tmp_path_factory.mktemp("sample_detection") / "data"
    datalist = prepare_detection(read_folder(SAMPLE_DATA).records, data, splits={"validation": 1.0})
    return data, {Path(e["image"]).name: e["boxes"] for e in datalist["validation"]}


def test_evaluate_detector_reports_froc_and_the_pipeline_end_to_end(capsys, random_weights, detector_weights, detector, sample_detection_data, tmp_path):
    data, boxes = sample_detection_data
    candidates = {name: detector.detect(load_image(SAMPLE_DATA / "images" / name)) for name in boxes}
    threshold = threshold_admitting([d.score for found in candidates.values() for d in found], 3)  # few to segment
    kept = {name: [d for d in found if d.score >= threshold] for name, found in candidates.items()}
    report = tmp_path / "report"
    code, out, err = run_cli(capsys, "evaluate", "--detector", "--dataset-dir", data, "--split", "validation", "--out", report,
                             "--weights", random_weights, "--detector-weights", detector_weights, "--detection-threshold", threshold,
                             "--device", "cpu")  # fmt: skip
    assert code == 0, err
    summary = json.loads((report / "detection_summary.json").read_text())
    lesions = sum(len(b) for b in boxes.values())
    assert (summary["n_images"], summary["n_lesions"]) == (len(boxes), lesions)
    assert summary["info"]["operating_threshold"] == pytest.approx(threshold)
    sensitivities = [summary["froc"][rate]["sensitivity"] for rate in ("0.25", "0.5", "1", "2")]
    assert all(0.0 <= s <= 1.0 for s in sensitivities) and sensitivities == sorted(sensitivities)  # more false positives allowed, never fewer found
    images = {Path(r["image"]).name: r for r in read_rows(report / "detection_images.csv")}
    assert {name: int(r["detections"]) for name, r in images.items()} == {name: len(found) for name, found in kept.items()}
    rows = read_rows(report / "detection_lesions.csv")
    assert len(rows) == lesions
    for name, reference in boxes.items():  # a lesion is detected when a kept box overlaps it with IoU >= 0.3
        matched = match_image(ImageDetections(reference, [d.box for d in kept[name]], [d.score for d in kept[name]]))
        flags = [r["detected"] for r in rows if Path(r["image"]).name == name]
        assert flags == [str(int(k in matched)) for k in range(len(reference))]
    assert summary["operating_point"]["false_positives_per_image"] == pytest.approx(
        sum(int(r["false_positives"]) for r in images.values()) / len(images)
    )
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in images.values())
    assert "final segmentation accuracy" in (report / "detection.md").read_text() and (report / "froc.png").stat().st_size > 1000
    assert f"sensitivity at    1 FP/image: {sensitivities[2]:.3f}" in out


def test_evaluate_detector_without_a_dataset_dir_is_one_line(capsys, random_weights, detector_weights):
    code, _, err = run_cli(capsys, "evaluate", "--detector", "--weights", random_weights, "--detector-weights", detector_weights)
    assert code == 2 and "give --dataset-dir" in err and err.count("\n") == 1
