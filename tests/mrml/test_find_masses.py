"""The Slicer Logic's "Find masses" against real MRML nodes from ``slicer-core``: one ROI node per
detected mass, named with its score, covering exactly the detected pixel box whatever the volume's
spacing, origin or direction matrix, replaced by a second search, and ready for "Segment".

The detector is the real one, loaded from a weights file through
``Segmenter.from_bundle(detector_weights=...)`` (conftest.py's ``detector_weights``: the bundle's
network, untrained, proposing boxes near its anchors with scores near 0.6); each test sets the
operating threshold so that it finds one or two. What the trained detector finds on the sample
is checked at the end, skipped until its weights exist. Runs in the slicer-core venv, as
tests/mrml/test_slicer_logic.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import threshold_admitting
from mrml_helpers import REPO, segment_voxels, slicer  # first: skips this module without slicer-core
from test_slicer_logic import GEOMETRIES, make_roi, make_volume, sample

from SlicerConnectedUNetsLib.engine import InputError
from SlicerConnectedUNetsLib.mrml_logic import (
    DETECTED_ON_ATTRIBUTE,
    SCORE_ATTRIBUTE,
    MammogramSegmentationLogic,
    roi_to_box,
    slice_spacing,
    volume_to_slice,
)

DETECTOR_WEIGHTS = REPO / "monai_bundle" / "models" / "detector.pt"
NOTHING = 0.99  # above every score of the untrained detector: nothing is found

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def logic():
    return MammogramSegmentationLogic(bundle_dir=None)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture(scope="module")
def detector(detector_weights):
    """The real detector, every candidate of its box selector let through: what the thresholds are chosen from."""
    from connected_unets.detection import Detector

    return Detector.from_bundle(device="cpu", weights=detector_weights, threshold=1e-6)


@pytest.fixture(scope="module")
def finding(random_weights, detector_weights):
    """``finding(threshold)``: a real Segmenter whose detector (the weights file) keeps scores >= threshold."""
    from connected_unets.inference import Segmenter

    return lambda threshold: Segmenter.from_bundle(weights=random_weights, device="cpu", detector_weights=detector_weights, detection_threshold=threshold)


def row_column_spacing(geometry: str) -> tuple[float, float]:
    """The (row, column) pixel size in mm a volume of ``geometry`` has: its J and I spacing."""
    spacing, _, _ = GEOMETRIES[geometry]
    return spacing[1], spacing[0]


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_each_detection_becomes_an_roi_node_on_exactly_its_pixels(logic, scene, detector, finding, geometry):
    image, _ = sample()
    volume = make_volume(scene, image, geometry)
    # what the detector finds on these pixels at this pixel size: the boxes the ROIs must cover
    threshold = threshold_admitting([d.score for d in detector.detect(image, spacing=row_column_spacing(geometry))], 2)
    expected = detector.detect(image, spacing=row_column_spacing(geometry), threshold=threshold)
    rois = logic.find_masses(volume, segmenter=finding(threshold))
    assert expected and [roi.GetName() for roi in rois] == [f"mammogram mass {k + 1} ({d.score:.2f})" for k, d in enumerate(expected)]
    slice_image = volume_to_slice(volume)
    assert slice_spacing(slice_image) == pytest.approx(row_column_spacing(geometry))
    for roi, (box, score) in zip(rois, expected):
        assert roi.IsA("vtkMRMLMarkupsROINode") and roi.GetScene() is scene
        assert roi_to_box(roi, slice_image) == (box, [])  # what Segment will read back
        assert f"score {score:.2f}" in roi.GetDescription() and float(roi.GetAttribute(SCORE_ATTRIBUTE)) == pytest.approx(score, abs=1e-4)


def test_a_second_search_replaces_the_first_and_leaves_drawn_rois(logic, scene, detector, finding):
    image, boxes = sample()
    volume = make_volume(scene, image, "slicer-2d-image")
    drawn = make_roi(scene, volume, boxes[0], name="drawn by hand")
    scores = [d.score for d in detector.detect(image, spacing=row_column_spacing("slicer-2d-image"))]
    first = logic.find_masses(volume, segmenter=finding(threshold_admitting(scores, 2)))
    second = logic.find_masses(volume, segmenter=finding(threshold_admitting(scores, 1)))
    assert first and second
    assert all(roi.GetScene() is None for roi in first)
    assert [roi.GetAttribute(DETECTED_ON_ATTRIBUTE) for roi in second] == [volume.GetID()] * len(second)
    assert drawn.GetScene() is scene and drawn.GetAttribute(DETECTED_ON_ATTRIBUTE) is None
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 1 + len(second)


def test_nothing_found_adds_no_roi(logic, scene, finding):
    image, _ = sample()
    volume = make_volume(scene, image)
    assert logic.find_masses(volume, segmenter=finding(NOTHING)) == []
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 0


def test_without_detector_weights_the_panel_gets_one_line(logic, scene, random_weights, tmp_path):
    from connected_unets.inference import Segmenter

    image, _ = sample()
    volume = make_volume(scene, image)
    blind = Segmenter.from_bundle(weights=random_weights, device="cpu", detector_weights=tmp_path / "none.pt")
    with pytest.raises(InputError) as raised:
        logic.find_masses(volume, segmenter=blind)
    message = str(raised.value)
    assert "no detector weights: train them with scripts/train_detector.sh, or draw ROI boxes" in message and "\n" not in message
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 0


def test_a_colour_volume_is_refused_before_the_search(logic, scene, finding):
    rgb = np.zeros((1, 64, 64, 3), np.uint8)
    rgb[..., 0] = 200
    volume = make_volume(scene, rgb)
    with pytest.raises(InputError, match="colour"):
        logic.find_masses(volume, segmenter=finding(0.5))
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 0


def test_found_rois_are_segmented_by_segment_like_drawn_ones(logic, scene, detector, finding):
    """Find masses, then Segment: each segment is the Segmenter's mask for the detected box."""
    image, _ = sample()
    volume = make_volume(scene, image, "rotated-flipped")
    spacing = row_column_spacing("rotated-flipped")
    segmenter = finding(threshold_admitting([d.score for d in detector.detect(image, spacing=spacing)], 1))
    rois = logic.find_masses(volume, segmenter=segmenter)
    detected = [d.box for d in segmenter.detect(image, spacing=spacing)]
    assert len(rois) == len(detected) == 1
    result = logic.process(volume, rois, segmenter=segmenter)
    expected = segmenter.segment(image, detected, source="expected")
    assert len(result.segment_ids) == 1
    np.testing.assert_array_equal(segment_voxels(result.segmentation_node, result.segment_ids[0], volume)[0], expected)


@pytest.mark.skipif(not DETECTOR_WEIGHTS.is_file(), reason=f"needs the trained detector {DETECTOR_WEIGHTS}: train it with scripts/train_detector.sh")
def test_the_shipped_detector_finds_the_sample_masses_in_the_scene(logic, scene):
    image, boxes = sample()
    volume = make_volume(scene, image, "slicer-2d-image")
    rois = logic.find_masses(volume, model="connected_resunets", device="cpu")
    found = [roi_to_box(roi, volume_to_slice(volume))[0] for roi in rois]
    from connected_unets.evaluation.froc import box_iou

    assert found and box_iou(found, boxes).max(axis=0).max() >= 0.3
