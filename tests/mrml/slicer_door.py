"""The Slicer module's Logic as a front door of the bad-input corpus (tests/bad_inputs).

A case goes in as a Slicer user puts it in: the image file is loaded by Slicer's own readers into a
volume node (``vtkSlicerVolumesLogic.AddArchetypeVolume``, what "Add data" runs: ITK's DICOM,
NIfTI, NRRD and MetaImage readers), each box becomes a Markups ROI node covering exactly its pixels,
and ``MammogramSegmentationLogic.process`` segments them into a segmentation node, on the bundle's
shipped weights (one Logic per process, keeping its model loaded as a Slicer session does).
slicer-core, Slicer's libraries without the GUI, lacks ITK's PNG/JPEG/TIFF/BMP readers, which
Slicer has: such a file is read by the same ITK (the ``itk`` package), handed to Slicer's reader as
a NRRD with the geometry ITK gives the picture (how Slicer places a PNG or JPEG), so Slicer still
decides what node it becomes (scalar, or vector for colour). A file neither reads is
:data:`~bad_inputs.corpus.NOT_LOADED`: Slicer refuses it and the module never sees it.

What the door reports (:class:`bad_inputs.doors.Outcome`): an error (the Logic's one-line
``InputError``, which must name the volume node, i.e. the file's name), or the segments as masks
on the volume's voxel grid (Slicer's own export), found or not, with the Logic's notes as warnings.
A failed run must leave the scene as it was; the Logic writes no file, so anything new in the case
folder breaks the corpus's rules.

Import :mod:`mrml_helpers` first: without slicer-core the importing test module is skipped.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mrml_helpers import make_roi, segment_voxels, slicer  # first: skips without slicer-core
import vtk  # slicer-core's own vtk

from bad_inputs import doors
from bad_inputs.corpus import ERROR, NOT_LOADED, NOTHING, SLICER, WRITTEN, Made
from bad_inputs.doors import Outcome
from SlicerConnectedUNetsLib.engine import InputError, one_line  # on sys.path by mrml_helpers
from SlicerConnectedUNetsLib.mrml_logic import DESCRIPTION_TAG, MammogramSegmentationLogic, prepare

DEVICE = "cpu"
_LOGIC: list[MammogramSegmentationLogic] = []


def logic() -> MammogramSegmentationLogic:
    """The one Logic of this process (the bundle next to the package), its model cached as the
    Slicer panel keeps it between runs."""
    if not _LOGIC:
        _LOGIC.append(MammogramSegmentationLogic(bundle_dir=None))
    return _LOGIC[0]


def segmenter() -> Any:
    """The Segmenter the Logic runs the corpus on (the bundle's shipped weights, on the CPU)."""
    return logic().segmenter(device=DEVICE)


class NotLoaded(Exception):
    """Slicer's readers refuse the file."""


def node_name(path: Path) -> str:
    """The name Slicer gives the volume of a file: its name without the extension."""
    name = path.name
    for suffix in (".nii.gz", ".seg.nrrd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


@contextlib.contextmanager
def vtk_quiet() -> Iterator[None]:
    """VTK's and ITK's error output off for the block (a refused file is reported by the door)."""
    shown = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()
    try:
        yield
    finally:
        vtk.vtkObject.SetGlobalWarningDisplay(shown)


def load_volume(scene: Any, path: Path) -> Any:
    """``path`` as a volume node named as Slicer names it; NotLoaded when Slicer cannot read it."""
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLScene(scene)
    name = node_name(path)
    with vtk_quiet():
        node = volumes.AddArchetypeVolume(str(path), name, 0)
    if node is not None:
        return node
    import itk  # ITK's PNG, JPEG, TIFF and BMP readers, which Slicer has and slicer-core lacks

    try:
        picture = itk.imread(str(path))
    except Exception as err:  # noqa: BLE001 - ITK raises RuntimeError, IndexError, ...
        raise NotLoaded(f"{path}: Slicer cannot load the file ({_itk_reason(err, path)})") from err
    with tempfile.TemporaryDirectory(prefix="slicer-door-") as scratch:  # outside the case folder
        nrrd = Path(scratch) / "picture.nrrd"
        itk.imwrite(picture, str(nrrd))
        with vtk_quiet():
            node = volumes.AddArchetypeVolume(str(nrrd), name, 0)
    if node is None:
        raise NotLoaded(f"{path}: Slicer cannot load the file")
    node.SetName(name)  # not the "<name>_1" the first, failed read left the scene to choose
    return node


def _itk_reason(err: BaseException, path: Path) -> str:
    """ITK's reason without its source location, object address or the file's name again."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    line = next((line for line in lines if "ITK ERROR:" in line), lines[0] if lines else type(err).__name__)
    reason = line.split("ITK ERROR:", 1)[-1]
    reason = reason.split("): ", 1)[-1] if "): " in reason else reason  # "PNGImageIO(0x55...): Error while ..."
    return reason.replace(str(path), "").strip().rstrip(":").strip() or one_line(err)


def roi_over(scene: Any, volume: Any, box: Sequence[float], name: str) -> Any:
    """A Markups ROI aligned with the volume's axes covering pixels x0..x1, y0..y1 (end exclusive)
    of its first slice, in world coordinates, as a user draws one in the slice view."""
    return make_roi(scene, volume, tuple(float(v) for v in box), name)


def scene_state(scene: Any) -> list[tuple[str, int]]:
    """Node IDs and modification times: what 'a failed run changed nothing' compares."""
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return sorted((node.GetID(), node.GetMTime()) for node in nodes)


def _nested(boxes: Any) -> list[Sequence[float]]:
    return [boxes] if boxes and not isinstance(boxes[0], (list, tuple)) else list(boxes)


def run_slicer(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """Load the case's image in a fresh scene, draw its boxes as ROIs, run the Logic."""
    scene = slicer.vtkMRMLScene()
    try:
        volume = load_volume(scene, made.image)
    except NotLoaded as err:
        return Outcome(NOT_LOADED, str(err))
    rois = [roi_over(scene, volume, box, f"R{index + 1}") for index, box in enumerate(_nested(made.boxes))]
    names = (volume.GetName(), *(roi.GetName() for roi in rois))  # a volume's problem names the volume, an ROI's the ROI
    before = scene_state(scene)
    try:
        result = logic().process(volume, rois, device=DEVICE)
    except InputError as err:
        return Outcome(ERROR, str(err), names=names, scene_changed=scene_state(scene) != before)
    except BaseException as err:  # noqa: BLE001 - a traceback is what the corpus looks for
        return doors._crash(err, "")
    node = result.segmentation_node
    segments = [node.GetSegmentation().GetSegment(segment_id) for segment_id in result.segment_ids]
    slice_masks = [segment_voxels(node, segment_id, volume)[0] > 0 for segment_id in result.segment_ids]
    found = [bool(mask.any()) for mask in slice_masks]
    union = np.logical_or.reduce(slice_masks)
    descriptions = [_tag(segment, DESCRIPTION_TAG) for segment in segments]
    if any(found):
        outcome, message = WRITTEN, f"{len(segments)} segment(s), {int(union.sum())} mass pixels"
    else:
        said = [note for note in result.notes if note.startswith("no mass found")]  # the line the panel shows
        outcome, message = NOTHING, (said or [d for d in descriptions if d] or [""])[-1]
    boxes = [tuple(box) for box in prepare(volume, rois).boxes]
    return Outcome(
        outcome, message, None, "\n".join(result.notes), list(result.notes), [m.shape for m in slice_masks], found, boxes,
        len(segments), masks=[union], names=names,
    )  # fmt: skip


def _tag(segment: Any, name: str) -> str:
    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else ""


doors.DOORS[SLICER] = run_slicer
