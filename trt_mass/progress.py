"""A status line for long work (train, calibrate, eval, synth) that suits a terminal and a log alike.

On a terminal the line is rewritten in place. Written to a file, a pipe or the journal, a carriage return
per step turns into one endless line (a 22-epoch training wrote 2 MB of it); there the line is printed
whole, at most once per `log_every_s` and once at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_EVERY_S = 30.0


class ProgressLine:
    """`update(text)` per step, `message(text)` for a line of its own, `close()` (or `with`) at the end.

    Disabled (`enabled=False`) it prints nothing at all, so callers need no `if progress:` of their own.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, log_every_s: float = LOG_EVERY_S) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.log_every_s = log_every_s
        self._terminal = _is_terminal(self.stream)
        self._pending = ""  # the latest text not yet shown on a log
        self._shown_width = 0  # characters of the line on the terminal now
        self._last_logged: float | None = None

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        if self._terminal:
            padding = " " * max(0, self._shown_width - len(text))  # the tail of a longer previous line
            self.stream.write(f"\r{text}{padding}")
            self.stream.flush()
            self._shown_width = len(text)
            return
        self._pending = text
        now = time.monotonic()
        if self._last_logged is None or now - self._last_logged >= self.log_every_s:
            self._log_pending(now)

    def message(self, text: str) -> None:
        """A line of its own (a skipped file, a validation result) that the status line does not overwrite."""
        if not self.enabled:
            return
        self._end_status_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._end_status_line()

    def _end_status_line(self) -> None:
        if self._terminal and self._shown_width:
            self.stream.write("\n")
            self.stream.flush()
            self._shown_width = 0
        elif self._pending:
            self._log_pending(time.monotonic())

    def _log_pending(self, now: float) -> None:
        self.stream.write(self._pending + "\n")
        self.stream.flush()
        self._pending = ""
        self._last_logged = now


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False
