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
