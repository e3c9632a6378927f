"""Where the studies come from: a folder of images, or a DICOMweb archive (Orthanc, ...).

The folder datastore is MONAI Label's own, also listing DICOM files. The DICOMweb one is MONAI
Label's too, with three changes for mammograms: series are listed by ``Modality`` MG (MONAI Label
looks for CT), an image stays the DICOM instance it is (MONAI Label would turn it into NIfTI, losing
the header a DICOM SEG must reference; ``connected_unets.io`` reads DICOM itself), and a final label
goes back to the archive as the project's DICOM SEG (``connected_unets.writers``), not through
dcmqi, which MONAI Label downloads from the internet at start.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.dicom import dicom_web_upload_dcm
from monailabel.interfaces.datastore import DefaultLabelTag

from connected_unets.io import ImageReadError, load_mask
from connected_unets.writers import Algorithm, save_dicom_seg

from .infer import read_image
from .params import RequestError

logger = logging.getLogger(__name__)

#: image files a folder of studies may hold, besides MONAI Label's defaults (which lack DICOM)
EXTRA_EXTENSIONS = ("*.dcm", "*.jpeg", "*.tiff", "*.bmp")


def folder_datastore(studies: str) -> LocalDatastore:
    """MONAI Label's folder datastore, also listing DICOM, JPEG (.jpeg), TIFF (.tiff) and BMP files."""
    extensions = list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)
    extensions += [e for e in EXTRA_EXTENSIONS if e not in extensions]
    return LocalDatastore(studies, extensions=extensions, auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD, read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY)


def _is_dicom(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


class MammogramDICOMWebDatastore(DICOMWebDatastore):
    """MONAI Label's DICOMweb datastore serving single-instance mammogram series as DICOM files
    (image id = SeriesInstanceUID) and storing final labels in the archive as DICOM SEG."""

    def __init__(self, url: str, modality: str, algorithm: Algorithm, cache_path: str | None = None) -> None:
        client = DICOMwebClientX(
            url=url,
            qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
            wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
            stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX,
        )
        self.algorithm = algorithm
        search_filter = {"Modality": modality} if modality else {}
        super().__init__(client=client, search_filter=search_filter, cache_path=cache_path, fetch_by_frame=False, convert_to_nifti=False)

    def get_image_uri(self, image_id: str) -> str:
        """The cached folder of series ``image_id`` (downloaded on first use), its instance also
        registered in the local cache so that labels can be kept beside it."""
        series_dir = super().get_image_uri(image_id)
        if image_id not in self._datastore.objects:
            files = sorted(p for p in Path(series_dir).iterdir() if p.is_file())
            if len(files) == 1:
                LocalDatastore.add_image(self, image_id, str(files[0]), self._dicom_info(image_id))
        return series_dir

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any], label_id: str = "") -> str:
        """Keep the label in the local cache as MONAI Label does; a final label is also stored in
        the archive as a DICOM SEG referencing the image: a DICOM SEG file as it came (the one
        ``output=dicom_seg`` returns, one segment per ROI), any other label image (NIfTI, NRRD, PNG
        of the image's size, 0 = background) as a one-segment SEG made by ``connected_unets.writers``."""
        if not image_exists(self, image_id):
            raise RequestError(404, f"unknown image id {image_id!r}: no such series in the archive")
        if label_tag == DefaultLabelTag.FINAL:
            seg_file, made = self._seg_of(image_id, label_filename)
            try:
                series = dicom_web_upload_dcm(seg_file, self._client)
            finally:
                if made:
                    Path(seg_file).unlink(missing_ok=True)
            if not series:
                raise RequestError(502, f"{image_id}: the archive did not confirm storing the DICOM SEG")
            info = self.get_image_info(image_id)
            label_info = dict(label_info or {})
            label_info.update({"SeriesInstanceUID": series, "Modality": "SEG", "PatientID": info.get("PatientID"), "StudyInstanceUID": info.get("StudyInstanceUID")})
            logger.info("%s: DICOM SEG stored in the archive as series %s", image_id, series)
        return LocalDatastore.save_label(self, image_id, label_filename, label_tag, label_info)

    def _seg_of(self, image_id: str, label_filename: str) -> tuple[str, bool]:
        """(a DICOM SEG file for the label, whether it was made here)."""
        image = read_image(self.get_image_uri(image_id), image_id)
        if image.dicom is None:
            raise RequestError(422, f"{image_id}: not a DICOM image")
        if _is_dicom(label_filename):
            import pydicom

            seg = pydicom.dcmread(label_filename, stop_before_pixels=True)
            if seg.get("Modality") != "SEG":
                raise RequestError(422, f"label for {image_id}: a DICOM file, but not a DICOM SEG (Modality {seg.get('Modality')!r})")
            referenced = {str(item.get("SeriesInstanceUID", "")) for item in seg.get("ReferencedSeriesSequence", [])}
            if image_id not in referenced:
                raise RequestError(422, f"label for {image_id}: the DICOM SEG references another series ({', '.join(sorted(referenced)) or 'none'})")
            return label_filename, False
        try:
            mask = load_mask(label_filename).astype(np.uint8)
        except ImageReadError as err:
            raise RequestError(422, f"label for {image_id}: {str(err).replace(str(label_filename), 'the uploaded file')}") from None
        if mask.shape != image.array.shape:
            raise RequestError(422, f"label for {image_id}: {mask.shape[1]} x {mask.shape[0]} pixels, the image is {image.array.shape[1]} x {image.array.shape[0]}")
        target = Path(tempfile.gettempdir()) / f"connected-unets-{uuid.uuid4().hex[:12]}-seg.dcm"
        return str(save_dicom_seg([mask], target, image, self.algorithm)), True


def image_exists(datastore: Any, image_id: str) -> bool:
    """Whether the datastore knows ``image_id`` (a file of the folder, a series of the archive)."""
    if isinstance(datastore, DICOMWebDatastore):
        return image_id in datastore.list_images() or bool(datastore._client.search_for_series(search_filters={"SeriesInstanceUID": image_id}))
    return bool(datastore.get_image_uri(image_id))

