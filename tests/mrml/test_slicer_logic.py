"""The Slicer module's Logic against real MRML nodes from ``slicer-core`` (Slicer's core libraries
without the GUI), with the real ``Segmenter`` and real (random-initialised) weights from a file.

Runs only where ``import slicer`` gives the MRML classes, i.e. in a separate venv:

    python3.11 -m venv .venv-slicer
    .venv-slicer/bin/pip install torch==2.13.0
    .venv-slicer/bin/pip install "trame-slicer[standalone]==2.0.0"   # slicer-core 5.11.0.6, vtk 9.6.0
    .venv-slicer/bin/pip install -e ".[test]"
    .venv-slicer/bin/python -m pytest tests/mrml tests/test_slicer_ui.py tests/test_slicer_engine.py

Geometry is checked with non-unit spacing, non-zero origins and flipped / rotated direction
matrices: a segment must hold exactly the pixels that ``Segmenter.segment`` gives for the same
array and box. The model runs few times (about 9 ROI forward passes): it is slow on a small CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mrml_helpers import REPO, ijk_to_ras, make_roi, segment_tag, segment_voxels, slicer  # first: skips this module without slicer-core
import vtk  # slicer-core's own vtk
from vtk.util import numpy_support

from SlicerConnectedUNetsLib import mrml_logic  # on sys.path by mrml_helpers
from SlicerConnectedUNetsLib.engine import InputError
from SlicerConnectedUNetsLib.mrml_logic import MammogramSegmentationLogic

BUNDLE = REPO / "monai_bundle"
SAMPLES = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())
#: Slicer's default terminology of a new segment ("Tissue"), as a user's other choice
TISSUE_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue"
    "~^^~Anatomic codes - DICOM master list~^^~^^"
)


def _rotation_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


#: name -> (spacing, origin, direction matrix whose columns are the I, J, K directions in RAS)
GEOMETRIES = {
    "identity": ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)),
    # how Slicer reads a PNG/JPEG (LPS -> RAS), with a detector-like pixel size and an offset origin
    "slicer-2d-image": ((0.07, 0.07, 1.0), (12.5, -30.25, 4.0), np.diag([-1.0, -1.0, 1.0])),
    # axes swapped and K flipped (improper), anisotropic spacing
    "swapped-flipped": ((0.1, 0.25, 2.0), (-100.0, 50.0, 7.5), np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])),
    # rotated 30 degrees in the image plane and J flipped (improper)
    "rotated-flipped": ((0.3, 0.2, 1.5), (3.0, -7.0, -2.0), _rotation_z(30.0) @ np.diag([1.0, -1.0, 1.0])),
}


# ---------------------------------------------------------------------------------------------
# Scene helpers: build nodes the way Slicer's readers and the user do


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def make_volume(scene, voxels: np.ndarray, geometry: str = "identity", name: str = "mammogram", node_class: str = "vtkMRMLScalarVolumeNode"):
    """A volume node holding ``voxels`` of shape (rows, columns), (slices, rows, columns) or
    (1, rows, columns, components) with the named geometry, like Slicer's image readers make."""
    spacing, origin, directions = GEOMETRIES[geometry]
    voxels = np.asarray(voxels)
    if voxels.ndim == 2:
        voxels = voxels[None]
    components = voxels.shape[3] if voxels.ndim == 4 else 1
    slices, rows, columns = voxels.shape[:3]
    image = vtk.vtkImageData()
    image.SetDimensions(columns, rows, slices)
    image.AllocateScalars(numpy_support.get_vtk_array_type(voxels.dtype), components)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = voxels.reshape(-1, components).squeeze()
    node = scene.AddNewNodeByClass(node_class, name)
    node.SetAndObserveImageData(image)
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, directions[r, c])
    node.SetIJKToRASDirectionMatrix(matrix)
    return node


def assert_snomed_ct_mass(segment):
    """The segment's terminology tag, read back as Slicer's Terminologies module reads it, is
    SNOMED CT "Mass" in category "Morphologically Altered Structure" of Slicer's anatomy list."""
    tag = segment_tag(segment, segment.GetTerminologyEntryTagName())
    entry = slicer.vtkSlicerTerminologyEntry()
    assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(tag, entry), tag
    assert entry.GetTerminologyContextName() == "Segmentation category and type - 3D Slicer General Anatomy list"
    category, kind = entry.GetCategoryObject(), entry.GetTypeObject()
    assert (category.GetCodingSchemeDesignator(), category.GetCodeValue(), category.GetCodeMeaning()) == (
        "SCT",
        "49755003",
        "Morphologically Altered Structure",
    )
    assert (kind.GetCodingSchemeDesignator(), kind.GetCodeValue(), kind.GetCodeMeaning()) == ("SCT", "4147007", "Mass")


def scene_state(scene):
    """What 'nothing in the scene changed' compares: node IDs and each node's modification time."""
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return sorted((node.GetID(), node.GetMTime()) for node in nodes)


def sample(name: str = "P72"):
    from PIL import Image

    item = next(s for s in SAMPLES if name in s["image"])
    return np.asarray(Image.open(BUNDLE / "sample_data" / item["image"])), [tuple(b) for b in item["boxes"]]


# ---------------------------------------------------------------------------------------------
# Geometry without the model


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_volume_to_slice_returns_the_array_and_its_geometry(scene, geometry):
    image, _ = sample()
    volume = make_volume(scene, image, geometry)
    result = mrml_logic.volume_to_slice(volume)
    assert result.array.dtype == image.dtype and np.array_equal(result.array, image)
    assert np.allclose(result.ijk_to_ras, ijk_to_ras(volume)) and np.allclose(result.node_to_world, np.eye(4))
    assert (result.slice_index, result.num_slices) == (0, 1) and result.notes == []


@pytest.mark.parametrize("thickness", [0.0, 3.0])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_roi_becomes_exactly_its_pixel_box(scene, geometry, thickness):
    image, boxes = sample()
    volume = make_volume(scene, image, geometry)
    sliced = mrml_logic.volume_to_slice(volume)
    for box in [*boxes, (0, 0, 9, 512), (503, 500, 512, 512), (100, 7, 108, 15)]:
        roi = make_roi(scene, volume, box, thickness=thickness)
        got, notes = mrml_logic.roi_to_box(roi, sliced)
        assert got == tuple(box), (geometry, box)
        assert notes == []


def test_roi_under_a_transform_and_volume_under_a_transform(scene):
    image, boxes = sample()
    volume = make_volume(scene, image, "rotated-flipped")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift and turn")
    to_parent = np.eye(4)
    to_parent[:3, :3] = _rotation_z(-70.0)
    to_parent[:3, 3] = (40.0, -12.0, 3.0)
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, to_parent[r, c])
    transform.SetMatrixTransformToParent(matrix)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    roi = make_roi(scene, volume, boxes[0], world_from_volume=to_parent)  # drawn in world coordinates
    request = mrml_logic.prepare(volume, [roi])
    assert request.boxes == [boxes[0]]
    # the same ROI, placed in the volume's frame and put under the same transform
    inner = make_roi(scene, volume, boxes[1], name="inner")
    inner.SetAndObserveTransformNodeID(transform.GetID())
    assert mrml_logic.prepare(volume, [inner]).boxes == [boxes[1]]


def test_roi_partly_outside_is_clipped_and_said(scene):
    image, _ = sample()
    volume = make_volume(scene, image, "slicer-2d-image")
    roi = make_roi(scene, volume, (-30, 480, 40, 560), name="edge")
    request = mrml_logic.prepare(volume, [roi])
    assert request.boxes == [(0, 480, 40, 512)]
    assert any("clipped" in note for note in request.notes)


def test_rotated_roi_uses_its_bounding_box_and_says_so(scene):
    image, _ = sample()
    volume = make_volume(scene, image, "identity")
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "tilted")
    roi.SetCenter(200.0, 200.0, 0.0)
    roi.SetSize(40.0, 20.0, 0.0)
    turn = vtk.vtkMatrix4x4()
    rotation = _rotation_z(45.0)
    for r in range(3):
        for c in range(3):
            turn.SetElement(r, c, rotation[r, c])
        turn.SetElement(r, 3, (200.0, 200.0, 0.0)[r])
    roi.SetAndObserveObjectToNodeMatrix(turn)
    request = mrml_logic.prepare(volume, [roi])
    (box,), notes = request.boxes, request.notes
    half = (40 + 20) / 2 / math.sqrt(2)  # half-width of the rotated rectangle's bounding box
    assert box == (math.floor(200 - half + 0.5), math.floor(200 - half + 0.5), math.ceil(200 + half + 0.5), math.ceil(200 + half + 0.5))
    assert any("rotated" in note for note in notes)


def test_slice_index_at_a_world_point(scene):
    image, _ = sample()
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    volume = make_volume(scene, stack, "swapped-flipped")
    m = ijk_to_ras(volume)
    for k in range(3):
        assert mrml_logic.slice_index_at(volume, (m @ [100.0, 50.0, k + 0.3, 1.0])[:3]) == k
    assert mrml_logic.slice_index_at(volume, (m @ [0.0, 0.0, 40.0, 1.0])[:3]) == 2  # clamped


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_mask_lands_on_the_voxels_it_was_computed_for(scene, geometry):
    """Masks -> segments without the model: an asymmetric mask must come back pixel for pixel."""
    image, boxes = sample()
    volume = make_volume(scene, image, geometry)
    rois = [make_roi(scene, volume, box, name=f"R{i}") for i, box in enumerate(boxes)]
    request = mrml_logic.prepare(volume, rois)
    masks = []
    for x0, y0, x1, y1 in request.boxes:
        mask = np.zeros(image.shape, np.uint8)
        mask[y0 : y0 + (y1 - y0) // 2, x0 : x1 - 3] = 1  # an L shape: top half plus a left column
        mask[y0:y1, x0 : x0 + 4] = 1
        masks.append(mask)
    result = mrml_logic.apply_masks(request, masks)
    segmentation = result.segmentation_node
    assert segmentation.GetName() == "mammogram masses"
    for segment_id, mask in zip(result.segment_ids, masks):
        assert np.array_equal(segment_voxels(segmentation, segment_id, volume)[0], mask), (geometry, segment_id)


# ---------------------------------------------------------------------------------------------
# Bad input: a clear message, nothing in the scene changed


@pytest.fixture(scope="module")
def logic(tmp_path_factory):
    return MammogramSegmentationLogic(bundle_dir=None)  # the bundle next to the package


def _refused(logic, scene, match, **kwargs):
    before = scene_state(scene)
    with pytest.raises(InputError, match=match) as info:
        logic.process(**kwargs)
    assert "\n" not in str(info.value)
    assert scene_state(scene) == before
    return str(info.value)


def test_no_volume(logic, scene):
    _refused(logic, scene, "Select an input volume", volume_node=None, roi_nodes=[])


def test_no_roi(logic, scene):
    image, _ = sample()
    volume = make_volume(scene, image)
    _refused(logic, scene, "Draw at least one ROI", volume_node=volume, roi_nodes=[])


def test_roi_outside_the_image(logic, scene):
    image, _ = sample()
    volume = make_volume(scene, image, "slicer-2d-image")
    roi = make_roi(scene, volume, (600, 10, 700, 90), name="far")
    _refused(logic, scene, "ROI 'far' lies outside the image", volume_node=volume, roi_nodes=[roi])


def test_roi_thinner_than_a_few_pixels(logic, scene):
    image, boxes = sample()
    volume = make_volume(scene, image, "swapped-flipped")
    good = make_roi(scene, volume, boxes[0], name="good")
    thin = make_roi(scene, volume, (200, 200, 203, 260), name="thin")
    message = _refused(logic, scene, "ROI 'thin' covers only 3 x 60 pixels", volume_node=volume, roi_nodes=[good, thin])
    assert str(mrml_logic.MIN_ROI_PIXELS) in message


def test_roi_not_placed_yet(logic, scene):
    image, _ = sample()
    volume = make_volume(scene, image)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "unplaced")
    _refused(logic, scene, "ROI 'unplaced' is not placed yet", volume_node=volume, roi_nodes=[roi])


def test_many_slices_without_a_slice_index(logic, scene):
    image, boxes = sample()
    volume = make_volume(scene, np.stack([image] * 4), "slicer-2d-image", name="stack")
    roi = make_roi(scene, volume, boxes[0], slice_index=2)
    _refused(logic, scene, "Volume 'stack' has 4 slices: choose which one", volume_node=volume, roi_nodes=[roi])
    _refused(logic, scene, "ROI 'R' does not cross slice 0", volume_node=volume, roi_nodes=[roi], slice_index=0)
    _refused(logic, scene, "slice 9 does not exist", volume_node=volume, roi_nodes=[roi], slice_index=9)


def test_colour_image(logic, scene):
    image, boxes = sample()
    rgb = np.stack([image, image // 2, image], axis=-1)[None]
    volume = make_volume(scene, rgb, "slicer-2d-image", name="photo", node_class="vtkMRMLVectorVolumeNode")
    roi = make_roi(scene, volume, boxes[0])
    _refused(logic, scene, "Volume 'photo' is a colour \\(RGB\\) image", volume_node=volume, roi_nodes=[roi])


def test_gray_stored_as_rgb_is_used_as_gray(scene):
    image, _ = sample()
    volume = make_volume(scene, np.stack([image] * 3, axis=-1)[None], node_class="vtkMRMLVectorVolumeNode")
    result = mrml_logic.volume_to_slice(volume)
    assert np.array_equal(result.array, image) and any("used as gray" in n for n in result.notes)


def test_weights_missing(logic, scene, tmp_path):
    image, boxes = sample()
    volume = make_volume(scene, image)
    roi = make_roi(scene, volume, boxes[0])
    message = _refused(
        logic, scene, "weights not found", volume_node=volume, roi_nodes=[roi], device="cpu", weights=tmp_path / "missing.pt"
    )
    assert "missing.pt" in message and "Advanced" in message


def test_unknown_network(logic, scene):
    image, boxes = sample()
    volume = make_volume(scene, image)
    roi = make_roi(scene, volume, boxes[0])
    _refused(logic, scene, "unknown network 'vnet'", volume_node=volume, roi_nodes=[roi], model="vnet")


# ---------------------------------------------------------------------------------------------
# Terminology: every segment says it is a mass, in a scene and in a saved .seg.nrrd


def test_segments_are_snomed_ct_masses_named_and_coloured_by_their_roi(scene, tmp_path):
    image, boxes = sample()
    volume = make_volume(scene, image, "slicer-2d-image")
    rois = [make_roi(scene, volume, box, name=f"R{i}") for i, box in enumerate(boxes)]
    request = mrml_logic.prepare(volume, rois)
    masks = []
    for x0, y0, x1, y1 in request.boxes:
        mask = np.zeros(image.shape, np.uint8)
        mask[y0:y1, x0:x1] = 1
        masks.append(mask)
    result = mrml_logic.apply_masks(request, masks)
    segments = [result.segmentation_node.GetSegmentation().GetSegment(i) for i in result.segment_ids]
    for segment in segments:
        assert_snomed_ct_mass(segment)
        assert not segment.GetNameAutoGenerated() and not segment.GetColorAutoGenerated()
    assert [s.GetName() for s in segments] == ["R0 mass", "R1 mass"]
    assert [tuple(s.GetColor()) for s in segments] == list(mrml_logic.PALETTE[:2])

    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "masses.seg.nrrd"))
    assert storage.WriteData(result.segmentation_node)
    loaded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    assert storage.ReadData(loaded)
    for segment_id, name in zip(result.segment_ids, ["R0 mass", "R1 mass"]):
        segment = loaded.GetSegmentation().GetSegment(segment_id)
        assert segment.GetName() == name
        assert_snomed_ct_mass(segment)


# ---------------------------------------------------------------------------------------------
# The full path with the model: segments land where Segmenter.segment puts them


@pytest.fixture(scope="module")
def model_settings():
    """The shipped model: random weights outline blobs that the 'nothing found' check rightly rejects."""
    return {"model": "connected_resunets", "device": "cpu"}


@pytest.fixture(scope="module")
def expected(logic, model_settings):
    """``Segmenter.segment`` on the plain numpy image: each box alone, and both boxes together."""
    image, boxes = sample()
    segmenter = logic.segmenter(**model_settings)
    singles = [segmenter.segment(image, [box], source="expected") for box in boxes]
    union = segmenter.segment(image, boxes, source="expected")
    for mask, box in zip(singles, boxes):
        assert 0 < mask.sum() < image.size, f"the shipped model found no mass in box {box}"
    return image, boxes, singles, union


@pytest.fixture(scope="module")
def first_run(logic, model_settings, expected):
    """Two ROIs on a rotated, flipped, anisotropic mammogram, segmented in one batch."""
    image, boxes, _, _ = expected
    scene = slicer.vtkMRMLScene()
    volume = make_volume(scene, image, "rotated-flipped")
    rois = [make_roi(scene, volume, box, name=f"R{i}", thickness=1.0) for i, box in enumerate(boxes)]
    return scene, volume, rois, logic.process(volume, rois, **model_settings)


def test_segments_land_exactly_where_the_segmenter_puts_them(expected, first_run):
    _, _, singles, union = expected
    _, volume, _, result = first_run
    segmentation = result.segmentation_node
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 2
    got = [segment_voxels(segmentation, segment_id, volume)[0] for segment_id in result.segment_ids]
    for i, (mask, want) in enumerate(zip(got, singles)):
        assert np.array_equal(mask, want), f"segment of ROI R{i}: {int((mask != want).sum())} pixels differ"
    assert np.array_equal(np.maximum(*got), union)  # all ROIs in one batch == Segmenter.segment of all boxes
    segments = [segmentation.GetSegmentation().GetSegment(segment_id) for segment_id in result.segment_ids]
    assert [s.GetName() for s in segments] == ["R0 mass", "R1 mass"]
    assert segments[0].GetColor() != segments[1].GetColor()
    for segment in segments:
        assert_snomed_ct_mass(segment)
    assert segmentation.GetNodeReferenceID(segmentation.GetReferenceImageGeometryReferenceRole()) == volume.GetID()


def test_each_segment_says_how_sure_the_model_is(logic, model_settings, expected, first_run):
    image, boxes, _, _ = expected
    _, _, _, result = first_run
    want = logic.segmenter(**model_settings).segment_rois(image, boxes, source="expected")
    for segment_id, roi in zip(result.segment_ids, want):
        segment = result.segmentation_node.GetSegmentation().GetSegment(segment_id)
        assert float(segment_tag(segment, mrml_logic.CONFIDENCE_TAG)) == pytest.approx(roi.confidence, abs=1e-4)
        assert segment_tag(segment, mrml_logic.DESCRIPTION_TAG) == mrml_logic.describe(roi)


def test_a_roi_without_a_mass_gets_an_empty_segment_that_says_why(logic, model_settings, scene):
    image, _ = sample()
    flat = np.array(image)
    flat[:40, :40] = 0  # a box over one pixel value: nothing to segment
    volume = make_volume(scene, flat)
    roi = make_roi(scene, volume, (0, 0, 40, 40), name="air")
    result = logic.process(volume, [roi], **model_settings)
    segment = result.segmentation_node.GetSegmentation().GetSegment(result.segment_ids[0])
    assert segment_tag(segment, mrml_logic.DESCRIPTION_TAG).startswith("no mass found: nothing to segment")
    assert result.empty and "air (nothing to segment" in result.notes[-1]


def test_rerun_updates_the_same_segments(logic, model_settings, expected, first_run):
    _, boxes, singles, _ = expected
    scene, volume, rois, first = first_run
    segmentation = first.segmentation_node
    # move R1 onto R0's box: its segment must now hold R0's mask, in the same segment
    moved = make_roi(scene, volume, boxes[0], name="tmp", thickness=1.0)
    rois[1].SetAndObserveObjectToNodeMatrix(moved.GetObjectToNodeMatrix())
    rois[1].SetSize(moved.GetSize())
    scene.RemoveNode(moved)
    # a segment the user re-coded keeps its terminology, as it keeps its name: a run sets them once
    recoded = segmentation.GetSegmentation().GetSegment(first.segment_ids[1])
    recoded.SetTerminology(TISSUE_TERMINOLOGY)
    nodes_before = scene.GetNumberOfNodes()
    result = logic.process(volume, rois, segmentation_node=segmentation, **model_settings)
    assert result.segmentation_node is segmentation and scene.GetNumberOfNodes() == nodes_before
    assert result.segment_ids == first.segment_ids
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 2
    for segment_id in result.segment_ids:
        assert np.array_equal(segment_voxels(segmentation, segment_id, volume)[0], singles[0])
    assert_snomed_ct_mass(segmentation.GetSegmentation().GetSegment(first.segment_ids[0]))
    assert recoded.GetTerminology() == TISSUE_TERMINOLOGY


def test_one_slice_of_a_stack(logic, model_settings, expected):
    image, boxes, singles, _ = expected
    scene = slicer.vtkMRMLScene()
    stack = np.stack([image[::-1], image, image[:, ::-1]])
    volume = make_volume(scene, stack, "swapped-flipped", name="stack")
    roi = make_roi(scene, volume, boxes[0], slice_index=1)
    result = logic.process(volume, [roi], slice_index=1, **model_settings)
    voxels = segment_voxels(result.segmentation_node, result.segment_ids[0], volume)
    assert np.array_equal(voxels[1], singles[0]) and not voxels[0].any() and not voxels[2].any()
    assert any("segmenting slice 1" in note for note in result.notes)
