"""Start the app's MONAI Label server with no network at all and ask it for a segmentation.

Run by tests/monailabel/test_monailabel.py with the MONAI Label virtualenv's Python inside
``unshare -n`` (a network namespace holding only loopback), so any download at start or at
inference fails. Two servers, one after the other: on a folder of studies, and on Orthanc's
DICOMweb root (Orthanc started inside the namespace too, when given). Writes a JSON report and the
label files it got; the test compares those with the Segmenter.

    offline_probe.py --workdir DIR --report FILE --folder STUDIES IMAGE_ID BOXES_JSON [--dicomweb DICOM_FILE BOXES_JSON]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from monailabel_servers import orthanc_upload, start_monailabel, start_orthanc  # noqa: E402

MODEL = "connected_resunets"


def no_network() -> str:
    """'' when the outside cannot be reached (a name lookup fails), else what answered."""
    try:
        socket.getaddrinfo("pypi.org", 443)
    except OSError:
        return ""
    return "pypi.org resolves: this is not an isolated network namespace"


def ask(server, image: str, boxes: list, label_file: Path) -> dict:
    """One infer request (output=image); the label goes to ``label_file``."""
    answer = requests.post(f"{server.url}/infer/{MODEL}", params={"image": image, "output": "image"}, files={"params": (None, json.dumps({"boxes": boxes}))}, timeout=600)
    label_file.write_bytes(answer.content)
    info = requests.get(f"{server.url}/info/", timeout=60).json()
    return {"status": answer.status_code, "label": str(label_file), "label_type": answer.headers.get("content-type"), "ready_s": round(server.ready_after or 0, 1), "models": sorted(info["models"])}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--folder", nargs=3, metavar=("STUDIES", "IMAGE_ID", "BOXES_JSON"), required=True)
    parser.add_argument("--dicomweb", nargs=2, metavar=("DICOM_FILE", "BOXES_JSON"))
    args = parser.parse_args()
    report: dict = {"network": no_network() or "none (loopback only)"}
    if no_network():
        args.report.write_text(json.dumps(report))
        return 1
    studies, image, boxes = args.folder
    server = start_monailabel(studies, args.workdir / "folder-server")
    try:
        report["folder"] = ask(server, image, json.loads(boxes), args.workdir / "folder-label.png")
    finally:
        server.stop()
    if args.dicomweb:
        import pydicom

        dicom_file, boxes = args.dicomweb
        orthanc = start_orthanc(args.workdir / "orthanc")
        try:
            orthanc_upload(orthanc, Path(dicom_file))
            series = str(pydicom.dcmread(dicom_file, stop_before_pixels=True).SeriesInstanceUID)
            server = start_monailabel(f"{orthanc.url}/dicom-web", args.workdir / "dicomweb-server")
            try:
                report["dicomweb"] = ask(server, series, json.loads(boxes), args.workdir / "dicomweb-label.nii.gz")
            finally:
                server.stop()
        finally:
            orthanc.stop()
    args.report.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
