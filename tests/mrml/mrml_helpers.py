"""What the slicer-core tests of this folder share: the check that ``import slicer`` gives Slicer's
MRML classes, the Slicer module's library (``SlicerConnectedUNets``) on ``sys.path``, and reading
geometry, segments and tags back from MRML nodes.

Import it before ``vtk`` or anything of Slicer's: where slicer-core is not installed, importing it
skips the importing test module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SKIP_REASON = (
    "needs slicer-core (real MRML without the Slicer GUI) in its own venv: "
    "pip install 'trame-slicer[standalone]==2.0.0' (see SlicerConnectedUNets/README.md)"
)
# find_spec first: a folder named "slicer" on sys.path would import as a namespace package (and
# slicer-core's own "slicer" extends its __path__ over such folders, importing what is in them;
# hence this folder is tests/mrml, not tests/slicer)
_spec = importlib.util.find_spec("slicer")
if _spec is None or _spec.origin in (None, "namespace"):
    pytest.skip(SKIP_REASON, allow_module_level=True)
slicer = pytest.importorskip("slicer", reason=SKIP_REASON)
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's (no vtkMRMLScene); " + SKIP_REASON, allow_module_level=True)

import vtk  # noqa: E402  (slicer-core's own vtk)
from vtk.util import numpy_support  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "SlicerConnectedUNets"))  # SlicerConnectedUNetsLib


def ijk_to_ras(volume) -> np.ndarray:
    """The volume node's 4 x 4 IJK-to-RAS matrix."""
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def make_roi(scene, volume, box, name="R", slice_index=0, thickness=0.0, world_from_volume=np.eye(4)):
    """A Markups ROI that covers exactly the pixels of ``box`` (x0, y0, x1, y1) on ``slice_index``,
    aligned with the image axes, in world coordinates; ``thickness`` in slices."""
    m = world_from_volume @ ijk_to_ras(volume)
    x0, y0, x1, y1 = box
    centre = m @ np.array([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, slice_index, 1.0])
    axes = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    if np.linalg.det(axes) < 0:  # an ROI frame is right-handed; the ROI is symmetric in z
        axes[:, 2] *= -1
    object_to_node = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            object_to_node.SetElement(r, c, axes[r, c])
        object_to_node.SetElement(r, 3, centre[r])
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
    roi.SetAndObserveObjectToNodeMatrix(object_to_node)
    lengths = np.linalg.norm(m[:3, :3], axis=0)
    roi.SetSize((x1 - x0) * lengths[0], (y1 - y0) * lengths[1], thickness * lengths[2])
    return roi


def segment_voxels(segmentation_node, segment_id: str, volume) -> np.ndarray:
    """A segment resampled onto the volume's voxel grid by Slicer's own export, (slices, rows, columns)."""
    scene = volume.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "export")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation_node, [segment_id], labelmap, volume)
        assert ok, f"export of {segment_id} failed"
        columns, rows, slices = labelmap.GetImageData().GetDimensions()
        assert (columns, rows, slices) == volume.GetImageData().GetDimensions()
        assert np.allclose(ijk_to_ras(labelmap), ijk_to_ras(volume))
        array = numpy_support.vtk_to_numpy(labelmap.GetImageData().GetPointData().GetScalars())
        return (array.reshape(slices, rows, columns) > 0).astype(np.uint8)
    finally:
        scene.RemoveNode(labelmap)


def segment_tag(segment, name: str) -> str:
    """The segment's tag ``name``; fails the test if it has none."""
    value = vtk.reference("")
    assert segment.GetTag(name, value), f"segment {segment.GetName()!r} has no tag {name!r}"
    return str(value)
