"""Real servers for the MONAI Label tests: the app's MONAI Label server and Orthanc with DICOMweb.

Plain Python and ``requests`` only (no pytest, nothing of the project), so the offline probe can
use it inside a network namespace with the MONAI Label virtualenv's interpreter. Each server runs in
its own process group, logs to a file, is waited for until it answers, and :meth:`Server.stop`
ends the whole group; a server that exits before it is ready raises :class:`ServerError` with the
end of its log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO / "scripts" / "monailabel_serve.sh"
VENV = Path(os.environ.get("MONAILABEL_VENV") or REPO / ".venv-monailabel")
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
LOG_TAIL = 40


class ServerError(RuntimeError):
    """A server that did not start or stopped answering; the message ends with its log's tail."""


def venv_missing() -> str:
    """Why the MONAI Label virtualenv cannot be used ('' when it can)."""
    if not (VENV / "bin" / "python").is_file() or not (VENV / "bin" / "monailabel").exists():
        return f"no MONAI Label virtualenv at {VENV} (create it with scripts/monailabel_env.sh; .ci/run does)"
    return ""


def orthanc_missing() -> str:
    """Why Orthanc with its DICOMweb plugin cannot be started ('' when it can)."""
    if not Path(ORTHANC).is_file():
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does)"
    if not DICOMWEB_PLUGIN.is_file():
        return f"Orthanc's DICOMweb plugin {DICOMWEB_PLUGIN} is missing (apt-get install orthanc-dicomweb)"
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """A started server process (own process group) and the URL it answers on."""

    def __init__(self, name: str, command: list[str], url: str, ready_path: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name, self.url, self.ready_path, self.log = name, url, ready_path, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = log.open("wb")
        self.proc = subprocess.Popen(
            command, stdout=self._log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )  # fmt: skip
        self.started = time.monotonic()
        self.ready_after: float | None = None

    def wait_ready(self, timeout: float) -> float:
        """Seconds until GET ``ready_path`` answered 200; ServerError when it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with status {self.proc.returncode} before it was ready\n--- {self.log} ---\n{log_tail(self.log)}")
            try:
                if requests.get(self.url + self.ready_path, timeout=5).status_code == 200:
                    self.ready_after = time.monotonic() - self.started
                    return self.ready_after
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"{self.name} not ready after {timeout:.0f} s\n--- {self.log} ---\n{log_tail(self.log)}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 15) -> None:
        """End the server's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # children left in the group (none expected)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log_handle.close()


def start_monailabel(studies: str | Path, workdir: Path, port: int | None = None, extra: list[str] | None = None, timeout: float = 300) -> Server:
    """``scripts/monailabel_serve.sh --studies STUDIES`` on 127.0.0.1 and a free port, ready.

    HOME and TMPDIR of the server lie in ``workdir`` (MONAI Label's caches, sessions and DICOMweb
    downloads, the label files it answers with), so nothing is left outside it."""
    port = port or free_port()
    home, tmp = workdir / "home", workdir / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    command = ["bash", str(SERVE_SCRIPT), "--studies", str(studies), "--port", str(port), "--device", "cpu", *(["--", *extra] if extra else [])]
    server = Server("MONAI Label", command, f"http://127.0.0.1:{port}", "/info/", workdir / "monailabel.log", env={"HOME": str(home), "TMPDIR": str(tmp)}, cwd=workdir)
    server.wait_ready(timeout)
    return server


def start_orthanc(workdir: Path, timeout: float = 60) -> Server:
    """Orthanc with its DICOMweb plugin on a free loopback port, storage in ``workdir``, no DICOM port."""
    port = free_port()
    storage = workdir / "orthanc-db"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "connected-unets-tests", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }  # fmt: skip
    config_file = workdir / "orthanc.json"
    config_file.write_text(json.dumps(config, indent=1))
    server = Server("Orthanc", [ORTHANC, str(config_file)], f"http://127.0.0.1:{port}", "/system", workdir / "orthanc.log", cwd=workdir)
    server.wait_ready(timeout)
    return server


def orthanc_upload(orthanc: Server, path: Path) -> dict:
    """Store one DICOM file in Orthanc (its REST API); Orthanc's answer (IDs of the instance and parents)."""
    answer = requests.post(f"{orthanc.url}/instances", data=path.read_bytes(), timeout=120)
    answer.raise_for_status()
    return answer.json()
