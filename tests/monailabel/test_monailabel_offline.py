"""The server starts and segments with no network: inside ``unshare -n`` (loopback only), from a
folder and from Orthanc's DICOMweb root, nothing downloaded (a download would fail the start or
the request), and the masks equal the Segmenter's."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from monailabel_client import decode_label, reference
from monailabel_servers import VENV, orthanc_missing

pytestmark = pytest.mark.slow

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
