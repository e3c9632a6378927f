"""The shipped mass detector (``monai_bundle/models/detector.pt``) on real images, at its default
operating threshold: it finds the masses of the shipped validation images, its boxes land on the
mass also when the picture is not square or its pixels are not, and a picture without tissue
gives nothing. Skipped, with the reason, until the weights are trained (scripts/train_detector.sh).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BUNDLE, SAMPLE_DATA
from dicom_factory import write_dicom
from PIL import Image

from connected_unets.evaluation.froc import ImageDetections, box_iou, match_image
from connected_unets.io import load_image

WEIGHTS = BUNDLE / "models" / "detector.pt"
pytestmark = pytest.mark.skipif(
    not WEIGHTS.is_file(), reason=f"needs the trained detector {WEIGHTS}: train it with scripts/train_detector.sh (about 20 minutes on 2 CPU cores)"
)
SAMPLES = json.loads((SAMPLE_DATA / "samples.json").read_text())  # validation patients of both models


@pytest.fixture(scope="module")
def segmenter(one_torch_thread):
    from connected_unets.inference import Segmenter

    return Segmenter.from_bundle(device="cpu")


def hits(detections, boxes) -> list[bool]:
    """Per reference box: found by a detection with IoU >= 0.3."""
    found = match_image(ImageDetections(boxes, [d.box for d in detections], [d.score for d in detections]))
    return [k in found for k in range(len(boxes))]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["image"] for s in SAMPLES])
def test_the_shipped_detector_finds_the_mass_of_a_validation_image(segmenter, sample):
    detections = segmenter.detect(load_image(SAMPLE_DATA / sample["image"]))
    assert any(hits(detections, sample["boxes"])), f"found {detections}, masses at {sample['boxes']}"


def test_the_operating_threshold_is_the_recorded_one():
    record = json.loads(WEIGHTS.with_suffix(".json").read_text())
    from connected_unets.detection import Detector

    assert Detector.from_bundle(device="cpu").threshold == pytest.approx(record["threshold_at_1fp"])


def test_on_a_non_square_crop_the_boxes_stay_on_the_mass(segmenter):
    sample = SAMPLES[0]
    x0, y0, x1, y1 = sample["boxes"][0]
    picture = load_image(SAMPLE_DATA / sample["image"]).array[:, 40:440]  # 512 rows, 400 columns
    detections = segmenter.detect(picture)
    assert any(hits(detections, [[x0 - 40, y0, x1 - 40, y1]])), detections


def test_a_dicom_with_non_square_pixels_gives_boxes_in_its_own_pixels(segmenter, tmp_path):
    """The sample squeezed to half its columns, stored with 0.45 x 0.9 mm pixels: the same breast
    in millimetres, so the mass must be found at half its x coordinates."""
    sample = SAMPLES[0]
    image = Image.open(SAMPLE_DATA / sample["image"]).convert("L")
    squeezed = np.asarray(image.resize((256, 512), Image.Resampling.LANCZOS))  # (rows 512, cols 256)
    dicom = load_image(write_dicom(tmp_path / "anisotropic.dcm", squeezed.astype(np.uint16) * 16, PixelSpacing=[0.45, 0.9]))
    x0, y0, x1, y1 = sample["boxes"][0]
    expected = [[x0 // 2, y0, (x1 + 1) // 2, y1]]
    detections = segmenter.detect(dicom)
    assert any(hits(detections, expected)), detections
    best = max(detections, key=lambda d: box_iou([d.box], expected)[0, 0])
    assert best.box[2] <= 256 and best.box[3] <= 512


def test_a_picture_without_tissue_gives_no_detections(segmenter):
    rng = np.random.default_rng(0)
    assert segmenter.detect(np.zeros((512, 512), np.uint8)) == []
    air = rng.normal(20, 2, (512, 512)).clip(0, 255).astype(np.uint8)  # the black beside a breast, with noise
    mask, detections = segmenter.segment_image(air)
    assert detections == [] and not mask.any()
