"""Finding complete files in incoming/: polling and inotify on real folders, temporary names, half-written files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.dicom_factory import encode, mg_dataset, stored_ramp, write
from trt_mass.daemon.discovery import GRACE_FACTOR, Discovery, is_temporary, looks_complete


def _dicom(path: Path) -> Path:
    write(mg_dataset(stored_ramp(64, 48)), path)
    return path


def test_half_written_encapsulated_files_are_not_complete(tmp_path: Path) -> None:
    """JPEG 2000 pixel data still arriving, without relying on pydicom's warnings (a process-wide filter
    cannot tell the reader thread from the decode workers)."""
    import warnings

    from pydicom.uid import JPEG2000Lossless

    filters = list(warnings.filters)
    whole = write(encode(mg_dataset(stored_ramp(200, 160)), JPEG2000Lossless), tmp_path / "whole.dcm")
    assert looks_complete(whole)
    data = whole.read_bytes()
    for cut in (8, 9, 200, len(data) // 3):  # the delimiter, then pixel data too
        half = tmp_path / f"half{cut}.dcm"
        half.write_bytes(data[: len(data) - cut])
        assert not looks_complete(half), cut
    padded_dataset = encode(mg_dataset(stored_ramp(200, 160)), JPEG2000Lossless)
    padded_dataset.add_new(0xFFFCFFFC, "OB", b"\0" * 16)  # Data Set Trailing Padding after the pixel data
    assert looks_complete(write(padded_dataset, tmp_path / "padded.dcm"))
    assert warnings.filters == filters, "reading must leave the process-wide warning filters alone"


@pytest.mark.parametrize(("name", "temporary"), [
    ("a.dcm", False), ("1.2.840.113619", False), ("a.png", False),
    (".a.dcm", True), ("a.dcm.part", True), ("a.dcm.TMP", True), ("a.partial", True), ("a.crdownload", True),
    ("a.filepart", True), ("a.swp", True), ("a.dcm~", True), (".a.json.1f2e3d4c.tmp", True),
])
def test_temporary_names(name: str, temporary: bool) -> None:
    assert is_temporary(name) is temporary


def test_complete_and_half_written_files(tmp_path: Path) -> None:
    whole = _dicom(tmp_path / "whole.dcm")
    assert looks_complete(whole)
    half = tmp_path / "half.dcm"
    data = whole.read_bytes()
    half.write_bytes(data[: len(data) - 500])  # the pixel data is still arriving
    assert not looks_complete(half)
    picture = tmp_path / "a.png"
    noise = np.random.default_rng(0).integers(0, 65535, size=(64, 64), dtype=np.uint16)
    Image.fromarray(noise).save(picture)
    assert looks_complete(picture)
    cut = tmp_path / "cut.png"
    cut.write_bytes(picture.read_bytes()[: picture.stat().st_size // 2])
    assert not looks_complete(cut)


def test_polling_takes_a_file_after_stable_polls(tmp_path: Path) -> None:
    discovery = Discovery(tmp_path, polling=True, stable_polls=2, settle_s=0.0, rescan_s=30.0)
    _dicom(tmp_path / "a.dcm")
    (tmp_path / "b.dcm.part").write_bytes(b"still uploading")
    assert discovery.ready() == []  # first seen
    assert discovery.ready() == []  # stable for 1 poll
    assert discovery.ready() == ["a.dcm"]  # stable for 2 polls and parses
    assert discovery.pending_count() == 1
    discovery.forget("a.dcm")
    assert discovery.pending_count() == 0


def test_polling_waits_while_a_file_grows(tmp_path: Path) -> None:
    discovery = Discovery(tmp_path, polling=True, stable_polls=2, settle_s=0.0, rescan_s=30.0)
    whole = _dicom(tmp_path / "src.dcm").read_bytes()
    (tmp_path / "src.dcm").unlink()
    growing = tmp_path / "growing.dcm"
    for end in (len(whole) // 3, 2 * len(whole) // 3):
        growing.write_bytes(whole[:end])
        assert discovery.ready() == []
    growing.write_bytes(whole)
    assert [discovery.ready() for _ in range(3)][-1] == ["growing.dcm"]


def test_a_file_that_never_parses_is_still_taken_after_the_grace(tmp_path: Path) -> None:
    discovery = Discovery(tmp_path, polling=True, stable_polls=2, settle_s=0.0, rescan_s=30.0,
                          incomplete_grace_s=0.0)
    (tmp_path / "junk.dcm").write_bytes(b"DICM? no, junk")
    polls = [discovery.ready() for _ in range(2 * GRACE_FACTOR + 1)]
    assert polls[2] == [], "parsed as complete too early"
    assert polls[-1] == ["junk.dcm"], "a corrupt file must fail with its reason, not linger"


def test_a_writer_that_pauses_mid_file_is_waited_for(tmp_path: Path) -> None:
    """A copy to a share that stalled for longer than the polls' grace had its file taken as truncated."""
    discovery = Discovery(tmp_path, polling=True, stable_polls=2, settle_s=0.0, rescan_s=30.0,
                          incomplete_grace_s=0.6)
    whole = _dicom(tmp_path / "src.dcm").read_bytes()
    (tmp_path / "src.dcm").unlink()
    stalled = tmp_path / "stalled.dcm"
    stalled.write_bytes(whole[: len(whole) // 2])
    assert [discovery.ready() for _ in range(4 * GRACE_FACTOR)] == [[]] * (4 * GRACE_FACTOR), \
        "half a file, still within the incomplete grace"
    stalled.write_bytes(whole)  # the writer goes on
    assert [discovery.ready() for _ in range(3)][-1] == ["stalled.dcm"]
    discovery.forget("stalled.dcm")
    stalled.write_bytes(whole[: len(whole) // 2])  # and one that never completes fails after the grace
    time.sleep(0.7)
    assert [discovery.ready() for _ in range(2 * GRACE_FACTOR + 1)][-1] == [], "its clock starts when it is seen"
    time.sleep(0.7)
    assert discovery.ready() == ["stalled.dcm"]


def test_inotify_marks_closed_and_moved_files(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    staged = _dicom(tmp_path / "staged.dcm")
    discovery = Discovery(incoming, polling=False, stable_polls=3, settle_s=0.1, rescan_s=3600.0)
    discovery.start()
    try:
        discovery.ready()  # the first tick rescans what arrived while the daemon was down: nothing
        content = staged.read_bytes()
        staged.rename(incoming / "moved.dcm")  # `mv` from another folder: inotify says IN_MOVED_TO
        (incoming / "written.dcm").write_bytes(content)  # written in place: IN_CLOSE_WRITE
        (incoming / "ignored.dcm.part").write_bytes(b"partial")
        deadline, taken = time.monotonic() + 10, set()
        while time.monotonic() < deadline and taken != {"moved.dcm", "written.dcm"}:
            taken |= set(discovery.ready())
            time.sleep(0.05)
        assert taken == {"moved.dcm", "written.dcm"}
    finally:
        discovery.stop()


def _taken_within(discovery: Discovery, names: set[str], seconds: float) -> set[str]:
    deadline, taken = time.monotonic() + seconds, set()
    while time.monotonic() < deadline and taken != names:
        taken |= set(discovery.ready())
        time.sleep(0.05)
    return taken


def test_inotify_follows_a_symlinked_and_a_recreated_folder(tmp_path: Path) -> None:
    """Events of a symlinked incoming/ named the real folder and were dropped; a removed and recreated
    incoming/ was no longer watched: either way files waited for the 30 s rescan."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "incoming"
    link.symlink_to(real)
    staged = _dicom(tmp_path / "staged.dcm")
    discovery = Discovery(link, polling=False, stable_polls=3, settle_s=0.1, rescan_s=1.0)
    discovery.start()
    try:
        discovery.ready()  # the first tick's rescan
        (link / "through-link.dcm").write_bytes(staged.read_bytes())
        assert _taken_within(discovery, {"through-link.dcm"}, 0.9) == {"through-link.dcm"}, "before any rescan"
        discovery.forget("through-link.dcm")
        (link / "through-link.dcm").unlink()
        real.rename(tmp_path / "old")
        real.mkdir()  # the same path, another folder
        time.sleep(1.1)
        discovery.ready()  # the rescan notices the new folder and watches it
        (link / "after.dcm").write_bytes(staged.read_bytes())
        assert _taken_within(discovery, {"after.dcm"}, 0.9) == {"after.dcm"}, "by inotify, not a rescan"
    finally:
        discovery.stop()
