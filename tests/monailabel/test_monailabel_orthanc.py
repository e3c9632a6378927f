"""The MONAI Label server on a real DICOMweb archive (Orthanc with its DICOMweb plugin) holding the
real CBIS-DDSM DICOMs and DICOMs made from shipped samples: masks equal to the Segmenter's on the
same files, and results stored back in Orthanc as DICOM SEG that Orthanc serves again."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import requests
from monailabel_client import MODEL, infer, reference

pytestmark = pytest.mark.slow


def made_case(cases, sample_name: str):
    return next(c for c in cases.values() if c.path.stem == sample_name)


def real_case(cases):
    return next(c for c in cases.values() if c.path.parent.name.startswith("sfm-") and c.boxes)


def seg_instances(orthanc, image_case) -> list[pydicom.Dataset]:
    """The DICOM SEG instances Orthanc holds for the case's image, read back from Orthanc (REST)."""
    source = pydicom.dcmread(image_case.path, stop_before_pixels=True)
    found = requests.post(f"{orthanc.url}/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": source.StudyInstanceUID, "Modality": "SEG"}}, timeout=60).json()
    segs = [pydicom.dcmread(io.BytesIO(requests.get(f"{orthanc.url}/instances/{i}/file", timeout=60).content)) for i in found]
    return [s for s in segs if s.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID]


def check_seg(seg: pydicom.Dataset, image_case, masks: list[np.ndarray]) -> None:
    source = pydicom.dcmread(image_case.path, stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert len(seg.SegmentSequence) == len(masks)
    frames = seg.pixel_array.reshape(len(masks), *masks[0].shape)
    for frame, mask in zip(frames, masks):
        np.testing.assert_array_equal(frame, mask)


def test_the_archive_lists_its_mammogram_series_as_studies(dicomweb_server, archive_cases):
    info = requests.get(f"{dicomweb_server.url}/info/", timeout=60).json()
    assert info["models"][MODEL]["dimension"] == 2
    picked = requests.post(f"{dicomweb_server.url}/activelearning/random", json={}, timeout=60).json()  # "next sample", as clients ask
    assert picked["id"] in archive_cases


@pytest.mark.parametrize("which", ["made from P72_R_DM_CC", "real CBIS-DDSM"])
def test_the_mask_through_orthanc_equals_the_segmenter_on_the_file(dicomweb_server, archive_cases, segmenter, which):
    case = made_case(archive_cases, "P72_R_DM_CC") if which.startswith("made") else real_case(archive_cases)
    expected = reference(case, segmenter)
    answer = infer(dicomweb_server, case.image_id, {"boxes": case.boxes})
    assert answer.status == 200, answer.body[:500]
    assert answer.label_dtype == "uint8" and answer.label.shape == expected["shape"]
    np.testing.assert_array_equal(answer.label, expected["union"])
    assert [r["found"] for r in answer.json["rois"]] == expected["found"]
    assert [r["confidence"] for r in answer.json["rois"]] == expected["confidence"]


def test_a_dicom_seg_saved_as_final_label_is_stored_in_orthanc_and_readable_there(dicomweb_server, orthanc, archive_cases, segmenter):
    case = made_case(archive_cases, "P72_R_DM_CC")
    expected = reference(case, segmenter)
    answer = requests.post(f"{dicomweb_server.url}/infer/{MODEL}", params={"image": case.image_id, "output": "dicom_seg"}, files={"params": (None, f'{{"boxes": {case.boxes}}}')}, timeout=600)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/dicom", answer.text[:500]
    check_seg(pydicom.dcmread(io.BytesIO(answer.content)), case, expected["masks"])
    saved = requests.put(f"{dicomweb_server.url}/datastore/label", params={"image": case.image_id, "tag": "final"}, files={"label": ("seg.dcm", answer.content)}, timeout=600)
    assert saved.status_code == 200, saved.text[:500]
    (stored,) = seg_instances(orthanc, case)
    check_seg(stored, case, expected["masks"])
    assert [s.SegmentLabel for s in stored.SegmentSequence] == ["Mass 1", "Mass 2"]


def test_infer_with_save_label_final_stores_the_per_roi_seg_in_orthanc(dicomweb_server, orthanc, archive_cases, segmenter):
    case = real_case(archive_cases)
    expected = reference(case, segmenter)
    answer = infer(dicomweb_server, case.image_id, {"boxes": case.boxes, "save_label": True, "label_tag": "final"}, output="json")
    assert answer.status == 200, answer.body[:500]
    assert answer.json["saved_label"]["tag"] == "final"
    (stored,) = seg_instances(orthanc, case)
    check_seg(stored, case, expected["masks"])


def test_a_label_image_saved_as_final_label_becomes_a_one_segment_seg_in_orthanc(dicomweb_server, orthanc, archive_cases, segmenter):
    case = made_case(archive_cases, "P60_L_DM_MLO")
    expected = reference(case, segmenter)
    label = requests.post(f"{dicomweb_server.url}/infer/{MODEL}", params={"image": case.image_id, "output": "image"}, files={"params": (None, f'{{"boxes": {case.boxes}}}')}, timeout=600)
    assert label.status_code == 200, label.text[:500]
    saved = requests.put(f"{dicomweb_server.url}/datastore/label", params={"image": case.image_id, "tag": "final"}, files={"label": ("label.nii.gz", label.content)}, timeout=600)
    assert saved.status_code == 200, saved.text[:500]
    (stored,) = seg_instances(orthanc, case)
    check_seg(stored, case, [expected["union"]])


def test_bad_requests_to_the_archive_are_4xx_and_the_next_is_served(dicomweb_server, archive_cases, segmenter):
    case = made_case(archive_cases, "P60_L_DM_MLO")
    unknown = infer(dicomweb_server, "1.2.3.4.5.6.7.8.9", {"boxes": [[10, 10, 100, 100]]})
    assert unknown.status == 404 and "unknown image id" in unknown.json["detail"]
    no_boxes = infer(dicomweb_server, case.image_id, {})
    assert no_boxes.status == 422 and "boxes are required" in no_boxes.json["detail"]
    other = made_case(archive_cases, "P72_R_DM_CC")
    seg = requests.post(f"{dicomweb_server.url}/infer/{MODEL}", params={"image": other.image_id, "output": "dicom_seg"}, files={"params": (None, f'{{"boxes": {other.boxes}}}')}, timeout=600)
    wrong = requests.put(f"{dicomweb_server.url}/datastore/label", params={"image": case.image_id, "tag": "final"}, files={"label": ("seg.dcm", seg.content)}, timeout=600)
    assert wrong.status_code == 422 and "another series" in wrong.json()["detail"], wrong.text[:300]
    after = infer(dicomweb_server, case.image_id, {"boxes": case.boxes})
    assert after.status == 200
    np.testing.assert_array_equal(after.label, reference(case, segmenter)["union"])
