"""The watch daemon as a real process on real folders: arrivals, crashes, SIGTERM, sd_notify, retries."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.daemon_process import Daemon
from tests.daemon_process import events as log_events
from tests.daemon_process import wait_for as _wait_for
from tests.dicom_factory import mg_dataset, stored_ramp, write
from trt_mass.datasets.synth import write_phantoms


def _folder(root: Path, name: str) -> list[str]:
    folder = root / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _make_arrivals(staging: Path, count: int, seed: int) -> tuple[list[Path], dict[str, str], set[str]]:
    """count files: valid phantoms, duplicates, corrupt, truncated, non-MG, multi-frame.

    Returns (files, {invalid file name: expected reason fragment}, SOP UIDs that must get a result).
    """
    rng = random.Random(seed)
    valid_count = int(count * 0.72)
    phantoms = write_phantoms(staging / "valid", valid_count, seed=seed, scale=0.05, normal_fraction=0.3)
    files = list(phantoms)
    invalid: dict[str, str] = {}
    sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in phantoms}
    odd = staging / "odd"
    odd.mkdir()
    kinds = ["duplicate", "corrupt", "truncated", "nonmg", "multiframe"]
    for index in range(count - valid_count):
        kind = kinds[index % len(kinds)]
        path = odd / f"{kind}_{index:03d}.dcm"
        source = rng.choice(phantoms)
        if kind == "duplicate":
            shutil.copyfile(source, path)
        elif kind == "corrupt":
            path.write_bytes(bytes(rng.getrandbits(8) for _ in range(3000)))
            invalid[path.name] = "not a DICOM file"
        elif kind == "truncated":
            data = source.read_bytes()
            path.write_bytes(data[: len(data) // 2])
            invalid[path.name] = ""
        elif kind == "nonmg":
            write(mg_dataset(stored_ramp(), Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2"), path)
            invalid[path.name] = "not a mammogram"
        else:
            write(mg_dataset(np.vstack([stored_ramp()] * 2), NumberOfFrames=2, Rows=48), path)
            invalid[path.name] = "multi-frame"
        files.append(path)
    rng.shuffle(files)
    return files, invalid, sops


def _deliver(path: Path, incoming: Path, rng: random.Random) -> None:
    """Write a file into incoming/ the way scanners and PACS do: at once, slowly, or as .part + rename."""
    data = path.read_bytes()
    how = rng.choice(["direct", "slow", "part"])
    target = incoming / path.name
    if how == "direct":
        target.write_bytes(data)
    elif how == "slow":
        with open(target, "wb") as handle:
            for start in range(0, len(data), max(1, len(data) // 4)):
                handle.write(data[start : start + max(1, len(data) // 4)])
                handle.flush()
                time.sleep(rng.uniform(0.05, 0.4))
    else:
        part = incoming / f"{path.name}.part"
        with open(part, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            time.sleep(rng.uniform(0.05, 0.3))
            handle.write(data[len(data) // 2 :])
        os.replace(part, target)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_arrivals_with_crashes_lose_nothing(tmp_path: Path, watch_model: Path, polling: bool) -> None:
    # 80 files: on a 2-core box without AVX-512 a file of the tiny model with ~90 findings takes ~3 s
    # (inference, SR/GSPS/SC), so the four kills still land while most of them wait.
    files, invalid, sops = _make_arrivals(tmp_path / "staging", 80, seed=11 if polling else 12)
    root = tmp_path / "root"
    (root / "incoming").mkdir(parents=True)
    # The polling run decodes three files side by side: the guarantees hold for several decode workers.
    workers = 3 if polling else 1
    daemon = Daemon(root, watch_model, polling=polling, env={"TRTMASS_WATCH_DECODE_WORKERS": str(workers)}).start()
    rng = random.Random(5)
    delivered = threading.Event()

    def writer(batch: list[Path], seed: int) -> None:
        local = random.Random(seed)
        for path in batch:
            _deliver(path, root / "incoming", local)
            time.sleep(local.uniform(0, 0.05))

    threads = [threading.Thread(target=writer, args=(files[i::4], i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(4):  # SIGKILL at random moments while files arrive, then restart
        time.sleep(rng.uniform(1.5, 4.0))
        daemon.kill()
        daemon.start()
    for thread in threads:
        thread.join()
    delivered.set()
    expected_results = {f"{sop}.json" for sop in sops}
    _wait_for(lambda: not _folder(root, "incoming") and not _folder(root, "processing")
              and expected_results <= set(_folder(root, "results")), 480, "the daemon to drain")
    assert daemon.terminate() == 0

    results = _folder(root, "results")
    json_results = {n for n in results if n.endswith(".json")}
    assert json_results == expected_results, "every valid mammogram exactly one result, nothing else"
    dicom_objects = set()
    for name in json_results:
        record = json.loads((root / "results" / name).read_text())
        assert record["image"]["sop_instance_uid"] == name[: -len(".json")]
        assert set(record["dicom_outputs"]) == {"sr", "gsps", "sc"}, "watch writes all three by default"
        dicom_objects |= set(record["dicom_outputs"].values())
    assert set(results) == json_results | dicom_objects, "no stray or partial files in results/"
    failed = set(_folder(root, "failed"))
    for name, reason in invalid.items():
        assert name in failed and f"{name}.error.json" in failed, name
        report = json.loads((root / "failed" / f"{name}.error.json").read_text())
        assert reason in report["reason"] and report["model"] == str(watch_model)
    assert len(failed) == 2 * len(invalid), "only the invalid files failed"
    done = _folder(root, "done")
    assert len(done) == len(files) - len(invalid), "every valid input (duplicates too) is in done/"
    for folder in ("incoming", "processing", "results", "failed"):
        assert not [n for n in _folder(root, folder) if n.startswith(".") or n.endswith((".tmp", ".part"))]
    log = daemon.log.read_text()
    assert log.count('"event": "model_loaded"') == 5, "four SIGKILLs and restarts happened"
    status = json.loads((root / "status.json").read_text())
    assert status["state"] == "stopped" and status["mode"] == ("polling" if polling else "inotify")
    assert status["decode_workers"] == workers and status["decoder"] in ("openjpeg", "nvimgcodec")


def test_sigterm_mid_file_exits_cleanly_and_loses_nothing(tmp_path: Path, watch_model: Path) -> None:
    staging = tmp_path / "staging"
    # Full-size-ish JPEG 2000 phantoms so that a file is in flight when SIGTERM arrives.
    paths = write_phantoms(staging, 6, seed=3, scale=0.6, normal_fraction=0.0)
    root = tmp_path / "root"
    (root / "incoming").mkdir(parents=True)
    daemon = Daemon(root, watch_model).start()
    for path in paths:
        shutil.copyfile(path, root / "incoming" / path.name)
    _wait_for(lambda: bool(_folder(root, "processing")), 60, "a file in processing/")
    assert daemon.terminate() == 0
    names = {p.name for p in paths}
    remaining = set(_folder(root, "incoming")) | set(_folder(root, "done"))
    assert remaining == names and not _folder(root, "processing") and not _folder(root, "failed")
    log = daemon.log.read_text()
    assert '"event": "stopped"' in log
    daemon.start()  # what was left is processed after a restart
    _wait_for(lambda: len(_folder(root, "done")) == len(paths), 120, "the rest to be processed")
    assert daemon.terminate() == 0
    assert len([n for n in _folder(root, "results") if n.endswith(".json")]) == len(paths)
    assert len([n for n in _folder(root, "results") if n.endswith(".sr.dcm")]) == len(paths)


def test_sd_notify_reaches_the_socket(tmp_path: Path, watch_model: Path) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(30)
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}).start()
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (any("READY=1" in m for m in messages)
                                                   and sum("WATCHDOG=1" in m for m in messages) >= 2):
            messages.append(listener.recv(4096).decode())
        assert daemon.terminate() == 0
        while not any("STOPPING=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
    finally:
        listener.close()
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=watching" in ready
    assert sum("WATCHDOG=1" in m for m in messages) >= 2


def test_failing_model_is_retried_and_good_studies_wait(tmp_path: Path, watch_model: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not a model yet")
    root = tmp_path / "root"
    (root / "incoming").mkdir(parents=True)
    paths = write_phantoms(tmp_path / "staging", 2, seed=8, scale=0.05, normal_fraction=0.0)
    daemon = Daemon(root, model).start()
    for path in paths:
        shutil.copyfile(path, root / "incoming" / path.name)
    _wait_for(lambda: (root / "status.json").exists()
              and "model_unavailable" in (json.loads((root / "status.json").read_text())["last_error"] or ""),
              30, "the model failure to be reported")
    time.sleep(1.0)
    assert not _folder(root, "failed") and not _folder(root, "results")
    shutil.copyfile(watch_model, model)  # the engine comes back
    _wait_for(lambda: len(_folder(root, "done")) == 2, 60, "processing after recovery")
    assert daemon.terminate() == 0
    assert not _folder(root, "failed") and len([n for n in _folder(root, "results") if n.endswith(".json")]) == 2
    assert "model_unavailable" in daemon.log.read_text()


def test_unwritable_results_keep_the_input_queued(tmp_path: Path, watch_model: Path) -> None:
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "results").is_dir() and (root / "status.json").exists(), 30, "the daemon")
    (root / "results").rename(root / "results.away")
    (root / "results").write_text("a file where the results folder should be")  # every write now fails
    path = write_phantoms(tmp_path / "staging", 1, seed=2, scale=0.05, normal_fraction=0.0)[0]
    shutil.copyfile(path, root / "incoming" / path.name)
    _wait_for(lambda: "results_not_writable" in daemon.log.read_text(), 30, "the write failure to be reported")
    assert _folder(root, "processing") == [path.name] and not _folder(root, "failed")
    (root / "results").unlink()
    (root / "results.away").rename(root / "results")
    _wait_for(lambda: _folder(root, "done") == [path.name], 30, "the retry to succeed")
    assert daemon.terminate() == 0
    assert len([n for n in _folder(root, "results") if n.endswith(".json")]) == 1


def test_a_fifo_fails_at_once_and_a_blocked_done_folder_is_waited_out(tmp_path: Path, watch_model: Path) -> None:
    """A FIFO used to block the reader for good (the completeness check opened it); a done/ that could
    not be written ended the daemon with a traceback."""
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    os.mkfifo(root / "incoming" / "pipe.dcm")
    source = write_phantoms(tmp_path / "staging", 1, seed=5, scale=0.05, normal_fraction=0.0)[0]
    shutil.copyfile(source, root / "incoming" / "a.dcm")
    _wait_for(lambda: _folder(root, "done") == ["a.dcm"], 60, "the image behind the FIFO")
    assert _folder(root, "failed") == ["pipe.dcm", "pipe.dcm.error.json"]
    assert "not a regular file" in json.loads((root / "failed" / "pipe.dcm.error.json").read_text())["reason"]
    (root / "done").rename(root / "done.away")
    (root / "done").write_text("a file where done/ should be")
    shutil.copyfile(source, root / "incoming" / "b.dcm")
    _wait_for(lambda: any(e["event"] == "done_not_writable" and e.get("file") == "b.dcm"
                          for e in log_events(daemon.log)), 30, "the blocked done/ to be reported with the file")
    assert daemon.process is not None and daemon.process.poll() is None, "the daemon keeps running"
    (root / "done").unlink()
    (root / "done.away").rename(root / "done")
    _wait_for(lambda: _folder(root, "done") == ["a.dcm", "b.dcm"], 30, "the retry to succeed")
    assert daemon.terminate() == 0
    assert [e["file"] for e in log_events(daemon.log) if e["event"] == "duplicate"] == ["b.dcm"]


def test_two_images_of_one_file_name_get_two_results(tmp_path: Path, watch_model: Path) -> None:
    """A file name is no identity: a second, different case1.png is a new image, the same one a duplicate."""
    from PIL import Image

    rng = np.random.default_rng(3)
    first, second = (rng.integers(0, 256, size=(96, 80), dtype=np.uint8) for _ in range(2))
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model, env={"TRTMASS_WATCH_DICOM_OUT": "none"}).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    for number, pixels in enumerate((first, second, first)):
        Image.fromarray(pixels).save(tmp_path / "case1.png")
        os.replace(tmp_path / "case1.png", root / "incoming" / "case1.png")
        _wait_for(lambda n=number: len(_folder(root, "done")) == n + 1, 60, f"arrival {number + 1}")
    assert daemon.terminate() == 0
    results = {name: json.loads((root / "results" / name).read_text()) for name in _folder(root, "results")}
    assert sorted(results) == ["case1-2.json", "case1.json"]
    assert results["case1.json"]["input_sha256"] != results["case1-2.json"]["input_sha256"]
    assert [e["file"] for e in log_events(daemon.log) if e["event"] == "duplicate"] == ["case1.png"]
    assert _folder(root, "done") == ["case1.1.png", "case1.2.png", "case1.png"], "every arrival kept"


def test_a_reused_sop_instance_uid_with_other_pixels_is_a_second_image(tmp_path: Path, watch_model: Path) -> None:
    """A UID names one image, but devices and anonymisers reuse them: other pixels under a known UID were
    dropped as a duplicate.  The same pixels re-encoded (a PACS resend) still are a duplicate."""
    source = write_phantoms(tmp_path / "staging", 1, seed=7, scale=0.05, normal_fraction=0.0)[0]
    original = pydicom.dcmread(source)
    uid = str(original.SOPInstanceUID)
    reencoded = pydicom.dcmread(source)
    reencoded.decompress(generate_instance_uid=False)  # JPEG 2000 -> explicit LE: other bytes, the same pixels
    reencoded.InstitutionName = "RESENT BY PACS"
    other = pydicom.dcmread(source)
    other.decompress(generate_instance_uid=False)
    pixels = other.pixel_array.copy()
    pixels[: pixels.shape[0] // 2] //= 2
    other.PixelData = pixels.tobytes()
    arrivals = {"a.dcm": original, "b.dcm": other, "c.dcm": reencoded}
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model, env={"TRTMASS_WATCH_DICOM_OUT": "sr,gsps"}).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    for number, (name, dataset) in enumerate(arrivals.items()):
        dataset.save_as(root / "staging.tmp", enforce_file_format=True)
        os.replace(root / "staging.tmp", root / "incoming" / name)
        _wait_for(lambda n=number: len(_folder(root, "done")) == n + 1, 60, f"arrival {name}")
    assert daemon.terminate() == 0
    results = {n: json.loads((root / "results" / n).read_text()) for n in _folder(root, "results") if
               n.endswith(".json")}
    assert sorted(results) == [f"{uid}-2.json", f"{uid}.json"]
    assert results[f"{uid}.json"]["pixels_sha256"] != results[f"{uid}-2.json"]["pixels_sha256"]
    events = log_events(daemon.log)
    assert [e["file"] for e in events if e["event"] == "duplicate"] == ["c.dcm"]
    assert [(e["file"], e["result"]) for e in events if e["event"] == "sop_instance_uid_reused"] == [
        ("b.dcm", f"{uid}-2")]
    for kind in ("sr", "gsps"):  # a PACS would drop the second's marks as a duplicate SOP instance
        first, second = (pydicom.dcmread(root / "results" / f"{stem}.{kind}.dcm") for stem in (uid, f"{uid}-2"))
        assert first.SOPInstanceUID != second.SOPInstanceUID
    assert _folder(root, "done") == ["a.dcm", "b.dcm", "c.dcm"], "every arrival kept"


def test_a_raster_named_like_a_uid_does_not_shadow_that_dicom(tmp_path: Path, watch_model: Path) -> None:
    from PIL import Image

    source = write_phantoms(tmp_path / "staging", 1, seed=6, scale=0.05, normal_fraction=0.0)[0]
    uid = str(pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    Image.fromarray(np.random.default_rng(4).integers(0, 256, size=(96, 80), dtype=np.uint8)).save(
        tmp_path / f"{uid}.png")
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model, env={"TRTMASS_WATCH_DICOM_OUT": "none"}).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    for number, path in enumerate((tmp_path / f"{uid}.png", source)):
        shutil.copyfile(path, root / "staging.tmp")
        os.replace(root / "staging.tmp", root / "incoming" / path.name)
        _wait_for(lambda n=number: len(_folder(root, "done")) == n + 1, 60, f"arrival {number + 1}")
    assert daemon.terminate() == 0
    assert _folder(root, "results") == [f"{uid}-2.json", f"{uid}.json"]
    assert json.loads((root / "results" / f"{uid}-2.json").read_text())["image"]["sop_instance_uid"] == uid


def test_an_input_removed_from_processing_is_let_go(tmp_path: Path, watch_model: Path) -> None:
    """Its move to done/ can never succeed: retrying it for ever would stop every later file."""
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    (root / "done").rmdir()
    (root / "done").write_text("a file where done/ should be")
    sources = write_phantoms(tmp_path / "staging", 2, seed=7, scale=0.05, normal_fraction=0.0)
    shutil.copyfile(sources[0], root / "incoming" / "a.dcm")
    _wait_for(lambda: any(e["event"] == "done_not_writable" for e in log_events(daemon.log)), 30, "the retries")
    (root / "processing" / "a.dcm").unlink()
    _wait_for(lambda: any(e["event"] == "vanished" and e["file"] == "a.dcm" for e in log_events(daemon.log)), 30,
              "the vanished input to be let go")
    (root / "done").unlink()  # done/ is made again by the next move
    shutil.copyfile(sources[1], root / "incoming" / "b.dcm")
    _wait_for(lambda: _folder(root, "done") == ["b.dcm"], 60, "the next file")
    assert daemon.terminate() == 0


def test_a_folder_that_is_a_file_is_a_config_error(tmp_path: Path, watch_model: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "results").write_text("not a folder")
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "watch", str(tmp_path / "root"), "--model",
                          str(watch_model)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "results/" in run.stderr and "cannot be made a folder" in run.stderr and "Traceback" not in run.stderr


def test_a_second_file_of_one_name_keeps_its_reader_suffix(tmp_path: Path) -> None:
    from trt_mass.daemon.service import unique_target

    for name in ("a.png", "b.dcm", "1.2.840.5"):
        (tmp_path / name).write_text("taken")
    assert unique_target(tmp_path, "a.png").name == "a.1.png"
    assert unique_target(tmp_path, "b.dcm").name == "b.1.dcm"
    assert unique_target(tmp_path, "1.2.840.5").name == "1.2.840.5.1", "a UID-named DICOM keeps its name whole"
    assert unique_target(tmp_path, "new.png").name == "new.png"


def test_handing_files_back_to_incoming_never_replaces_an_arrival(tmp_path: Path) -> None:
    """Shutdown and recovery move files back to incoming/ while writers keep dropping files there: a
    check-then-rename replaced an arrival that landed in between."""
    import threading

    from trt_mass.daemon.service import hand_back

    incoming, processing, staging, taken = (tmp_path / n for n in ("incoming", "processing", "staging", "taken"))
    for folder in (incoming, processing, staging, taken):
        folder.mkdir()
    rounds, stop = 1000, threading.Event()
    written = [0]

    def writer() -> None:  # drops a.png into incoming/ whenever the name is free, as a sender would
        while not stop.is_set():
            staged = staging / f"{written[0]}.png"
            staged.write_text(f"arrival {written[0]}")
            try:
                os.link(staged, incoming / "a.png")
                written[0] += 1
            except FileExistsError:
                pass
            staged.unlink()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for number in range(rounds):
            (processing / "a.png").write_text(f"handed back {number}")
            hand_back(processing / "a.png", incoming)
            for path in incoming.iterdir():  # the daemon takes them
                path.rename(taken / f"{number}-{path.name}")
    finally:
        stop.set()
        thread.join()
    contents = {path.read_text() for folder in (incoming, taken) for path in folder.iterdir()}
    assert {f"handed back {n}" for n in range(rounds)} <= contents
    assert {f"arrival {n}" for n in range(written[0])} <= contents, "an arrival was replaced"
    assert written[0] > 0 and not list(processing.iterdir())
    (tmp_path / "x.dcm").write_text("first")
    (incoming / "x.dcm").write_text("waiting")
    assert hand_back(tmp_path / "x.dcm", incoming).name == "x.1.dcm"
    assert (incoming / "x.dcm").read_text() == "waiting"


@pytest.mark.parametrize("name", ["trtmass-watch.service", "trtmass-serve.service"])
def test_unit_file_verifies(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit file was NOT verified")
    unit = (Path(__file__).parents[2] / "systemd" / name).read_text()
    trtmass = Path(sys.executable).with_name("trtmass")
    unit = unit.replace("/opt/trtmass/venv/bin/trtmass", str(trtmass))
    target = tmp_path / name
    target.write_text(unit)
    result = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True)
    # The service user does not exist on a build machine; everything else must be clean.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if name in line and not any(word in line for word in ("User", "Group"))]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_watch_defaults_to_the_bundled_model_and_reads_config_layers(tmp_path: Path) -> None:
    from trt_mass.bundled import BUNDLED_MODEL
    from trt_mass.daemon.config import load_config
    from trt_mass.daemon.service import WatchService

    toml = tmp_path / "watch.toml"
    toml.write_text('[watch]\nroot = "/nowhere"\npoll_interval_s = 2.5\nstable_polls = 4\n')
    config = load_config({"root": tmp_path / "root", "polling": True}, toml,
                         environ={"TRTMASS_WATCH_STABLE_POLLS": "6", "TRTMASS_WATCH_DELETE_DONE": "yes"})
    assert config.root == tmp_path / "root", "flags override the file"
    assert config.poll_interval_s == 2.5 and config.stable_polls == 6 and config.delete_done and config.polling
    assert WatchService(config).config.model == BUNDLED_MODEL


def test_a_duplicate_arrival_writes_no_second_result(tmp_path: Path, watch_model: Path) -> None:
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    source = write_phantoms(tmp_path / "staging", 1, seed=9, scale=0.05, normal_fraction=0.0)[0]
    uid = str(pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    shutil.copyfile(source, root / "incoming" / "first.dcm")
    _wait_for(lambda: _folder(root, "done") == ["first.dcm"], 60, "the first arrival")
    result = root / "results" / f"{uid}.json"
    written = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (root / "results").iterdir()}
    shutil.copyfile(source, root / "incoming" / "again.dcm")  # the same image sent twice
    _wait_for(lambda: _folder(root, "done") == ["again.dcm", "first.dcm"], 60, "the second arrival")
    assert daemon.terminate() == 0
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (root / "results").iterdir()} == written, \
        "the duplicate rewrote nothing"
    assert json.loads(result.read_text())["image"]["source"] == "first.dcm"
    events = [json.loads(line) for line in daemon.log.read_text().splitlines() if line.startswith("{")]
    duplicates = [e for e in events if e["event"] == "duplicate"]
    assert [(e["file"], e["sop_instance_uid"]) for e in duplicates] == [("again.dcm", uid)]
    assert [e["file"] for e in events if e["event"] == "processed"] == ["first.dcm"]
    assert json.loads((root / "status.json").read_text())["duplicates"] == 1


def test_an_operating_point_the_model_lacks_keeps_files_queued_and_says_why(tmp_path: Path,
                                                                            watch_model: Path) -> None:
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model, env={"TRTMASS_WATCH_OPERATING_POINT": "1fppi"}).start()
    source = write_phantoms(tmp_path / "staging", 1, seed=4, scale=0.05, normal_fraction=0.0)[0]
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, root / "incoming" / source.name)
    _wait_for(lambda: "has no such point" in daemon.log.read_text(), 30, "the reason in the log")
    assert daemon.terminate() == 0
    assert _folder(root, "incoming") == [source.name] and not _folder(root, "failed") and not _folder(root, "results")
    events = [json.loads(line) for line in daemon.log.read_text().splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"model_unavailable", "stopped"}
    assert not [e for e in events if e["event"] == "model_loaded"]


@pytest.mark.parametrize("workers", [1, 2])
def test_canvas_in_the_decode_workers_gives_the_same_results(tmp_path: Path, watch_model: Path, workers: int) -> None:
    """With 2 or more decode workers they make the canvas (the engine thread only runs the engine); the
    results equal those of the canvas made on the engine thread, and the log says where it was made."""
    sources = write_phantoms(tmp_path / "staging", 4, seed=21, scale=0.05, normal_fraction=0.0)
    findings = {}
    for where, flag in (("engine", "0"), ("workers", "1"), ("default", None)):
        root = tmp_path / where
        (root / "incoming").mkdir(parents=True)
        env = {"TRTMASS_WATCH_DECODE_WORKERS": str(workers), "TRTMASS_WATCH_DICOM_OUT": "none",
               **({"TRTMASS_WATCH_CANVAS_IN_WORKERS": flag} if flag else {})}
        daemon = Daemon(root, watch_model, env=env).start()
        for source in sources:
            shutil.copyfile(source, root / "incoming" / source.name)
        _wait_for(lambda root=root: len(_folder(root, "done")) == len(sources), 120, f"the {where} run")
        assert daemon.terminate() == 0
        events = [json.loads(line) for line in daemon.log.read_text().splitlines() if line.startswith("{")]
        processed = [e for e in events if e["event"] == "processed"]
        in_worker = {"engine": False, "workers": True, "default": workers >= 2}[where]
        assert len(processed) == len(sources) and {e["canvas_in_worker"] for e in processed} == {in_worker}
        findings[where] = {p.name: json.loads(p.read_text())["findings"] for p in (root / "results").iterdir()}
    assert findings["engine"] == findings["workers"] == findings["default"]
    assert any(findings["engine"].values()), "the tiny model finds something to compare"


def _watch_once(root: Path, model: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from tests.daemon_process import FAST

    return subprocess.run([sys.executable, "-m", "trt_mass.cli", "watch", str(root), "--model", str(model)],
                          env={**os.environ, **FAST, **env}, capture_output=True, text=True, timeout=60)


def test_two_roles_in_one_folder_and_a_second_daemon_are_refused(tmp_path: Path, watch_model: Path) -> None:
    """processing/ = incoming/ deleted every waiting input on start; a second daemon on one tree took the
    first's files in processing/ as crash leftovers."""
    root = tmp_path / "root"
    (root / "incoming").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (root / "incoming" / name).write_bytes(b"waiting")
    for key, folder in (("PROCESSING", "incoming"), ("DONE", "incoming"), ("FAILED", "results")):
        run = _watch_once(root, watch_model, {f"TRTMASS_WATCH_{key}": str(root / folder)})
        assert run.returncode == 2 and "are one folder" in run.stderr, run.stderr
        assert _folder(root, "incoming") == ["a.png", "b.png"], "nothing taken, nothing lost"
    shutil.rmtree(root / "incoming")
    first = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the first daemon")
    second = _watch_once(root, watch_model, {})
    assert second.returncode == 2 and "another trtmass watch uses" in second.stderr, second.stderr
    assert first.terminate() == 0
    assert _watch_once(root, watch_model, {"TRTMASS_WATCH_STATUS_FILE": str(tmp_path / "no" / "s.json")}
                       ).returncode == 2, "a status file that could never be written"


def test_sighup_stops_like_sigterm(tmp_path: Path, watch_model: Path) -> None:
    """SIGHUP (a closed ssh session) killed the daemon at once: no `stopped`, files left in processing/."""
    import signal

    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    assert daemon.process.wait(timeout=60) == 0
    assert [e["event"] for e in log_events(daemon.log)][-1] == "stopped"
    assert json.loads((root / "status.json").read_text())["state"] == "stopped"


def test_failed_inputs_and_reports_never_replace_each_other(tmp_path: Path, watch_model: Path) -> None:
    """An input named like another's report was replaced by that report; a 240-byte name made the report's
    name too long and held every later file up (retried as a full disk)."""
    root = tmp_path / "root"
    daemon = Daemon(root, watch_model).start()
    _wait_for(lambda: (root / "status.json").exists(), 30, "the daemon")
    long_name = "x" * 251 + ".png"  # 255 bytes: a second one cannot be "....1.png" in full
    not_utf8 = os.fsdecode(b"caf\xe9.png")  # from a Windows share: surrogates in the str
    for number, name in enumerate(("x.png.error.json", "x.png", long_name, long_name, not_utf8)):
        (tmp_path / "staged").write_bytes(b"not an image " + os.fsencode(name))
        os.replace(tmp_path / "staged", root / "incoming" / name)
        _wait_for(lambda n=number: len([f for f in _folder(root, "failed") if not f.endswith(".error.json")
                                        or f == "x.png.error.json"]) == n + 1, 60, f"failure {number + 1}")
    assert daemon.terminate() == 0
    failed = root / "failed"
    assert (failed / "x.png.error.json").read_bytes() == b"not an image x.png.error.json", "the input is kept"
    reports = [json.loads(p.read_text()) for p in failed.iterdir() if p.name.endswith(".error.json")
               and p.name != "x.png.error.json"]
    assert sorted(r["file"] for r in reports) == sorted(["x.png.error.json", "x.png", long_name, long_name, not_utf8])
    assert (failed / long_name).exists() and (failed / not_utf8).exists()
    assert all(len(os.fsencode(p.name)) <= 255 for p in failed.iterdir())
