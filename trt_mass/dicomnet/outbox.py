"""The persistent outbox: results wait on disk until their destination has accepted them.

Layout: ROOT/outbox/<destination>/<result file>.dcm, one folder per destination, each file a hard link
to the result in results/ (a copy where links are impossible), put there atomically before the
result's JSON is written, so a result whose JSON exists is always either delivered or waiting.  A
file leaves the outbox as soon as its destination accepted it (trt_mass.dicomnet.send), and only then.
A destination that is down or refuses is retried with backoff; the outbox survives restarts.  A file
the peer refuses stays too (a rejected result is a configuration problem a person must see), so the
depth in the status file and the last error tell what is wrong; refused files go to the back of the
queue, so that they never hold back the files the peer takes.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trt_mass.daemon.events import EventLog
from trt_mass.daemon.retry import Backoff
from trt_mass.dicomnet.peers import Destination
from trt_mass.dicomnet.send import Outcome, SendSettings, send_files
from trt_mass.errors import TrtMassError

BATCH = 32  # files per association


@dataclass
class _State:
    backoff: Backoff
    next_try: float = 0.0
    last_error: str | None = None
    delivered: int = 0
    waiting: int = 0  # files in the folder, counted once at start and kept up to date (no listing per result)
    refusals: dict[str, int] = field(default_factory=dict)  # file name -> times refused since start


class Outbox:
    """The outbox folders of `destinations` under `root`, and the thread that empties them."""

    def __init__(self, root: Path, destinations: Sequence[Destination], settings: SendSettings, log: EventLog,
                 retry_initial_s: float = 1.0, retry_max_s: float = 60.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.root = root
        self.destinations = tuple(destinations)
        self.settings = settings
        self.log = log
        self.on_change = on_change
        self._states = {d.spec: _State(Backoff(retry_initial_s, retry_max_s)) for d in self.destinations}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.orphaned: dict[str, int] = {}  # folder name -> files, of folders no destination reads

    def folder(self, destination: Destination) -> Path:
        return self.root / destination.folder_name

    # ----------------------------------------------------------------------------- enqueue
    def put(self, results: Sequence[Path]) -> None:
        """Queue `results` (DICOM files) for every destination; durable when this returns."""
        for destination in self.destinations:
            folder = self.folder(destination)
            folder.mkdir(parents=True, exist_ok=True)
            for result in results:
                target = folder / result.name
                if not target.exists():  # counted before it can be seen (and delivered) by the sender
                    with self._lock:
                        self._states[destination.spec].waiting += 1
                _link_atomic(result, target)
            _fsync_dir(folder)
        self._wake.set()
        if self.on_change is not None:
            self.on_change()

    def pending(self, destination: Destination) -> list[Path]:
        """Waiting files of `destination`: those refused least often first, then oldest first."""
        folder = self.folder(destination)
        try:
            entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        refusals = self._states[destination.spec].refusals
        keyed = [((refusals.get(p.name, 0), mtime_ns, p.name), p) for p in entries
                 if (mtime_ns := _file_mtime_ns(p)) is not None]
        return [p for _, p in sorted(keyed)]

    def status(self) -> dict[str, object]:
        """Files waiting (in all and per destination), delivered since start, and the last errors."""
        with self._lock:
            states = {spec: (state.waiting, state.delivered, state.last_error) for spec, state in self._states.items()}
        return {"depth": sum(waiting for waiting, _, _ in states.values()),
                "destinations": {spec: {"waiting": waiting, "delivered": delivered, "last_error": error}
                                 for spec, (waiting, delivered, error) in states.items()},
                "last_error": self.last_error,
                "orphaned": self.orphaned}

    # ----------------------------------------------------------------------------- delivery
    def start(self) -> Outbox:
        for destination in self.destinations:
            self.folder(destination).mkdir(parents=True, exist_ok=True)
            for stale in self.folder(destination).glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            self._states[destination.spec].waiting = len(self.pending(destination))
        self.orphaned = self._orphaned_folders()
        for folder, count in self.orphaned.items():  # a destination renamed or removed: its files wait for nobody
            self.log.event("outbox_orphaned", folder=folder, waiting=count,
                           advice="no configured destination sends from it; move its files to the folder of "
                                  "the destination they are for, or remove them")
        self._thread = threading.Thread(target=self._run, name="trtmass-outbox", daemon=True)
        self._thread.start()
        return self

    def _orphaned_folders(self) -> dict[str, int]:
        """Outbox folders with files that no configured destination reads (its spec was changed)."""
        configured = {self.folder(d) for d in self.destinations}
        try:
            folders = [f for f in self.root.iterdir() if f.is_dir() and f not in configured]
        except OSError:
            return {}
        counts = {f.name: sum(1 for p in f.iterdir() if not p.name.startswith(".")) for f in folders}
        return {name: count for name, count in counts.items() if count}

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            worked = False
            for destination in self.destinations:
                if self._stop.is_set():
                    return
                try:
                    worked |= self.deliver_once(destination)
                except Exception as error:  # the thread must outlive any one failure
                    self._failed(destination, self._states[destination.spec], f"{type(error).__name__}: {error}")
            if not worked:
                self._wake.wait(self._wait_s())
                self._wake.clear()

    def _wait_s(self) -> float:
        now = time.monotonic()
        waits = [max(0.05, state.next_try - now) for state in self._states.values() if state.next_try > now]
        return min([*waits, 1.0])

    def deliver_once(self, destination: Destination) -> bool:
        """Send one batch to `destination` if it is due; True when something was delivered."""
        state = self._states[destination.spec]
        if time.monotonic() < state.next_try:
            return False
        batch = self.pending(destination)[:BATCH]
        if not batch:
            return False
        # What was sent is let go, not a newer result queued under the same name meanwhile
        sent_versions = {path: _version(path) for path in batch}
        delivered: list[Outcome] = []
        refused: list[Outcome] = []

        def settle(outcome: Outcome) -> None:
            if outcome.delivered:
                self._let_go(destination, state, outcome, sent_versions[outcome.path])
                delivered.append(outcome)
            elif _version(outcome.path) is None:  # removed by someone meanwhile: nothing left to send
                self._forget(destination, state, outcome.path)
            else:
                state.refusals[outcome.path.name] = state.refusals.get(outcome.path.name, 0) + 1
                refused.append(outcome)
            if self._stop.is_set():  # shutting down: the association is released after this file
                raise _Stopping

        try:
            send_files(batch, destination, self.settings, on_outcome=settle)
        except _Stopping:
            return bool(delivered)
        except TrtMassError as error:
            self._failed(destination, state, str(error))
            return bool(delivered)
        if refused:
            self._failed(destination, state, _summary(refused))
        else:
            state.backoff.reset()
            state.last_error = None
        if self.on_change is not None:
            self.on_change()
        return bool(delivered)

    def _let_go(self, destination: Destination, state: _State, outcome: Outcome,
                sent_version: tuple[int, int] | None) -> None:
        if sent_version is not None and _version(outcome.path) == sent_version:
            outcome.path.unlink(missing_ok=True)
            with self._lock:
                state.waiting = max(0, state.waiting - 1)
        state.refusals.pop(outcome.path.name, None)
        with self._lock:
            state.delivered += 1
        self.log.event("delivered", file=outcome.path.name, destination=destination.spec, status=outcome.status)

    def _forget(self, destination: Destination, state: _State, path: Path) -> None:
        state.refusals.pop(path.name, None)
        with self._lock:
            state.waiting = max(0, state.waiting - 1)
        self.log.event("outbox_file_removed", file=path.name, destination=destination.spec)

    def _failed(self, destination: Destination, state: _State, error: str) -> None:
        delay = state.backoff.next_delay()
        state.next_try = time.monotonic() + delay
        state.last_error = self.last_error = error if error.startswith(destination.spec) else \
            f"{destination.spec}: {error}"
        self.log.event("delivery_failed", destination=destination.spec, error=error, retry_in_s=round(delay, 1),
                       waiting=state.waiting)
        if self.on_change is not None:
            self.on_change()


class _Stopping(Exception):
    """Raised from the outcome callback to end a batch early at shutdown."""


def _file_mtime_ns(path: Path) -> int | None:
    """None for anything but a regular file, or a file gone since the folder was listed."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns if stat.S_ISREG(info.st_mode) else None


def _version(path: Path) -> tuple[int, int] | None:
    """(inode, mtime): `put` replaces a queued file by a new link, so a new version has another inode."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _summary(refused: list[Outcome]) -> str:
    first = refused[0]
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    return f"{first.path.name}: {first.status}{more}"


def _link_atomic(source: Path, target: Path) -> None:
    temporary = target.parent / f".{target.name}.tmp"
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:  # another filesystem, or no hard links there: a copy, fsynced
        shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
    os.replace(temporary, target)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
