"""Finding complete files in incoming/: inotify events (watchdog) or polling, then a completeness check."""

from __future__ import annotations

import stat as stat_module
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPORARY_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart", ".swp")
# A file that never parses is still taken after this many times the normal wait, and then fails
# with its reason in failed/ (a corrupt file must not sit in incoming/ for ever).
GRACE_FACTOR = 5


def is_temporary(name: str) -> bool:
    lower = name.lower()
    return name.startswith(".") or lower.endswith(TEMPORARY_SUFFIXES) or lower.endswith("~")


def looks_complete(path: Path) -> bool:
    """True when the file parses as a whole: a DICOM dataset with all its pixel data, or an image."""
    from trt_mass.inputs.dicom import is_dicom_file

    try:
        if is_dicom_file(path):
            import pydicom

            dataset = pydicom.dcmread(path)
            if len(dataset) == 0:
                # The end of the file came first (e.g. encapsulated pixel data before its delimiter):
                # pydicom then warns and drops what it read.  Warnings cannot be caught per thread, so
                # the empty dataset is the sign.
                return False
            pixels = dataset.get("PixelData")
            if pixels is None:
                return True
            if not dataset.file_meta.TransferSyntaxUID.is_compressed:
                expected = int(dataset.Rows) * int(dataset.Columns) * int(dataset.BitsAllocated) // 8
                expected *= int(dataset.get("NumberOfFrames", 1) or 1)
                return len(pixels) >= expected
            return True
        from PIL import Image

        with Image.open(path) as image:
            image.load()
        return True
    except Exception:
        return False


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    changed_at: float
    stable_polls: int = 0
    triggered: bool = False
    parsed_incomplete: bool = False  # this size and mtime did not parse: no need to parse them again


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        stat = folder.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class Discovery:
    """Tracks files in `folder` and says which are ready to take.

    inotify mode: a close-write or moved-to event marks a file; it is ready once its size and mtime
    have not changed for `settle_s` and it parses.  Polling mode: ready once size and mtime stayed
    the same for `stable_polls` polls and it parses.  Either way a stable file that never parses is
    taken after GRACE_FACTOR times the wait and at least `incomplete_grace_s` unchanged, so that it fails
    with a reason instead of lingering, while a writer that pauses mid-file (a network share) gets time.
    """

    def __init__(self, folder: Path, polling: bool, stable_polls: int, settle_s: float, rescan_s: float,
                 incomplete_grace_s: float = 60.0) -> None:
        self.folder = folder
        self.polling = polling
        self.stable_polls = stable_polls
        self.settle_s = settle_s
        self.incomplete_grace_s = incomplete_grace_s
        self.rescan_s = rescan_s
        self._seen: dict[str, _Seen] = {}
        self._events: set[str] = set()
        self._lock = threading.Lock()
        self._observer: Any = None
        self._last_rescan = 0.0
        self._folders = {folder}
        self._watched: tuple[int, int] | None = None
        self._complete: set[str] = set()
        self._arrived = threading.Event()

    def start(self) -> None:
        if self.polling:
            return
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        discovery = self

        class Handler(FileSystemEventHandler):
            def on_closed(self, event: Any) -> None:
                if not event.is_directory:
                    discovery._mark(Path(str(event.src_path)))

            def on_created(self, event: Any) -> None:
                # A file moved in from another folder arrives as IN_MOVED_TO without its IN_MOVED_FROM, which
                # watchdog reports as created; a file created here is marked early, and waits for settle + parse.
                if not event.is_directory:
                    discovery._mark(Path(str(event.src_path)))

            def on_moved(self, event: Any) -> None:
                if not event.is_directory:
                    discovery._mark(Path(str(event.dest_path)))

        # watchdog does not follow a symlinked folder (it watched the link, which never changes): watch the
        # folder it points to, whose events name that real path.
        real = self.folder.resolve()
        self._folders = {self.folder, real}
        self._watched = _identity(self.folder)
        self._observer = Observer()
        self._observer.schedule(Handler(), str(real), recursive=False)
        self._observer.start()
        self._last_rescan = 0.0  # first tick scans what arrived while we were down

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _mark(self, path: Path) -> None:
        if path.parent in self._folders and not is_temporary(path.name):
            with self._lock:
                self._events.add(path.name)

    def complete(self, name: str) -> None:
        """`name` was written, fsynced and renamed in by our own listener: ready at once, no settle wait."""
        with self._lock:
            self._complete.add(name)
        self._arrived.set()

    def wait(self, timeout: float) -> None:
        """Sleep until `timeout` passes or a complete file is announced."""
        self._arrived.wait(timeout)
        self._arrived.clear()

    def pending_count(self) -> int:
        return len(self._seen)

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)

    def ready(self, now: float | None = None) -> list[str]:
        """Names that can be taken now, oldest change first."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events, self._events = self._events, set()
            complete, self._complete = self._complete, set()
        if self.polling or now - self._last_rescan >= self.rescan_s:
            self._last_rescan = now
            self._rewatch_if_replaced()
            names = {p.name for p in self._list()}
            for name in list(self._seen):
                if name not in names:
                    del self._seen[name]
            triggered = names if not self.polling else set()
        else:
            names = set(self._seen) | events
            triggered = events
        ready = [name for name in sorted(complete) if (self.folder / name).is_file()]
        for name in sorted(names - complete, key=lambda n: self._seen[n].changed_at if n in self._seen else now):
            if self._update(name, now, name in triggered):
                ready.append(name)
        return ready

    def _rewatch_if_replaced(self) -> None:
        """incoming/ removed and made again (or its link pointed elsewhere): the watch on the old folder
        sees nothing more, so watch the new one."""
        if self._observer is not None and _identity(self.folder) not in (None, self._watched):
            self.stop()
            self.start()

    def _list(self) -> list[Path]:
        try:
            # Not only regular files: a FIFO or device is taken at once and fails with its reason (never opened
            # here: that would block).  Folders and dangling links are left alone.
            return [p for p in self.folder.iterdir() if not is_temporary(p.name) and p.exists() and not p.is_dir()]
        except OSError:
            return []

    def _update(self, name: str, now: float, triggered: bool) -> bool:
        try:
            stat = (self.folder / name).stat()
        except OSError:
            self._seen.pop(name, None)
            return False
        if stat_module.S_ISDIR(stat.st_mode):
            self._seen.pop(name, None)
            return False
        if not stat_module.S_ISREG(stat.st_mode):
            return True  # a FIFO, socket or device: opening it could block; the reader refuses it by its kind
        seen = self._seen.get(name)
        if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            self._seen[name] = _Seen(stat.st_size, stat.st_mtime_ns, now, 0, triggered or bool(seen and seen.triggered))
            return False
        seen.stable_polls += 1
        seen.triggered = seen.triggered or triggered
        unchanged_s = now - seen.changed_at
        if self.polling:
            waited_enough = seen.stable_polls >= self.stable_polls
            grace_over = seen.stable_polls >= self.stable_polls * GRACE_FACTOR
        else:
            if not seen.triggered:
                return False
            waited_enough = unchanged_s >= self.settle_s
            grace_over = unchanged_s >= max(self.settle_s, 1.0) * GRACE_FACTOR
        if not waited_enough:
            return False
        if grace_over and unchanged_s >= self.incomplete_grace_s:
            return True
        if seen.parsed_incomplete:
            return False
        seen.parsed_incomplete = not looks_complete(self.folder / name)
        return not seen.parsed_incomplete
