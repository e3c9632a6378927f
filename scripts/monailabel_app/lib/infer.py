"""The MONAI Label infer task: the project's ``Segmenter`` on one stored mammogram and the request's boxes.

Nothing of the pipeline is here: the image is read by ``connected_unets.io.load_image`` (DICOM LUTs,
MONOCHROME1, compressed syntaxes, PNG/JPEG/NIfTI/NRRD), the masks come from
``Segmenter.segment_rois`` (the bundle's inference.yaml), and the files are written by
``connected_unets.io`` / ``connected_unets.writers`` (the DICOM SEG and ``.seg.nrrd`` of the CLI).
This task only turns a MONAI Label request into those calls and their results into the label
image MONAI Label clients expect (the whole mammogram, 0 background / 1 mass, uint8) and the JSON
with one row per ROI. A request without boxes is answered with the masses the bundle's detector
finds (``Segmenter.segment_detections``): one row per detected mass, its detector score included.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from connected_unets import __version__
from connected_unets.bundle import display_name
from connected_unets.detection import DetectorMissing
from connected_unets.inference import Segmenter
from connected_unets.io import ImageReadError, LoadedImage, load_image, save_mask
from connected_unets.writers import Algorithm, roi_rows, save_dicom_seg, save_seg_nrrd

from .params import BOXES_HELP, RequestError, flag, parse_boxes, result_extension

logger = logging.getLogger(__name__)

LABELS = {"mass": 1}
#: request keys set by the server, not by the client (the image path, the name to report)
IMAGE_NAME_KEY = "image_name"
DICOM_SEG_KEY = "dicom_seg"  # set on the request: also write the per-ROI DICOM SEG; on the result: its path


def read_image(path: str | os.PathLike[str], name: str) -> LoadedImage:
    """The image at ``path`` (a file, or a folder holding one DICOM instance: a DICOMweb series);
    RequestError(422) naming ``name`` (the image id or uploaded file name) when it cannot be used."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if len(files) != 1:
            raise RequestError(422, f"{name}: the series holds {len(files)} instances; this model segments one 2-D image (one instance per series)")
        path = files[0]
    try:
        return load_image(path)
    except ImageReadError as err:
        raise RequestError(422, str(err).replace(str(path), name)) from None


def _temporary(name: str) -> Path:
    """A new file name in the temporary folder ending with ``name`` (its suffix picks the format)."""
    return Path(tempfile.gettempdir()) / f"connected-unets-{uuid.uuid4().hex[:12]}-{name}"


class MassSegmentation(InferTask):
    """Auto-segmentation of breast masses inside ROI boxes (params ``boxes``) of a 2-D mammogram.

    One Segmenter per task, used by one request at a time (the lock): the network and its
    transforms are shared objects, and on a CPU parallel requests would only take turns anyway."""

    def __init__(self, segmenter: Segmenter, network: str) -> None:
        self.network = network
        self.algorithm = Algorithm(display_name(network), __version__)
        super().__init__(
            type=InferType.SEGMENTATION,
            labels=dict(LABELS),
            dimension=2,
            description=(
                f"{self.algorithm.name} {__version__}: breast masses inside ROI boxes of a 2-D mammogram; "
                "params boxes = [[x0, y0, x1, y1], ...] in pixels of the stored image (or the text 'x0 y0 x1 y1; ...'); "
                "without boxes the masses are found by the bundle's detector first"
            ),
            config={"boxes": ""},  # shown as an editable option by clients (3D Slicer's Options table)
        )
        self.segmenter = segmenter
        self._lock = threading.Lock()

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(label file, result JSON) for ``request["image"]`` (a path) and ``request["boxes"]``."""
        start = time.perf_counter()
        name = str(request.get(IMAGE_NAME_KEY) or Path(str(request["image"])).name)
        boxes = parse_boxes(request.get("boxes"))
        extension = result_extension(request.get("result_extension"), str(request["image"]))
        want_seg = flag(request.get(DICOM_SEG_KEY), DICOM_SEG_KEY)
        image = read_image(request["image"], name)
        if want_seg and image.dicom is None:
            raise RequestError(422, f"{name}: a DICOM SEG references a DICOM image, and this study is not DICOM; ask for output=image or json")
        loaded = time.perf_counter()
        scores: list[float | None] = [None] * len(boxes)
        with self._lock:
            try:
                if boxes:
                    results = self.segmenter.segment_rois(image.array, boxes, source=name, value_range=image.value_range)
                else:  # no boxes: the detector finds the masses, the Segmenter outlines them
                    pairs = self.segmenter.segment_detections(image, source=name)
                    results, scores = [r for _, r in pairs], [round(d.score, 4) for d, _ in pairs]
            except DetectorMissing as err:
                raise RequestError(422, err.saying(f"send {BOXES_HELP}")) from None
            except ValueError as err:  # boxes outside or empty, an unusable image: one line naming it
                raise RequestError(422, str(err)) from None
        inferred = time.perf_counter()
        masks = [r.mask for r in results]
        if want_seg and not masks:
            raise RequestError(422, f"{name}: no mass detected, so there is no DICOM SEG to send; ask for output=image or json")
        union = np.maximum.reduce(masks).astype(np.uint8) if masks else np.zeros(image.array.shape, dtype=np.uint8)
        label_file = self._write_label(union, masks or [union], image, extension)
        rows = roi_rows(masks, [r.box for r in results], image, [r.confidence for r in results], [r.reason for r in results]) if masks else []
        result: dict[str, Any] = {
            "label_names": dict(LABELS),
            "model": self.algorithm.name,
            "network": self.network,
            "version": self.algorithm.version,
            "image": name,
            "image_size": [int(union.shape[0]), int(union.shape[1])],  # rows, columns
            "boxes_from": "request" if boxes else "detector",
            "rois": [
                {
                    "roi": row["roi"],
                    "box": [row["x0"], row["y0"], row["x1"], row["y1"]],
                    "found": bool(r.found),
                    "confidence": row["confidence"],
                    "score": score,
                    "reason": r.reason,
                    "area_px": row["area_px"],
                    "area_mm2": row["area_mm2"],
                    "max_diameter_px": row["max_diameter_px"],
                    "max_diameter_mm": row["max_diameter_mm"],
                }
                for row, r, score in zip(rows, results, scores)
            ],
        }
        if want_seg:
            result[DICOM_SEG_KEY] = str(self._write_seg(masks, image))
        done = time.perf_counter()
        result["latencies"] = {
            "load": round(loaded - start, 3), "infer": round(inferred - loaded, 3),
            "write": round(done - inferred, 3), "total": round(done - start, 3),
        }  # fmt: skip
        logger.info("%s: %d ROI(s), %d found, %d mass pixels, %.2f s", name, len(results), sum(r.found for r in results), int(union.sum()), done - start)
        return str(label_file), result

    def _write_label(self, union: np.ndarray, masks: list[np.ndarray], image: LoadedImage, extension: str) -> Path:
        """The label image of the whole mammogram, 0/1 uint8, in a temporary file (the server removes it)."""
        target = _temporary(f"label{extension}")
        if extension == ".png":
            from PIL import Image  # label values 0/1 (MONAI Label's label index), not the CLI's viewable 0/255

            Image.fromarray(union).save(target, format="PNG")
        elif extension in (".nii", ".nii.gz"):
            save_mask(union, target, reference=image)
        elif extension == ".seg.nrrd":
            save_seg_nrrd(masks, target, image)  # one "Mass N" segment per ROI, as the CLI writes it
        else:  # .nrrd: one labelmap layer on the image grid (the union), for clients that load a label volume
            save_seg_nrrd([union], target, image)
        return target

    def _write_seg(self, masks: list[np.ndarray], image: LoadedImage) -> Path:
        """The per-ROI DICOM SEG of ``writers.save_dicom_seg`` in a temporary file."""
        target = _temporary("seg.dcm")
        return save_dicom_seg(masks, target, image, self.algorithm)
