"""MRML <-> numpy for the Connected-UNets module: the part that runs without the Slicer GUI.

Imports only ``vtk``, numpy and the MRML / segmentation classes that both 3D Slicer and the
``slicer-core`` wheel put into the ``slicer`` namespace, so the same code serves the Slicer panel,
the tests and a browser viewer built on trame-slicer. The model (torch, ``connected_unets``) is
reached only through :mod:`.engine`, lazily.

Geometry. A volume's voxel (i, j, k) is ``image[k, j, i]`` of the numpy view of its image data; the
2-D image handed to the ``Segmenter`` is ``image[k]`` (rows = j, columns = i), so a pixel box
``(x0, y0, x1, y1)`` is a range of i (x) and j (y), end exclusive. An ROI is mapped into continuous
IJK through ``ObjectToWorld`` (ROI), the inverse of the volume's parent transforms and its
``RASToIJK`` matrix, whatever the spacing, origin or direction matrix; voxel i covers
[i - 0.5, i + 0.5), and a pixel belongs to the box when the ROI overlaps it (by more than 1/1000 of
a pixel). Masks go back into a segment with the volume's own IJK-to-RAS matrix, so each mask pixel
lands on the voxel it was computed from. "Find masses" goes the other way: each box the detector
finds on the slice becomes an ROI aligned with the image axes that covers exactly its pixels
(:func:`box_to_roi`, the inverse of :func:`roi_to_box`), so "Segment" reads back the detected box.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .engine import InputError, ModelCache

#: ROIs narrower or lower than this many pixels (after clipping to the image) are refused.
MIN_ROI_PIXELS = 8
#: A pixel counts as inside an ROI when the ROI covers more than this fraction of it.
EDGE_TOLERANCE = 1e-3
SEGMENT_ID_PREFIX = "ConnectedUNets_"
ROI_TAG = "ConnectedUNets.ROINodeID"
#: Node attribute of an ROI that "Find masses" added: the ID of the volume it was found on, and its score.
DETECTED_ON_ATTRIBUTE = "ConnectedUNets.DetectedOn"
SCORE_ATTRIBUTE = "ConnectedUNets.DetectionScore"
#: Segment tags with what the model said about the ROI: confidence (0..1) and, for an empty
#: segment, why nothing was found; DESCRIPTION_TAG holds both as one sentence for people.
CONFIDENCE_TAG = "ConnectedUNets.Confidence"
DESCRIPTION_TAG = "Description"
#: SNOMED CT "Mass" (category "Morphologically Altered Structure") of Slicer's General Anatomy list
#: as a terminology string (context~category~type~type modifier~anatomic context~region~region
#: modifier): Slicer, DICOM SEG export and .seg.nrrd files then say what a segment is, in codes.
MASS_TERMINOLOGY = "~".join(
    (
        "Segmentation category and type - 3D Slicer General Anatomy list",
        "SCT^49755003^Morphologically Altered Structure",
        "SCT^4147007^Mass",
        "^^",
        "Anatomic codes - DICOM master list",
        "^^",
        "^^",
    )
)
#: Segment colours, in order of creation (RGB in [0, 1]).
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.20, 0.20),
    (0.20, 0.70, 0.95),
    (0.95, 0.75, 0.15),
    (0.40, 0.85, 0.35),
    (0.80, 0.40, 0.90),
    (1.00, 0.55, 0.20),
    (0.30, 0.90, 0.80),
    (0.95, 0.45, 0.70),
)


def _matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def node_to_world(node: Any, what: str) -> np.ndarray:
    """4x4 matrix from a transformable node's coordinates to world (its parent transforms)."""
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise InputError(f"{what} '{node.GetName()}' is under a non-linear transform; harden or remove the transform first")
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return _matrix_to_numpy(matrix)


@dataclass
class SliceImage:
    """One slice of a volume as the 2-D array the Segmenter takes, with its geometry."""

    array: np.ndarray  # (rows = j, columns = i), the volume's dtype
    ijk_to_ras: np.ndarray  # 4x4, the volume's IJK -> RAS (its own coordinates)
    node_to_world: np.ndarray  # 4x4, the volume's parent transforms
    slice_index: int
    num_slices: int
    name: str
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.array.shape[0]), int(self.array.shape[1])

    @property
    def world_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.node_to_world @ self.ijk_to_ras)


def volume_to_slice(volume_node: Any, slice_index: int | None = None) -> SliceImage:
    """A volume node (a mammogram: one slice, gray) -> a 2-D array plus its IJK <-> RAS geometry.

    A volume with several slices needs ``slice_index``. A colour image is refused unless its
    colour channels are equal (a gray image stored as RGB), which is then used as gray.
    """
    if volume_node is None:
        raise InputError("Select an input volume (a mammogram loaded from DICOM, PNG or JPEG)")
    name = volume_node.GetName()
    image_data = volume_node.GetImageData()
    scalars = None if image_data is None else image_data.GetPointData().GetScalars()
    if scalars is None:
        raise InputError(f"Volume '{name}' has no image data")
    columns, rows, slices = image_data.GetDimensions()
    components = image_data.GetNumberOfScalarComponents()
    if min(columns, rows, slices) < 1 or columns * rows < 4:
        raise InputError(f"Volume '{name}' is empty ({columns} x {rows} x {slices} voxels)")
    voxels = numpy_support.vtk_to_numpy(scalars).reshape(slices, rows, columns, components)
    notes: list[str] = []
    if slices > 1:
        if slice_index is None:
            raise InputError(f"Volume '{name}' has {slices} slices: choose which one to segment")
        if not 0 <= int(slice_index) < slices:
            raise InputError(f"Volume '{name}' has slices 0 to {slices - 1}; slice {slice_index} does not exist")
        slice_index = int(slice_index)
        notes.append(f"'{name}' has {slices} slices: segmenting slice {slice_index}")
    else:
        slice_index = 0
    plane = voxels[slice_index]
    if components == 1:
        array = plane[..., 0].copy()
    else:
        colour = plane[..., : min(components, 3)]
        if not all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
            raise InputError(
                f"Volume '{name}' is a colour (RGB) image; the network needs a gray mammogram "
                "(convert it with the 'Vector to Scalar Volume' module)"
            )
        array = colour[..., 0].copy()
        notes.append(f"'{name}' is stored as RGB with equal channels: used as gray")
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    return SliceImage(
        array=array,
        ijk_to_ras=_matrix_to_numpy(ijk_to_ras),
        node_to_world=node_to_world(volume_node, "Volume"),
        slice_index=slice_index,
        num_slices=slices,
        name=name,
        notes=notes,
    )


def slice_index_at(volume_node: Any, world_point: Sequence[float]) -> int:
    """The slice (k) of a volume nearest to a world (RAS) point, e.g. the centre of the Red view."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    world_to_ijk = np.linalg.inv(node_to_world(volume_node, "Volume") @ _matrix_to_numpy(ijk_to_ras))
    k = (world_to_ijk @ np.array([*world_point[:3], 1.0]))[2]
    slices = volume_node.GetImageData().GetDimensions()[2]
    return int(min(max(math.floor(k + 0.5), 0), slices - 1))


def roi_corners_ijk(roi_node: Any, image: SliceImage) -> np.ndarray:
    """The 8 corners of an ROI in the volume's continuous IJK coordinates, shape (8, 3)."""
    size = np.array(roi_node.GetSize(), dtype=float)
    object_to_world = _matrix_to_numpy(roi_node.GetObjectToWorldMatrix())
    signs = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
    corners = np.hstack([signs * size, np.ones((8, 1))])
    return (image.world_to_ijk @ object_to_world @ corners.T).T[:, :3]


def roi_to_box(roi_node: Any, image: SliceImage) -> tuple[tuple[int, int, int, int], list[str]]:
    """A Markups ROI node -> the pixel box ``(x0, y0, x1, y1)`` (x = column = i, y = row = j, end
    exclusive) on the image, clipped to it; InputError when it misses the image or is too thin."""
    name = roi_node.GetName()
    if roi_node.GetNumberOfControlPoints() < 1 or not roi_node.GetNthControlPointPositionStatus(0) == roi_node.PositionDefined:
        raise InputError(f"ROI '{name}' is not placed yet: finish drawing it (or delete it)")
    corners = roi_corners_ijk(roi_node, image)
    if not np.isfinite(corners).all():  # a scripted or damaged ROI (a .mrk.json with NaN): no pixels to name
        raise InputError(f"ROI '{name}' has a position or size that is not a finite number: place it again on '{image.name}'")
    low, high = corners.min(axis=0), corners.max(axis=0)
    notes = []
    if image.num_slices > 1 and not (low[2] - 0.5 - EDGE_TOLERANCE <= image.slice_index <= high[2] + 0.5 + EDGE_TOLERANCE):
        raise InputError(
            f"ROI '{name}' does not cross slice {image.slice_index} of '{image.name}' "
            f"(it spans slices {low[2]:.1f} to {high[2]:.1f}): show the slice it was drawn on, or move it"
        )
    height, width = image.shape
    x0 = math.floor(low[0] + 0.5 + EDGE_TOLERANCE)
    y0 = math.floor(low[1] + 0.5 + EDGE_TOLERANCE)
    x1 = math.ceil(high[0] + 0.5 - EDGE_TOLERANCE)
    y1 = math.ceil(high[1] + 0.5 - EDGE_TOLERANCE)
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise InputError(f"ROI '{name}' lies outside the image '{image.name}' ({width} x {height} pixels)")
    clipped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
    if clipped != (x0, y0, x1, y1):
        notes.append(f"ROI '{name}' reaches outside the image: clipped to it")
    box_width, box_height = clipped[2] - clipped[0], clipped[3] - clipped[1]
    if min(box_width, box_height) < MIN_ROI_PIXELS:
        raise InputError(
            f"ROI '{name}' covers only {box_width} x {box_height} pixels of the image '{image.name}'; "
            f"draw it at least {MIN_ROI_PIXELS} pixels wide and high around the mass"
        )
    in_plane = (image.world_to_ijk @ _matrix_to_numpy(roi_node.GetObjectToWorldMatrix()))[:2, :2]
    in_plane = in_plane / np.maximum(np.linalg.norm(in_plane, axis=0, keepdims=True), 1e-12)
    if not np.allclose(np.abs(in_plane), np.round(np.abs(in_plane)), atol=1e-3):
        notes.append(f"ROI '{name}' is rotated relative to the image: its bounding box along the image axes is used")
    return clipped, notes


def segment_id_for(roi_node: Any) -> str:
    return SEGMENT_ID_PREFIX + roi_node.GetID()


def segment_name_for(roi_node: Any) -> str:
    return f"{roi_node.GetName()} mass"


@dataclass
class Request:
    """Everything a run needs, read from the scene on the main thread; inference only needs
    ``image.array`` and ``boxes`` and touches no MRML node."""

    volume_node: Any
    roi_nodes: list[Any]
    image: SliceImage
    boxes: list[tuple[int, int, int, int]]
    notes: list[str]

    @property
    def segment_ids(self) -> list[str]:
        return [segment_id_for(roi) for roi in self.roi_nodes]


@dataclass
class Result:
    segmentation_node: Any
    segment_ids: list[str]
    notes: list[str]
    seconds: float = 0.0
    empty: list[str] = field(default_factory=list)


def prepare(volume_node: Any, roi_nodes: Sequence[Any], slice_index: int | None = None) -> Request:
    """Read and check the inputs; InputError (and no change to the scene) when they are unusable."""
    image = volume_to_slice(volume_node, slice_index)
    rois = [roi for roi in roi_nodes if roi is not None]
    if not rois:
        raise InputError("Draw at least one ROI box around a mass (Markups ROI), or tick one in the ROI list")
    unique = list(dict.fromkeys(rois))
    notes = list(image.notes)
    boxes = []
    for roi in unique:
        if not roi.IsA("vtkMRMLMarkupsROINode"):
            raise InputError(f"'{roi.GetName()}' is not a Markups ROI node")
        box, roi_notes = roi_to_box(roi, image)
        boxes.append(box)
        notes.extend(roi_notes)
    return Request(volume_node=volume_node, roi_nodes=unique, image=image, boxes=boxes, notes=notes)


def ensure_segmentation_converters() -> None:
    """Register the binary-labelmap conversion rules when nobody has (a bare ``slicer-core`` scene);
    in Slicer the Segmentations module has done it at startup."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.ConstructRepresentationObjectByRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()):
        return
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def mask_to_labelmap(mask: np.ndarray, image: SliceImage) -> Any:
    """A (rows, columns) 0/1 mask -> a ``vtkOrientedImageData`` on the volume's voxel grid (slice k)."""
    height, width = image.shape
    if mask.shape != (height, width):
        raise ValueError(f"mask of shape {mask.shape} does not fit the image ({height}, {width})")
    k = image.slice_index
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(0, width - 1, 0, height - 1, k, k)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = (np.asarray(mask) > 0).astype(np.uint8).ravel()
    labelmap.SetImageToWorldMatrix(_numpy_to_matrix(image.ijk_to_ras))
    return labelmap


def describe(result: Any) -> str:
    """The sentence a segment carries about its ROI: the confidence, or why nothing was found."""
    if result is None:
        return ""
    if not result.found:
        return f"no mass found: {result.reason}"
    return f"mass, confidence {result.confidence:.2f}"


def apply_masks(request: Request, masks: Sequence[Any], segmentation_node: Any = None) -> Result:
    """Write one segment per ROI (created, or replaced on a re-run) into ``segmentation_node``
    (a new ``<volume> masses`` node when None), with the volume as reference geometry. A new
    segment is named after its ROI, coloured from the palette and tagged SNOMED CT "Mass".

    ``masks`` are the Segmenter's per-ROI results (``segment_rois``: mask, confidence, found,
    reason; their confidence and reason go into the segment's tags) or plain mask arrays."""
    volume = request.volume_node
    scene = volume.GetScene()
    if scene is None:
        raise InputError(f"Volume '{request.image.name}' was removed from the scene while it was segmented")
    gone = [roi.GetName() for roi in request.roi_nodes if roi.GetScene() is None]
    if gone:
        raise InputError(f"ROI {', '.join(gone)} was removed while it was segmented; run again")
    if len(masks) != len(request.roi_nodes):
        raise ValueError(f"{len(masks)} masks for {len(request.roi_nodes)} ROIs")
    ensure_segmentation_converters()
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volume.GetName()} masses")
        segmentation_node.CreateDefaultDisplayNodes()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        segmentation_node.SetAndObserveTransformNodeID(volume.GetTransformNodeID())
    elif segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        if segmentation_node.GetDisplayNode() is None:
            segmentation_node.CreateDefaultDisplayNodes()
    segmentation = segmentation_node.GetSegmentation()
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    empty = []
    was_modifying = segmentation_node.StartModify()
    try:
        for roi, item in zip(request.roi_nodes, masks):
            result = item if hasattr(item, "mask") else None
            mask = result.mask if result is not None else item
            segment_id = segment_id_for(roi)
            segment = segmentation.GetSegment(segment_id)
            if segment is None:
                colour = PALETTE[segmentation.GetNumberOfSegments() % len(PALETTE)]
                segmentation.AddEmptySegment(segment_id, segment_name_for(roi), colour)
                segment = segmentation.GetSegment(segment_id)
                segment.SetTerminology(MASS_TERMINOLOGY)
                # the ROI's name and the palette's colour are ours: a terminology edit keeps them
                segment.SetNameAutoGenerated(False)
                segment.SetColorAutoGenerated(False)
            segment.SetTag(ROI_TAG, roi.GetID())
            if result is not None:
                segment.SetTag(CONFIDENCE_TAG, f"{result.confidence:.4f}")
                segment.SetTag(DESCRIPTION_TAG, describe(result))
            labelmap = mask_to_labelmap(mask, request.image)
            if not logic.SetBinaryLabelmapToSegment(labelmap, segmentation_node, segment_id, logic.MODE_REPLACE, labelmap.GetExtent()):
                raise RuntimeError(f"could not write the mask of ROI '{roi.GetName()}' into '{segmentation_node.GetName()}'")
            if not np.any(mask):
                empty.append(roi.GetName() + (f" ({result.reason})" if result is not None and result.reason else ""))
    finally:
        segmentation_node.EndModify(was_modifying)
    notes = list(request.notes)
    if empty:
        notes.append(f"no mass found in ROI {', '.join(empty)} (empty segment)")
    return Result(segmentation_node=segmentation_node, segment_ids=request.segment_ids, notes=notes, empty=empty)


def slice_spacing(image: SliceImage) -> tuple[float, float]:
    """(row, column) pixel size in mm of a slice: the lengths of the volume's J and I axes."""
    lengths = np.linalg.norm(image.ijk_to_ras[:3, :3], axis=0)
    return float(lengths[1]), float(lengths[0])


def box_to_roi(scene: Any, image: SliceImage, box: Sequence[int], name: str) -> Any:
    """A Markups ROI covering exactly the pixels of ``box`` (x0, y0, x1, y1) on the image's slice,
    aligned with the image axes (the inverse of :func:`roi_to_box`), one slice thick, in world
    coordinates (the volume's parent transforms applied)."""
    m = image.node_to_world @ image.ijk_to_ras
    x0, y0, x1, y1 = (float(v) for v in box)
    centre = m @ np.array([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, float(image.slice_index), 1.0])
    lengths = np.linalg.norm(m[:3, :3], axis=0)
    axes = m[:3, :3] / lengths
    if np.linalg.det(axes) < 0:  # an ROI's frame is right-handed; the ROI is symmetric along its third axis
        axes[:, 2] *= -1
    object_to_node = np.eye(4)
    object_to_node[:3, :3], object_to_node[:3, 3] = axes, centre[:3]
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
    roi.SetAndObserveObjectToNodeMatrix(_numpy_to_matrix(object_to_node))
    roi.SetSize((x1 - x0) * lengths[0], (y1 - y0) * lengths[1], lengths[2])
    return roi


def detection_name(volume_name: str, index: int, score: float) -> str:
    """The name of "Find masses"' ROI ``index`` (0-based): ``<volume> mass 1 (0.87)``, its score in it."""
    return f"{volume_name} mass {index + 1} ({score:.2f})"


def add_detection_rois(volume_node: Any, image: SliceImage, detections: Sequence[Any]) -> list[Any]:
    """One ROI node per detection (box, score), named with its score (:func:`detection_name`), the
    score also in its description and attribute; the ROIs an earlier "Find masses" added on this
    volume are removed first, so that a second search replaces the first. ROIs the user drew stay."""
    scene = volume_node.GetScene()
    if scene is None:
        raise InputError(f"Volume '{image.name}' was removed from the scene while it was searched")
    old = [scene.GetNthNodeByClass(i, "vtkMRMLMarkupsROINode") for i in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode"))]
    for roi in old:
        if roi is not None and roi.GetAttribute(DETECTED_ON_ATTRIBUTE) == volume_node.GetID():
            scene.RemoveNode(roi)
    rois = []
    for index, (box, score) in enumerate((tuple(d[0]), float(d[1])) for d in detections):
        roi = box_to_roi(scene, image, box, detection_name(image.name, index, score))
        roi.SetDescription(f"found by the Connected-UNets mass detector, score {score:.2f}; move, resize or delete it before Segment")
        roi.SetAttribute(DETECTED_ON_ATTRIBUTE, volume_node.GetID())
        roi.SetAttribute(SCORE_ATTRIBUTE, f"{score:.4f}")
        if roi.GetDisplayNode() is None:
            roi.CreateDefaultDisplayNodes()
        if roi.GetDisplayNode() is not None:  # an outline, as "Draw ROI" makes them
            roi.GetDisplayNode().SetFillVisibility(False)
        rois.append(roi)
    return rois


class MammogramSegmentationLogic:
    """Volume + ROI nodes -> one mass segment per ROI, with a cached model.

    ``prepare`` (main thread) -> ``infer`` (any thread, no MRML) -> ``apply`` (main thread);
    ``process`` does all three in a row for scripts, tests and the browser viewer."""

    def __init__(self, bundle_dir: Any = None) -> None:
        self.models = ModelCache(bundle_dir)

    def segmenter(self, model: str | None = None, device: str = "auto", threshold: float | None = None, weights: Any = None) -> Any:
        """The cached Segmenter for these settings (``model=None``: the bundle's default network)."""
        return self.models.get(model=model, device=device, threshold=threshold, weights=weights)

    @staticmethod
    def prepare(volume_node: Any, roi_nodes: Sequence[Any], slice_index: int | None = None) -> Request:
        return prepare(volume_node, roi_nodes, slice_index)

    def infer(self, request: Request, segmenter: Any = None, job: Any = None, **model_settings: Any) -> list[Any]:
        """Per-ROI results (mask, confidence, found, reason) of a prepared request, all ROIs in one
        batch (no MRML access)."""
        if segmenter is None:
            if job is not None and not self.models.is_loaded(**model_settings):
                job.report("loading the model (first run with these settings)...")
            with self.models.lock:
                segmenter = self.segmenter(**model_settings)
                if job is not None:
                    job.check()
                    job.report(f"segmenting {len(request.boxes)} ROI(s) on {segmenter.device}...")
                return self._segment(segmenter, request)
        return self._segment(segmenter, request)

    @staticmethod
    def _segment(segmenter: Any, request: Request) -> list[Any]:
        try:
            return segmenter.segment_rois(request.image.array, request.boxes, source=request.image.name)
        except ValueError as err:
            raise InputError(str(err).strip().splitlines()[0]) from err

    @staticmethod
    def apply(request: Request, masks: Sequence[Any], segmentation_node: Any = None) -> Result:
        return apply_masks(request, masks, segmentation_node)

    # -- "Find masses": the detector's boxes as ROI nodes -------------------------------------------

    @staticmethod
    def prepare_image(volume_node: Any, slice_index: int | None = None) -> SliceImage:
        """The slice to search (main thread); InputError when the volume is unusable."""
        return volume_to_slice(volume_node, slice_index)

    def detect(self, image: SliceImage, segmenter: Any = None, job: Any = None, **model_settings: Any) -> list[Any]:
        """The detector's (box, score) pairs on a prepared slice (no MRML access), in its pixels
        and square-pixel geometry; InputError, in one line, without detector weights."""
        from connected_unets.detection import DetectorMissing

        with self.models.lock:
            if segmenter is None:
                if job is not None:
                    job.report("loading the detector...")
                segmenter = self.segmenter(**model_settings)
            try:
                detector = segmenter.detector
                if job is not None:
                    job.check()
                    job.report(f"searching '{image.name}' for masses on {segmenter.device}...")
                return detector.detect(image.array, spacing=slice_spacing(image), source=image.name)
            except DetectorMissing as err:
                raise InputError(err.saying("draw ROI boxes around the masses (Draw ROI)")) from err
            except ValueError as err:
                raise InputError(str(err).strip().splitlines()[0]) from err

    @staticmethod
    def add_detection_rois(volume_node: Any, image: SliceImage, detections: Sequence[Any]) -> list[Any]:
        return add_detection_rois(volume_node, image, detections)

    def find_masses(self, volume_node: Any, slice_index: int | None = None, segmenter: Any = None, **model_settings: Any) -> list[Any]:
        """Search ``volume_node`` and add one ROI node per detected mass (for scripts and tests;
        the panel runs the same three steps with the search in the background)."""
        image = self.prepare_image(volume_node, slice_index)
        return self.add_detection_rois(volume_node, image, self.detect(image, segmenter=segmenter, **model_settings))

    def process(
        self,
        volume_node: Any,
        roi_nodes: Sequence[Any],
        segmentation_node: Any = None,
        slice_index: int | None = None,
        segmenter: Any = None,
        **model_settings: Any,
    ) -> Result:
        """Segment every ROI of ``volume_node`` in one batch; one segment per ROI."""
        started = time.perf_counter()
        request = self.prepare(volume_node, roi_nodes, slice_index)
        masks = self.infer(request, segmenter=segmenter, **model_settings)
        result = self.apply(request, masks, segmentation_node)
        result.seconds = time.perf_counter() - started
        return result
