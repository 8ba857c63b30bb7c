"""The storage SCP inside `trtmass watch`, driven by DCMTK's storescu and echoscu on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless

from tests.daemon_process import Daemon, events, wait_for
from tests.dicom_factory import encode, mg_dataset, stored_ramp, write
from tests.dicomnet.conftest import free_port, need, sop_uid

CALLER = "STORESCU"
PROPOSE = {"explicit": (), "j2k": ("-xv",), "jpegls": ("-xt",), "rle": ("-xr",)}


def node(tmp_path: Path, model: Path, *extra: str) -> tuple[Daemon, int]:
    port = free_port()
    daemon = Daemon(tmp_path / "root", model).start("--listen", f"TRTMASS@{port}", "--listen-address", "127.0.0.1",
                                                     "--allow-caller", CALLER, "--dicom-out", "none", *extra)
    wait_for(lambda: any(e["event"] == "listening" for e in events(daemon.log)) if daemon.log.exists() else False,
             60, "the listener")
    return daemon, port


def storescu(port: int, *files: Path, calling: str = CALLER,
             extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("storescu"), "-aet", calling, "-aec", "TRTMASS", *extra, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def syntaxes(tmp_path_factory: pytest.TempPathFactory, phantoms: list[Path]) -> dict[str, Path]:
    """The phantoms, one per transfer syntax: explicit VR LE, JPEG 2000, JPEG-LS and RLE lossless."""
    folder = tmp_path_factory.mktemp("syntaxes")
    written = {}
    for name, syntax, phantom in (("explicit", ExplicitVRLittleEndian, phantoms[0]),
                                  ("j2k", JPEG2000Lossless, phantoms[1]), ("jpegls", JPEGLSLossless, phantoms[2]),
                                  ("rle", RLELossless, phantoms[3])):
        dataset = pydicom.dcmread(phantom)
        if dataset.file_meta.TransferSyntaxUID.is_compressed:
            dataset.decompress(generate_instance_uid=False)
        written[name] = write(encode(dataset, syntax), folder / f"{name}.dcm")
    return written


def test_storescu_in_four_transfer_syntaxes_gets_one_result_each(tmp_path: Path, watch_model: Path,
                                                                  syntaxes: dict[str, Path]) -> None:
    daemon, port = node(tmp_path, watch_model)
    try:
        for name, path in syntaxes.items():  # storescu proposes a compressed syntax only when told to
            sent = storescu(port, path, extra=PROPOSE[name])
            assert sent.returncode == 0, sent.stdout + sent.stderr
        results = daemon.root / "results"
        expected = {sop_uid(path) for path in syntaxes.values()}
        wait_for(lambda: {p.stem for p in results.glob("*.json")} == expected, 120, "a result per instance")
        again = storescu(port, syntaxes["j2k"], extra=PROPOSE["j2k"])  # the same instance resent: still one result
        assert again.returncode == 0
        wait_for(lambda: any(e["event"] == "duplicate" for e in events(daemon.log)), 60, "the resend")
        assert len(list(results.glob("*.json"))) == 4 and len(list((daemon.root / "done").iterdir())) == 5
        for path in syntaxes.values():
            record = json.loads((results / f"{sop_uid(path)}.json").read_text())
            assert record["image"]["sop_instance_uid"] == sop_uid(path)
            kept = pydicom.dcmread(daemon.root / "done" / f"{sop_uid(path)}.dcm")  # stored as it was sent
            assert kept.file_meta.TransferSyntaxUID == pydicom.dcmread(path).file_meta.TransferSyntaxUID
        assert not list((daemon.root / "failed").iterdir())
        assert not [p for p in (daemon.root / "receiving").iterdir()], "no temporary file left behind"
        received = [e for e in events(daemon.log) if e["event"] == "received"]
        assert len(received) == 5 and {e["calling_ae"] for e in received} == {CALLER}
        assert all("Patient" not in json.dumps(e) for e in events(daemon.log))
    finally:
        assert daemon.terminate() == 0


def test_echo_unknown_callers_ct_and_for_processing_are_refused(tmp_path: Path, watch_model: Path,
                                                                 phantoms: list[Path]) -> None:
    ct = write(mg_dataset(stored_ramp(), Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2"), tmp_path / "ct.dcm")
    processing = write(mg_dataset(stored_ramp(), SOPClassUID="1.2.840.10008.5.1.4.1.1.1.2.1",
                                  PresentationIntentType="FOR PROCESSING"), tmp_path / "raw.dcm")
    daemon, port = node(tmp_path, watch_model)
    try:
        echo = subprocess.run([need("echoscu"), "-aet", CALLER, "-aec", "TRTMASS", "127.0.0.1", str(port)],
                              capture_output=True, text=True, timeout=60)
        assert echo.returncode == 0, echo.stderr
        stranger = storescu(port, phantoms[0], calling="STRANGER")
        assert stranger.returncode != 0 and "Calling AE Title Not Recognized" in stranger.stderr + stranger.stdout
        wrong_called = subprocess.run([need("echoscu"), "-aet", CALLER, "-aec", "NOTUS", "127.0.0.1", str(port)],
                                      capture_output=True, text=True, timeout=60)
        assert wrong_called.returncode != 0
        refused_ct = storescu(port, ct)  # no presentation context for CT: refused at association time
        assert refused_ct.returncode != 0 and "No presentation context" in refused_ct.stderr
        refused_raw = storescu(port, processing)  # accepted context, refused instance with its status
        assert refused_raw.returncode != 0
        log = events(daemon.log)
        assert any(e["event"] == "echo" and e["calling_ae"] == CALLER for e in log)
        assert any(e["event"] == "association_refused" and e["calling_ae"] == "STRANGER" for e in log)
        rejected = [e for e in log if e["event"] == "association_rejected"]
        assert [(e["called_ae"], e["reason"]) for e in rejected] == [("NOTUS", "called AE title is not 'TRTMASS'")]
        refusal = [e for e in log if e["event"] == "store_refused"]
        assert len(refusal) == 1 and refusal[0]["status"] == "0x0122" and "FOR PROCESSING" in refusal[0]["reason"]
        assert not [e for e in log if e["event"] == "received"]
        for folder in ("incoming", "processing", "done", "failed", "results"):
            assert not list((daemon.root / folder).iterdir()), f"{folder}/ must stay empty"
    finally:
        assert daemon.terminate() == 0


def test_association_limit_and_idle_timeout(tmp_path: Path, watch_model: Path) -> None:
    from pynetdicom import AE

    port = free_port()
    daemon = Daemon(tmp_path / "root", watch_model, env={"TRTMASS_WATCH_MAX_ASSOCIATIONS": "1",
                                                         "TRTMASS_WATCH_NETWORK_TIMEOUT_S": "1"})
    daemon.start("--listen", f"TRTMASS@{port}", "--listen-address", "127.0.0.1", "--allow-caller", CALLER)
    try:
        wait_for(lambda: daemon.log.exists() and any(e["event"] == "listening" for e in events(daemon.log)), 60,
                 "the listener")
        ae = AE(ae_title=CALLER)
        ae.add_requested_context("1.2.840.10008.1.1")
        first = ae.associate("127.0.0.1", port, ae_title="TRTMASS")
        assert first.is_established
        second = ae.associate("127.0.0.1", port, ae_title="TRTMASS")
        assert not second.is_established, "a second association is over the limit of 1"
        wait_for(lambda: any(e["event"] == "association_rejected" and e["reason"] == "association limit (1) reached"
                             for e in events(daemon.log)), 10, "the rejection logged with its reason")
        wait_for(lambda: not first.is_established, 10, "the idle association to be closed after 1 s")
        admitted = []

        def admitted_again() -> bool:  # once the server has closed its side of the first one
            association = ae.associate("127.0.0.1", port, ae_title="TRTMASS")
            admitted.append(association)
            return bool(association.is_established)

        wait_for(admitted_again, 20, "a new association once the idle one is gone")
        assert admitted[-1].send_c_echo().Status == 0
        admitted[-1].release()
    finally:
        assert daemon.terminate() == 0


def test_a_second_arrival_of_a_waiting_uid_lands_beside_it(tmp_path: Path, phantoms: list[Path]) -> None:
    """incoming/<uid>.dcm was replaced by the next store of that UID: an image not yet taken was lost."""
    import numpy as np
    from pynetdicom import AE

    from trt_mass.daemon.events import EventLog
    from trt_mass.dicomnet.peers import ListenSpec
    from trt_mass.dicomnet.scp import ScpSettings, StorageSCP

    first, second = (pydicom.dcmread(phantoms[0]) for _ in range(2))
    for dataset in (first, second):
        if dataset.file_meta.TransferSyntaxUID.is_compressed:
            dataset.decompress(generate_instance_uid=False)
    second.PixelData = (second.pixel_array // 2).astype(np.uint16).tobytes()
    incoming, receiving = tmp_path / "incoming", tmp_path / "receiving"
    incoming.mkdir()
    stored: list[str] = []
    scp = StorageSCP(ScpSettings(ListenSpec("TRTMASS", free_port()), address="127.0.0.1"), incoming, receiving,
                     EventLog(), on_stored=stored.append).start()
    try:
        ae = AE(ae_title=CALLER)
        ae.add_requested_context(first.SOPClassUID, ExplicitVRLittleEndian)
        association = ae.associate("127.0.0.1", scp.port, ae_title="TRTMASS")
        assert association.is_established
        statuses = [association.send_c_store(dataset).Status for dataset in (first, second, first)]
        association.release()
    finally:
        scp.stop()
    uid = str(first.SOPInstanceUID)
    assert statuses == [0, 0, 0]
    assert stored == [f"{uid}.dcm", f"{uid}.1.dcm", f"{uid}.2.dcm"]
    landed = [pydicom.dcmread(incoming / name).pixel_array for name in stored]
    assert np.array_equal(landed[0], first.pixel_array) and np.array_equal(landed[1], second.pixel_array)
    assert not list(receiving.iterdir()), "no temporary left behind"


def test_contexts_a_sender_cannot_use_are_logged(tmp_path: Path) -> None:
    """An association whose mammogram contexts were all refused (an undecodable transfer syntax) or that
    proposed no class we take left no trace here: the sender's stores failed on its own side."""
    import io

    from pynetdicom import AE

    from trt_mass.daemon.events import EventLog
    from trt_mass.dicomnet.peers import ListenSpec
    from trt_mass.dicomnet.scp import ScpSettings, StorageSCP

    stream = io.StringIO()
    scp = StorageSCP(ScpSettings(ListenSpec("TRTMASS", free_port()), address="127.0.0.1"), tmp_path / "incoming",
                     tmp_path / "receiving", EventLog("json", stream)).start()
    mpeg2, mg, ct = "1.2.840.10008.1.2.4.100", "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.2"
    try:
        for contexts in ([(mg, mpeg2), ("1.2.840.10008.1.1", ExplicitVRLittleEndian)], [(ct, ExplicitVRLittleEndian)],
                         [(mg, ExplicitVRLittleEndian)], [(mg, mpeg2), (mg, ExplicitVRLittleEndian)]):
            ae = AE(ae_title=CALLER)
            for abstract, syntax in contexts:
                ae.add_requested_context(abstract, syntax)
            association = ae.associate("127.0.0.1", scp.port, ae_title="TRTMASS")
            if association.is_established:
                association.release()
    finally:
        scp.stop()
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [(e["sop_classes"], e["reason"].split()[0]) for e in logged if e["event"] == "contexts_refused"]
    assert refused == [([mg], "none"), ([ct], "no")], "the last two could send mammograms: nothing to report"
