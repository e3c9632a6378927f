"""The MONAI Label server on a folder of real mammograms: /info/, masks equal to the Segmenter's,
per-ROI results, DICOM SEG, uploads, and bad requests answered with 4xx while the server goes on."""

from __future__ import annotations

import io
import time

import numpy as np
import pydicom
import pytest
import requests
from monailabel_client import MODEL, infer, reference
from PIL import Image

pytestmark = pytest.mark.slow

GOOD = "P60_L_DM_MLO"  # a 512 x 512 sample with one lesion box: the request that must still work


def test_info_lists_the_model_as_2d_mass_segmentation(folder_server):
    info = requests.get(f"{folder_server.url}/info/", timeout=30).json()
    model = info["models"][MODEL]
    assert model["type"] == "segmentation"
    assert model["dimension"] == 2
    assert model["labels"] == {"mass": 1}
    assert "boxes" in model["description"] and "boxes" in model["config"]
    assert info["labels"] == ["mass"]
    assert info["trainers"] == {}
    assert info["datastore"]["total"] == 7  # 5 usable studies + the two bad files, listed by extension


def test_datastore_lists_the_studies(folder_server, folder_cases):
    listed = requests.get(f"{folder_server.url}/datastore/", params={"output": "all"}, timeout=30).json()
    assert set(folder_cases) <= set(listed["objects"])


@pytest.mark.parametrize("image_id", ["P60_L_DM_MLO", "P72_R_DM_CC", "P304_R_DM_MLO", "P264_L_DM_CC", "CBIS_P_00173_LEFT_CC"])
def test_the_mask_equals_the_segmenter_on_the_same_image_and_boxes(folder_server, folder_cases, segmenter, image_id):
    case = folder_cases[image_id]
    expected = reference(case, segmenter)
    answer = infer(folder_server, image_id, {"boxes": case.boxes})
    assert answer.status == 200, answer.body[:500]
    assert answer.label_name.endswith(".nii.gz" if case.dicom else ".png")  # NIfTI keeps a DICOM's pixel spacing
    assert answer.label_dtype == "uint8"
    assert answer.label.shape == expected["shape"]  # the whole mammogram, 2-D
    assert set(np.unique(answer.label)) <= {0, 1}
    np.testing.assert_array_equal(answer.label, expected["union"])
    rois = answer.json["rois"]
    assert [r["box"] for r in rois] == expected["boxes"]
    assert [r["found"] for r in rois] == expected["found"]
    assert [r["confidence"] for r in rois] == expected["confidence"]
    assert [r["area_px"] for r in rois] == [int(m.sum()) for m in expected["masks"]]
    assert all(r["reason"] == "" for r in rois if r["found"]) and all(r["reason"] for r in rois if not r["found"])
    assert answer.json["label_names"] == {"mass": 1}
    assert answer.json["image_size"] == list(expected["shape"])
    # areas in mm where the file gives a pixel size (the DICOM made with PixelSpacing), none otherwise
    assert all((r["area_mm2"] is not None) == expected["spacing_known"] for r in rois)


def test_the_image_output_is_the_label_alone_and_json_the_results_alone(folder_server, folder_cases, segmenter):
    case = folder_cases[GOOD]
    label = requests.post(f"{folder_server.url}/infer/{MODEL}", params={"image": GOOD, "output": "image"}, files={"params": (None, f'{{"boxes": {case.boxes}}}')}, timeout=300)
    assert label.status_code == 200 and label.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(label.content))), reference(case, segmenter)["union"])
    results = infer(folder_server, GOOD, {"boxes": case.boxes}, output="json")
    assert results.status == 200 and results.json["rois"][0]["found"] is True


def test_boxes_typed_as_text_and_an_uploaded_file_give_the_same_mask(folder_server, folder_cases, segmenter):
    case = folder_cases["P72_R_DM_CC"]
    text = "; ".join(" ".join(str(v) for v in box) for box in case.boxes)  # as typed in a client's option field
    answer = infer(folder_server, None, {"boxes": text}, file=("mine.jpg", case.path.read_bytes()))
    assert answer.status == 200, answer.body[:500]
    np.testing.assert_array_equal(answer.label, reference(case, segmenter)["union"])
    assert answer.json["image"] == "mine.jpg"


def test_result_extension_nifti_for_a_jpeg(folder_server, folder_cases, segmenter):
    case = folder_cases[GOOD]
    answer = infer(folder_server, GOOD, {"boxes": case.boxes, "result_extension": ".nii.gz"})
    assert answer.status == 200 and answer.label_name.endswith(".nii.gz") and answer.label_dtype == "uint8"
    np.testing.assert_array_equal(answer.label, reference(case, segmenter)["union"])


@pytest.mark.parametrize("image_id", ["P264_L_DM_CC", "CBIS_P_00173_LEFT_CC"])
def test_dicom_seg_of_a_dicom_study_one_segment_per_roi(folder_server, folder_cases, segmenter, image_id):
    case = folder_cases[image_id]
    expected = reference(case, segmenter)
    answer = requests.post(
        f"{folder_server.url}/infer/{MODEL}", params={"image": image_id, "output": "dicom_seg"}, files={"params": (None, f'{{"boxes": {case.boxes}}}')}, timeout=300
    )
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"] == "application/dicom"
    seg = pydicom.dcmread(io.BytesIO(answer.content))
    source = pydicom.dcmread(case.path, stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [f"Mass {i + 1}" for i in range(len(case.boxes))]
    frames = seg.pixel_array.reshape(len(case.boxes), *expected["shape"])
    for frame, mask in zip(frames, expected["masks"]):
        np.testing.assert_array_equal(frame, mask)


BAD_REQUESTS = [
    # (what, image id, params or raw params text, upload, output, status, words the message must hold)
    ("unknown image id", "no_such_image", {"boxes": [[10, 10, 100, 100]]}, None, "all", 404, "unknown image id"),
    ("unknown model", GOOD, {"boxes": [[10, 10, 100, 100]]}, None, "all", 404, "no model"),
    ("params not JSON", GOOD, "{boxes: [[1, 2, 3, 4]]", None, "all", 422, "not valid JSON"),
    ("params a JSON list", GOOD, "[[175, 142, 302, 267]]", None, "all", 422, "JSON object"),
    ("no boxes", GOOD, {}, None, "all", 422, "boxes are required"),
    ("an empty box list", GOOD, {"boxes": []}, None, "all", 422, "boxes are required"),
    ("a box of 3 numbers", GOOD, {"boxes": [[175, 142, 302]]}, None, "all", 422, "4 numbers"),
    ("a box of strings", GOOD, {"boxes": [["a", "b", "c", "d"]]}, None, "all", 422, "4 numbers"),
    ("boxes not a list", GOOD, {"boxes": {"x0": 1}}, None, "all", 422, "list"),
    ("boxes text not numbers", GOOD, {"boxes": "left upper corner"}, None, "all", 422, "numbers"),
    ("a box outside the image", GOOD, {"boxes": [[600, 600, 700, 700]]}, None, "all", 422, "outside the image"),
    ("an empty box", GOOD, {"boxes": [[200, 200, 200, 260]]}, None, "all", 422, "is empty"),
    ("an inverted box", GOOD, {"boxes": [[300, 300, 200, 200]]}, None, "all", 422, "is empty"),
    ("too many boxes", GOOD, {"boxes": [[10, 10, 50, 50]] * 65}, None, "all", 422, "at most"),
    ("a text file named .png in the folder", "not_an_image", {"boxes": [[1, 1, 5, 5]]}, None, "all", 422, "not a readable image"),
    ("a 3-D volume in the folder", "volume_3d", {"boxes": [[1, 1, 20, 20]]}, None, "all", 422, "2-D"),
    ("a non-image upload", None, {"boxes": [[1, 1, 5, 5]]}, ("notes.png", b"hello, not an image"), "all", 422, "notes.png"),
    ("an empty upload", None, {"boxes": [[1, 1, 5, 5]]}, ("empty.dcm", b""), "all", 422, "empty"),
    ("DICOM SEG of a JPEG study", GOOD, {"boxes": [[175, 142, 302, 267]]}, None, "dicom_seg", 422, "DICOM SEG"),
    ("an unknown result format", GOOD, {"boxes": [[175, 142, 302, 267]], "result_extension": ".exe"}, None, "all", 422, "result_extension"),
]


@pytest.mark.parametrize("what,image,params,upload,output,status,words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_a_bad_request_is_a_4xx_with_a_readable_message_and_the_next_is_served(folder_server, folder_cases, segmenter, what, image, params, upload, output, status, words):
    model = "no_such_model" if what == "unknown model" else MODEL
    raw = params if isinstance(params, str) else None
    answer = infer(folder_server, image, None if raw else params, output=output, file=upload, model=model, raw_params=raw)
    assert answer.status == status, answer.body[:500]
    detail = answer.json["detail"]
    assert isinstance(detail, str) and words in detail, detail
    assert "\n" not in detail and "Traceback" not in detail and len(detail) < 400
    case = folder_cases[GOOD]
    after = infer(folder_server, GOOD, {"boxes": case.boxes})
    assert after.status == 200
    np.testing.assert_array_equal(after.label, reference(case, segmenter)["union"])


def test_the_server_leaves_no_temporary_files(folder_server):
    """Uploads and the label and SEG files it answered with (the app's connected-unets-* files in the
    server's TMPDIR) are removed, also after refused requests. (MONAI Label's logging config and
    torch's inductor folder, made at start, are the server's own.)"""
    tmp = folder_server.log.parent / "tmp"

    def ours() -> list[str]:
        return sorted(p.name for p in tmp.iterdir() if p.name.startswith("connected-unets-"))

    deadline = time.monotonic() + 10
    while ours() and time.monotonic() < deadline:  # background tasks run after the answer
        time.sleep(0.2)
    assert ours() == []
    assert folder_server.alive()
