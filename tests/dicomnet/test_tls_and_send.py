"""TLS on loopback with certificates made by openssl, and `trtmass send` to DCMTK's storescp and to
Orthanc's STOW-RS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import Daemon, events, wait_for
from tests.dicomnet.conftest import Orthanc, free_port, need, sop_uid

CALLER = "SECURE_MG"


def trtmass_send(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_mass.cli", "send", *args], capture_output=True, text=True,
                          timeout=120)


class StoreSCP:
    """DCMTK's storescp on a free loopback port, writing what it receives to a folder."""

    def __init__(self, folder: Path, *tls: str) -> None:
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True)
        self.process = subprocess.Popen([need("storescp"), "-aet", "STORESCP", "+xa", "-od", str(folder), *tls,
                                         str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._listening, 30, "storescp")

    def _listening(self) -> bool:
        import socket

        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreSCP]:
    peer = StoreSCP(tmp_path / "received")
    yield peer
    peer.stop()


def test_send_to_storescp_and_the_failures_it_names(tmp_path: Path, storescp: StoreSCP, phantoms: list[Path]) -> None:
    sent = trtmass_send(*map(str, phantoms[:2]), "--to", f"STORESCP@127.0.0.1:{storescp.port}", "--json")
    assert sent.returncode == 0, sent.stderr
    outcomes = [json.loads(line) for line in sent.stdout.splitlines()]
    assert [o["delivered"] for o in outcomes] == [True, True] and {o["status"] for o in outcomes} == {"0x0000"}
    assert len(list(storescp.folder.iterdir())) == 2
    down = trtmass_send(str(phantoms[0]), "--to", f"STORESCP@127.0.0.1:{free_port()}", "--timeout", "5")
    assert down.returncode == 7 and "STORESCP@127.0.0.1" in down.stderr
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    refused = trtmass_send(str(junk), "--to", f"STORESCP@127.0.0.1:{storescp.port}")
    assert refused.returncode == 3 and "notes.txt" in refused.stderr and "not a DICOM file" in refused.stderr


def test_send_by_stow_rs_to_orthanc(orthanc: Orthanc, phantoms: list[Path]) -> None:
    if "Plugins" not in orthanc.config_path.read_text():
        pytest.skip("Orthanc's DICOMweb plugin is not installed (Debian: orthanc-dicomweb)")
    sent = trtmass_send(str(phantoms[0]), "--to", f"{orthanc.url}/dicom-web")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert [i["SOPInstanceUID"] for i in orthanc.instances()] == [sop_uid(phantoms[0])]


def test_tls_listener_admits_only_certificates_of_its_ca(tmp_path: Path, watch_model: Path,
                                                         tls_files: dict[str, Path], phantoms: list[Path]) -> None:
    port = free_port()
    daemon = Daemon(tmp_path / "root", watch_model).start(
        "--listen", f"TRTMASS@{port}", "--allow-caller", CALLER, "--dicom-out", "none",
        "--tls-cert", str(tls_files["server.crt"]), "--tls-key", str(tls_files["server.key"]),
        "--tls-ca", str(tls_files["ca.crt"]))
    try:
        wait_for(lambda: daemon.log.exists() and any(e["event"] == "listening" and e["tls"]
                                                     for e in events(daemon.log)), 60, "the TLS listener")

        def echo(*tls: str) -> int:
            return subprocess.run([need("echoscu"), "-aet", CALLER, "-aec", "TRTMASS", *tls, "127.0.0.1", str(port)],
                                  capture_output=True, timeout=60).returncode

        trusted = ("+tls", str(tls_files["client.key"]), str(tls_files["client.crt"]), "+cf", str(tls_files["ca.crt"]))
        assert echo(*trusted) == 0
        assert echo() != 0, "plain TCP is refused"
        assert echo("+tls", str(tls_files["rogue.key"]), str(tls_files["rogue.crt"]), "+cf",
                    str(tls_files["ca.crt"])) != 0, "a certificate of another CA is refused"
        stored = subprocess.run([need("storescu"), "-aet", CALLER, "-aec", "TRTMASS", *trusted, "127.0.0.1", str(port),
                                 str(phantoms[0])], capture_output=True, text=True, timeout=60)
        assert stored.returncode == 0, stored.stderr
        wait_for(lambda: (daemon.root / "results" / f"{sop_uid(phantoms[0])}.json").exists(), 60, "the result")
    finally:
        assert daemon.terminate() == 0


def test_send_over_tls_needs_our_certificate(tmp_path: Path, tls_files: dict[str, Path],
                                              phantoms: list[Path]) -> None:
    peer = StoreSCP(tmp_path / "secure", "+tls", str(tls_files["server.key"]), str(tls_files["server.crt"]),
                    "+cf", str(tls_files["ca.crt"]), "--require-peer-cert")
    try:
        target = f"tls:STORESCP@127.0.0.1:{peer.port}"
        ours = ("--tls-cert", str(tls_files["client.crt"]), "--tls-key", str(tls_files["client.key"]),
                "--tls-ca", str(tls_files["ca.crt"]))
        sent = trtmass_send(str(phantoms[0]), "--to", target, *ours)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        anonymous = trtmass_send(str(phantoms[0]), "--to", target, "--tls-ca", str(tls_files["ca.crt"]),
                                 "--timeout", "5")
        assert anonymous.returncode == 7, anonymous.stdout + anonymous.stderr
        untrusted_server = trtmass_send(str(phantoms[0]), "--to", target, "--tls-cert", str(tls_files["client.crt"]),
                                        "--tls-key", str(tls_files["client.key"]), "--timeout", "5")
        assert untrusted_server.returncode == 7, "the peer's certificate must chain to a CA we trust"
        assert len(list(peer.folder.iterdir())) == 1
    finally:
        peer.stop()
