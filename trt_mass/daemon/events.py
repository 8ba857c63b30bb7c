"""What the watch daemon says about itself: one log line per event, and the counters of its status file.

Only file names, UIDs, counts and error reasons are logged: never patient attributes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


def now_text() -> str:
    """Local time with its offset, as every log line and the status file state it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class EventLog:
    """One structured line per event on stdout (journald picks it up): plain key=value or JSON."""

    def __init__(self, log_format: str = "plain", stream: TextIO | None = None) -> None:
        self.log_format = log_format
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def event(self, name: str, **fields: Any) -> None:
        stamp = now_text()
        if self.log_format == "json":
            line = json.dumps({"time": stamp, "event": name, **fields}, default=str)
        else:
            line = " ".join([stamp, name] + [f"{k}={json.dumps(v, default=str)}" for k, v in fields.items()])
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


@dataclass
class Counters:
    """Totals since the daemon started, as status.json shows them."""

    processed: int = 0
    failed: int = 0
    duplicates: int = 0
    retries: int = 0
    last_error: str | None = None
    started: str = field(default_factory=now_text)
