"""Results delivered to a real Orthanc (the PACS) from the daemon's outbox: in the source study, once,
through outages and SIGKILLs; and received images survive a SIGKILL in the middle of an association."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from pathlib import Path

import pydicom
import pytest

from tests.daemon_process import Daemon, events, wait_for
from tests.dicomnet.conftest import Orthanc, free_port, need, sop_uid, study_uid

CALLER = "MODALITY"
SR_CAD = "1.2.840.10008.5.1.4.1.1.88.50"  # Mammography CAD SR
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SC = "1.2.840.10008.5.1.4.1.1.7"


def send_with_pynetdicom(port: int, files: list[Path], acknowledged: list[str], stop_after: int | None = None,
                         on_ack: threading.Event | None = None) -> None:
    """A plain C-STORE SCU (pynetdicom, third-party): records each instance the SCP acknowledged."""
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless
    from pynetdicom import AE
    from pynetdicom.sop_class import DigitalMammographyXRayImageStorageForPresentation as MG

    ae = AE(ae_title=CALLER)
    for syntax in (ExplicitVRLittleEndian, JPEG2000Lossless):
        ae.add_requested_context(MG, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="TRTMASS")
    if not assoc.is_established:
        return
    try:
        for path in files:
            status = assoc.send_c_store(pydicom.dcmread(path))
            if status and status.Status == 0:
                acknowledged.append(sop_uid(path))
                if on_ack is not None and stop_after is not None and len(acknowledged) >= stop_after:
                    on_ack.set()
            if not assoc.is_established:
                return
    finally:
        if assoc.is_established:
            assoc.release()


def status(root: Path) -> dict[str, object]:
    return json.loads((root / "status.json").read_text())


def delivered_to(orthanc: Orthanc) -> list[dict[str, object]]:
    return orthanc.instances()


def test_results_reach_orthanc_in_the_source_study(tmp_path: Path, watch_model: Path, orthanc: Orthanc,
                                                   phantoms: list[Path]) -> None:
    port = free_port()
    daemon = Daemon(tmp_path / "root", watch_model).start("--listen", f"TRTMASS@{port}", "--allow-caller", CALLER,
                                                          "--to", orthanc.destination)
    try:
        wait_for(lambda: daemon.log.exists() and any(e["event"] == "listening" for e in events(daemon.log)), 60,
                 "the listener")
        acknowledged: list[str] = []
        send_with_pynetdicom(port, phantoms[:2], acknowledged)
        assert len(acknowledged) == 2
        wait_for(lambda: len(orthanc.get("/instances")) == 6, 120, "2 x (SR, GSPS, SC) in Orthanc")
        stored = delivered_to(orthanc)
        assert sorted(i["SOPClassUID"] for i in stored) == sorted([SR_CAD, GSPS, SC] * 2)
        studies = {study_uid(path) for path in phantoms[:2]}
        assert {i["StudyInstanceUID"] for i in stored} == studies, "results go into the source study"
        wait_for(lambda: status(daemon.root)["outbox"]["depth"] == 0, 30, "an empty outbox")  # type: ignore[index]
        assert not list((daemon.root / "outbox").rglob("*.dcm"))
    finally:
        assert daemon.terminate() == 0


def test_outbox_waits_for_orthanc_across_restarts_and_sends_once(tmp_path: Path, watch_model: Path,
                                                                  phantoms: list[Path]) -> None:
    need("Orthanc")
    orthanc = Orthanc(tmp_path / "orthanc")  # its ports are chosen, but it is not running yet
    root = tmp_path / "root"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.2)
    daemon = Daemon(root, watch_model, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    daemon.start("--to", orthanc.destination)
    try:
        (root / "incoming").mkdir(parents=True, exist_ok=True)
        for path in phantoms:
            (root / "incoming" / path.name).write_bytes(path.read_bytes())
        wait_for(lambda: (root / "status.json").exists() and status(root).get("outbox", {}).get("depth") == 12
                 and status(root)["outbox"]["last_error"], 120, "12 results waiting, with the error")  # type: ignore[union-attr,index]
        assert "ORTHANC" in str(status(root)["outbox"]["last_error"])  # type: ignore[index]
        messages = []
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(notify.recv(4096).decode())
        assert any(re.search(r"STATUS=outbox \d+ waiting; last delivery error: ORTHANC@127.0.0.1:\d+: could not ", m)
                   for m in messages), messages
        daemon.kill()  # down while results wait: they are on disk
        assert len(list((root / "outbox").rglob("*.dcm"))) == 12
        orthanc.start()
        daemon.start()
        wait_for(lambda: len(orthanc.get("/instances")) == 12, 120, "every result in Orthanc")
        wait_for(lambda: status(root)["outbox"]["depth"] == 0, 30, "an empty outbox")  # type: ignore[index]
        delivered = [e for e in events(daemon.log) if e["event"] == "delivered"]
        assert len(delivered) == 12 and len(orthanc.get("/instances")) == 12
        assert any(e["event"] == "delivery_failed" for e in events(daemon.log))
    finally:
        notify.close()
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
        orthanc.stop()


def test_sigkill_while_receiving_and_while_sending_loses_nothing(tmp_path: Path, watch_model: Path,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    from trt_mass.datasets.synth import write_phantoms

    need("Orthanc")
    files = write_phantoms(tmp_path_factory.mktemp("many"), 16, seed=9, scale=0.05, normal_fraction=0.0)
    orthanc = Orthanc(tmp_path / "orthanc")
    port = free_port()
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start("--listen", f"TRTMASS@{port}", "--allow-caller", CALLER,
                                             "--to", orthanc.destination)
    try:
        wait_for(lambda: daemon.log.exists() and any(e["event"] == "listening" for e in events(daemon.log)), 60,
                 "the listener")
        # 1. SIGKILL in the middle of an association: every acknowledged image gets its result.
        acknowledged: list[str] = []
        halfway = threading.Event()
        sender = threading.Thread(target=send_with_pynetdicom, args=(port, files, acknowledged, 6, halfway))
        sender.start()
        assert halfway.wait(60)
        daemon.kill()
        sender.join(60)
        assert 6 <= len(acknowledged) < len(files), "the kill came in the middle of the association"
        daemon.start()
        wait_for(lambda: daemon.log.exists() and sum(e["event"] == "listening" for e in events(daemon.log)) == 2, 60,
                 "the restarted listener")
        rest: list[str] = []
        send_with_pynetdicom(port, [f for f in files if sop_uid(f) not in acknowledged], rest)  # the sender resends
        results = root / "results"
        wait_for(lambda: {p.stem for p in results.glob("*.json")} == {sop_uid(f) for f in files}, 180,
                 "a result for every image")
        # 2. SIGKILL in the middle of delivering: Orthanc comes up and the kill follows the first deliveries.
        wait_for(lambda: status(root)["outbox"]["depth"] == 48, 60, "48 results waiting")  # type: ignore[index]
        orthanc.start()
        wait_for(lambda: any(e["event"] == "delivered" for e in events(daemon.log)), 120, "the first delivery")
        daemon.kill()
        waiting = len(list((root / "outbox").rglob("*.dcm")))
        assert 0 < waiting < 48, f"the kill came in the middle of delivering ({waiting} left)"
        daemon.start()
        wait_for(lambda: len(orthanc.get("/instances")) == 48, 180, "every result in Orthanc")
        wait_for(lambda: not list((root / "outbox").rglob("*.dcm")), 60, "an empty outbox")
        instances = orthanc.instances()
        assert len({i["SOPInstanceUID"] for i in instances}) == len(instances) == 48, "no duplicates in Orthanc"
        assert not list((root / "failed").iterdir())
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
        orthanc.stop()
