"""The one atomic write: whole or nothing for readers, nothing left behind on errors, ordinary permissions."""

from __future__ import annotations

import errno
import itertools
import json
import os
import threading
from pathlib import Path

import pytest

from trt_mass.atomic import atomic_path, write_atomic, write_json_atomic


def test_writes_the_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_permissions_are_those_of_any_new_file(tmp_path: Path) -> None:
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"x")  # created with 0666 minus the umask
    target = tmp_path / "atomic"
    write_atomic(target, b"x")
    assert (target.stat().st_mode & 0o777) == (ordinary.stat().st_mode & 0o777)


def test_an_error_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the good one")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target, suffix=".onnx") as temporary:
        temporary.write_bytes(b"half of a new o")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"the good one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_temporary_is_a_dotfile_beside_the_target_that_the_daemon_ignores(tmp_path: Path) -> None:
    from trt_mass.daemon.discovery import is_temporary

    with atomic_path(tmp_path / "a.json") as temporary:
        assert temporary.parent == tmp_path and temporary.exists()
        assert temporary.name.startswith(".a.json.") and temporary.name.endswith(".tmp")
        assert is_temporary(temporary.name)
        assert list(tmp_path.glob(".*.tmp")) == [temporary]  # what the daemon removes after a crash
        temporary.write_text("{}")
    with atomic_path(tmp_path / "b.onnx", suffix=".onnx") as temporary:
        assert temporary.name.endswith(".tmp.onnx")
        temporary.write_bytes(b"")


def test_readers_see_one_whole_version_or_another(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    versions = [bytes([65 + i]) * (256 * 1024 + i) for i in range(8)]
    write_atomic(target, versions[0])
    stop = threading.Event()
    seen: set[bytes] = set()

    def read() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(40):
            write_atomic(target, versions[round_ % len(versions)])
    finally:
        stop.set()
        reader.join()
    assert seen and seen <= set(versions), "a reader saw a partly written file"


def test_json_is_indented_with_a_final_newline(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    text = target.read_text()
    assert text == json.dumps({"b": 1, "a": [1, 2]}, indent=2) + "\n"
    write_json_atomic(target, {"b": 1, "a": 2}, sort_keys=True)
    assert target.read_text().index('"a"') < target.read_text().index('"b"')


def test_a_missing_folder_is_an_error_not_a_silent_mkdir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "x.json", b"{}")
    assert not (tmp_path / "absent").exists()
    assert os.listdir(tmp_path) == []


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_text() == "new"


def test_an_existing_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "engine.plan"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_atomic(target, b"new")
    assert (target.stat().st_mode & 0o777) == 0o600 and target.read_bytes() == b"new"


def test_a_target_that_is_not_a_regular_file_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert received == [b"through the pipe"] and fifo.exists() and not fifo.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_move_never_lands_on_an_existing_name(tmp_path: Path) -> None:
    from trt_mass.atomic import move_without_replacing, numbered_names

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_text("waiting")
    (tmp_path / "a.png").write_text("handed back")
    moved = move_without_replacing(tmp_path / "a.png", numbered_names(tmp_path / "in", "a.png", (".png",)))
    assert moved.name == "a.1.png" and moved.read_text() == "handed back"
    assert (tmp_path / "in" / "a.png").read_text() == "waiting" and not (tmp_path / "a.png").exists()
    assert [p.name for p in itertools.islice(numbered_names(tmp_path, "1.2.3", (".png",)), 3)] == [
        "1.2.3", "1.2.3.1", "1.2.3.2"], "a name without a kept suffix is numbered at its end"


def test_a_half_made_move_is_completed_not_copied(tmp_path: Path) -> None:
    """Killed between the link and the unlink (or a second caller between them): the file had two names,
    and the next move made a third copy that was processed again."""
    from trt_mass.atomic import move_without_replacing, numbered_names

    (tmp_path / "in").mkdir()
    (tmp_path / "a.png").write_text("one image")
    os.link(tmp_path / "a.png", tmp_path / "in" / "a.png")
    moved = move_without_replacing(tmp_path / "a.png", numbered_names(tmp_path / "in", "a.png", (".png",)))
    assert moved == tmp_path / "in" / "a.png" and os.listdir(tmp_path / "in") == ["a.png"]
    assert not (tmp_path / "a.png").exists()


def test_without_hard_links_the_move_checks_names_and_renames(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """vfat and some SMB mounts refuse links (EPERM): the SCP refused every image there."""
    from trt_mass.atomic import move_without_replacing, numbered_names

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.dcm").write_text("waiting")
    (tmp_path / "b.dcm").write_text("arrival")
    moved = move_without_replacing(tmp_path / "b.dcm", numbered_names(tmp_path / "in", "b.dcm", (".dcm",)))
    assert moved.name == "b.1.dcm" and moved.read_text() == "arrival"
    assert (tmp_path / "in" / "b.dcm").read_text() == "waiting"


def test_names_are_kept_within_the_filesystem_limit_and_need_not_be_utf8() -> None:
    from trt_mass.atomic import fitting_name, numbered_names

    long = "x" * 251 + ".png"
    numbered = [p.name for p in itertools.islice(numbered_names(Path("/f"), long, (".png",)), 3)]
    assert numbered[0] == long and all(len(n.encode()) <= 255 and n.endswith(f".{i}.png")
                                       for i, n in enumerate(numbered[1:], 1))
    assert numbered[1] != numbered[2]
    not_utf8 = os.fsdecode(b"caf\xe9" * 60)
    short = fitting_name(not_utf8, ".error.json")
    assert len(os.fsencode(short)) <= 180 and short.endswith(".error.json")
    assert fitting_name(os.fsdecode(b"caf\xe9.png")) == os.fsdecode(b"caf\xe9.png")
