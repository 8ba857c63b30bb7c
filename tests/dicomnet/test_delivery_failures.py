"""Delivery against peers that misbehave: one that takes only some results, a DICOMweb server that never
answers, a file removed from the outbox mid-send.  The peers are real servers on loopback (pynetdicom's
SCP, a raw socket); nothing of ours is replaced."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.daemon_process import wait_for
from tests.dicomnet.conftest import free_port
from trt_mass.daemon.events import EventLog
from trt_mass.dicomnet import outbox as outbox_module
from trt_mass.dicomnet.outbox import Outbox
from trt_mass.dicomnet.peers import Destination
from trt_mass.dicomnet.send import SendSettings

MG = "1.2.840.10008.5.1.4.1.1.1.2"


class PickyPeer:
    """A pynetdicom C-STORE SCP that stores only instances whose PatientID is not 'REFUSE' (0xC000 for
    those), and accepts only the SOP classes it is given."""

    def __init__(self, sop_classes: tuple[str, ...] = (MG,), seconds_per_store: float = 0.0) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        self.seconds_per_store = seconds_per_store
        self.port = free_port()
        self.stored: list[str] = []
        ae = AE(ae_title="PICKY")
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax in sop_classes:
                ae.add_supported_context(context.abstract_syntax)
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event: object) -> int:
        time.sleep(self.seconds_per_store)
        dataset = event.dataset  # type: ignore[attr-defined]
        if dataset.PatientID == "REFUSE":
            return 0xC000
        self.stored.append(str(dataset.SOPInstanceUID))
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def picky() -> Iterator[PickyPeer]:
    peer = PickyPeer()
    yield peer
    peer.stop()


def _copies(source: Path, folder: Path, patient_ids: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, patient_id in enumerate(patient_ids):
        dataset = pydicom.dcmread(source)
        dataset.PatientID = patient_id
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"result{number:02d}.dcm"
        dataset.save_as(path)
        time.sleep(0.01)  # distinct mtimes: the outbox sends oldest first
        paths.append(path)
    return paths


def test_refused_results_do_not_hold_back_those_the_peer_takes(picky: PickyPeer, phantoms: list[Path],
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a full batch of refused files at the head of the queue, nothing behind them was ever sent."""
    monkeypatch.setattr(outbox_module, "BATCH", 3)
    results = _copies(phantoms[0], tmp_path / "results", ["REFUSE"] * 4 + ["A", "B"])
    log = io.StringIO()
    outbox = Outbox(tmp_path / "outbox", [Destination.parse(f"PICKY@127.0.0.1:{picky.port}")],
                    SendSettings(timeout_s=10), EventLog(stream=log), retry_initial_s=0.05, retry_max_s=0.2)
    outbox.put(results)
    outbox.start()
    try:
        wait_for(lambda: len(picky.stored) == 2, 60, "the accepted results")
    finally:
        outbox.stop()
    assert set(picky.stored) == {str(pydicom.dcmread(p).SOPInstanceUID) for p in results[4:]}
    status = outbox.status()
    assert status["depth"] == 4 and "0xC000" in str(status["last_error"]), "refused files stay, visibly"


def test_a_file_removed_while_it_is_sent_does_not_stop_delivery(picky: PickyPeer, phantoms: list[Path],
                                                                tmp_path: Path) -> None:
    results = _copies(phantoms[0], tmp_path / "results", ["A", "B"])
    log = io.StringIO()
    destination = Destination.parse(f"PICKY@127.0.0.1:{picky.port}")
    outbox = Outbox(tmp_path / "outbox", [destination], SendSettings(timeout_s=10), EventLog(stream=log))
    outbox.put(results[:1])
    queued = outbox.folder(destination) / results[0].name
    outbox.pending = lambda d: [queued]  # type: ignore[method-assign]  # listed, then removed by an operator
    queued.unlink()
    outbox.deliver_once(destination)
    assert "outbox_file_removed" in log.getvalue() and outbox.status()["depth"] == 0
    del outbox.pending  # type: ignore[method-assign]
    outbox.put(results[1:])
    assert outbox.deliver_once(destination) and len(picky.stored) == 1


def test_a_peer_that_takes_none_of_the_classes_refuses_the_files_it_is_not_down(phantoms: list[Path]) -> None:
    peer = PickyPeer(sop_classes=("1.2.840.10008.5.1.4.1.1.2",))  # CT only
    try:
        run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "send", str(phantoms[0]), "--to",
                              f"PICKY@127.0.0.1:{peer.port}", "--timeout", "10"], capture_output=True, text=True,
                             timeout=120)
    finally:
        peer.stop()
    assert run.returncode == 3, run.stdout + run.stderr
    assert "accepts none of the SOP classes" in run.stdout and "down" not in run.stdout + run.stderr


def test_send_takes_the_dicom_files_of_a_results_folder_and_refuses_an_empty_one(
        picky: PickyPeer, phantoms: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "results"
    _copies(phantoms[0], folder, ["A"])
    (folder / "result00.json").write_text("{}")
    (folder / "result00.overlay.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    cli = [sys.executable, "-m", "trt_mass.cli", "send"]
    run = subprocess.run([*cli, str(folder), "--to", f"PICKY@127.0.0.1:{picky.port}"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(picky.stored) == 1
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([*cli, str(tmp_path / "empty"), "--to", f"PICKY@127.0.0.1:{picky.port}"],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "no DICOM files in" in empty.stderr and "Traceback" not in empty.stderr


def test_a_dicomweb_server_that_never_answers_times_out(phantoms: list[Path]) -> None:
    """dicomweb-client sends without a timeout: a server that accepts and stays silent hung `send` (and the
    daemon's outbox, for every destination) for good."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepting.start()
    port = listener.getsockname()[1]
    started = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "send", str(phantoms[0]), "--to",
                              f"http://127.0.0.1:{port}/dicom-web", "--timeout", "2"], capture_output=True, text=True,
                             timeout=120)
    finally:
        for connection in held:
            connection.close()
        listener.close()
    assert run.returncode == 7, run.stdout + run.stderr
    assert "no answer within 2 s" in run.stderr and time.monotonic() - started < 60


def test_files_left_in_the_folder_of_a_changed_destination_are_reported(picky: PickyPeer, phantoms: list[Path],
                                                                        tmp_path: Path) -> None:
    results = _copies(phantoms[0], tmp_path / "results", ["A"])
    log = io.StringIO()
    old = Outbox(tmp_path / "outbox", [Destination.parse("PICKY@127.0.0.1:9")], SendSettings(), EventLog(stream=log))
    old.put(results)  # queued for a port the PACS no longer listens on
    moved = Outbox(tmp_path / "outbox", [Destination.parse(f"PICKY@127.0.0.1:{picky.port}")], SendSettings(),
                   EventLog(stream=log)).start()
    moved.stop()
    assert moved.status()["orphaned"] == {"PICKY_127.0.0.1_9": 1} and "outbox_orphaned" in log.getvalue()


def test_shutdown_ends_a_batch_after_the_file_in_flight(phantoms: list[Path], tmp_path: Path) -> None:
    """Files were let go only when the whole batch was sent: a SIGTERM during a slow batch waited 60 s, gave up,
    and every file the PACS had accepted was sent again after the restart."""
    peer = PickyPeer(seconds_per_store=1.0)
    results = _copies(phantoms[0], tmp_path / "results", ["A", "B", "C", "D", "E", "F"])
    outbox = Outbox(tmp_path / "outbox", [Destination.parse(f"PICKY@127.0.0.1:{peer.port}")], SendSettings(),
                    EventLog(stream=io.StringIO()))
    try:
        outbox.put(results)
        outbox.start()
        wait_for(lambda: len(peer.stored) >= 1, 30, "the first file stored")
        started = time.monotonic()
        outbox.stop()
        assert time.monotonic() - started < 5
    finally:
        peer.stop()
    assert 1 <= len(peer.stored) < 6
    assert outbox.status()["depth"] == 6 - len(peer.stored)
    assert len(outbox.pending(outbox.destinations[0])) == 6 - len(peer.stored), "what was stored has left"
