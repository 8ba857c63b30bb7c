"""The watch daemon as a real process, and the tiny model it runs: shared by the daemon and DICOM node tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FAST = {"TRTMASS_WATCH_POLL_INTERVAL_S": "0.1", "TRTMASS_WATCH_STABLE_POLLS": "2",
        "TRTMASS_WATCH_SETTLE_S": "0.15", "TRTMASS_WATCH_INCOMPLETE_GRACE_S": "1",
        "TRTMASS_WATCH_RETRY_INITIAL_S": "0.2", "TRTMASS_WATCH_RETRY_MAX_S": "1",
        "TRTMASS_WATCH_STATUS_INTERVAL_S": "0.3", "TRTMASS_WATCH_THREADS": "1", "TRTMASS_WATCH_LOG_FORMAT": "json"}


_STARTED: list[subprocess.Popen[bytes]] = []


def kill_leftover_daemons() -> None:
    """SIGKILL every daemon a test started and left running (a failed assertion skips its terminate())."""
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


class Daemon:
    def __init__(self, root: Path, model: Path, polling: bool = False, env: dict[str, str] | None = None) -> None:
        self.root, self.model, self.polling = root, model, polling
        self.args: tuple[str, ...] = ()  # extra flags, kept for restarts
        self.env = {**os.environ, **FAST, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"{root.name}.log"

    def start(self, *args: str) -> Daemon:
        self.args = args or self.args
        command = [sys.executable, "-m", "trt_mass.cli", "watch", str(self.root), "--model", str(self.model),
                   *self.args]
        if self.polling:
            command.append("--polling")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(self.process)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def events(log: Path) -> list[dict[str, object]]:
    """The JSON events of a daemon's log."""
    import json

    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
