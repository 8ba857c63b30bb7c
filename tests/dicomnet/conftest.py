"""Real DICOM peers on loopback: DCMTK's tools, an Orthanc server, TLS material made by openssl.

Each fixture skips with the reason when its program is missing (`make dicom-tools` installs dcmtk and
orthanc as root with apt-get).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.helpers import free_port

ORTHANC_DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (Debian: `make dicom-tools` as root installs dcmtk and orthanc)")
    return path


class Orthanc:
    """An Orthanc server with a generated configuration on free loopback ports; stop() / start() keep its data."""

    def __init__(self, folder: Path, ae_title: str = "ORTHANC") -> None:
        self.folder = folder
        self.ae_title = ae_title
        self.http_port, self.dicom_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        config: dict[str, Any] = {
            "Name": "trtmass-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": ae_title,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
            "DicomAlwaysAllowStore": True, "OverwriteInstances": False, "HttpBindAddress": "127.0.0.1",
            "StableAge": 1, "ConcurrentJobs": 1,
        }
        if ORTHANC_DICOMWEB_PLUGIN.exists():
            config["Plugins"] = [str(ORTHANC_DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        self.config_path = folder / "orthanc.json"
        folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def destination(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def start(self) -> Orthanc:
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115  kept open for the server's life
        self.process = subprocess.Popen([need("Orthanc"), str(self.config_path)], stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None:
                    raise RuntimeError(f"Orthanc exited; see {self.folder / 'orthanc.log'}") from None
                time.sleep(0.2)
        raise RuntimeError("Orthanc did not answer within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def instances(self) -> list[dict[str, Any]]:
        """Every stored instance's main tags (SOPClassUID, SOPInstanceUID, StudyInstanceUID)."""
        found = []
        for identifier in self.get("/instances"):
            tags = self.get(f"/instances/{identifier}/simplified-tags")
            found.append({key: tags.get(key) for key in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")})
        return found


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc")
    need("Orthanc")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four small MG phantoms (explicit VR little endian) with distinct SOP Instance UIDs."""
    import pydicom

    from trt_mass.datasets.synth import write_phantoms

    paths = write_phantoms(tmp_path_factory.mktemp("phantoms"), 4, seed=3, scale=0.05, normal_fraction=0.0)
    for path in paths:  # synth compresses some with JPEG 2000; DCMTK's storescu cannot convert those
        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
            ds.save_as(path, enforce_file_format=True)
    return paths


def sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def study_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server and a client certificate it signed, and a rogue self-signed client (PEM files)."""
    openssl = need("openssl")
    folder = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=trtmass test CA")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=trtmass {name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2",
        "-subj", "/CN=rogue")
    return {name: folder / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key",
                                              "rogue.crt", "rogue.key")}
