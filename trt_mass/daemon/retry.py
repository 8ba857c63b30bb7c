"""Retry with exponential backoff: how the watch daemon waits out a failing model, detection or disk.

The input that is being worked on stays where it is (processing/) while this waits; an InputError is the
input's own fault, so it is never retried: it propagates and the input goes to failed/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from trt_mass.errors import InputError

T = TypeVar("T")


class Backoff:
    """Delays of `initial_s`, then twice the last, at most `max_s`."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self._next = initial_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """Start again from `initial_s` (after a success)."""
        self._next = self.initial_s


def retry(
    attempt: Callable[[], T],
    *,
    backoff: Backoff,
    should_stop: Callable[[], bool],
    on_failure: Callable[[Exception, float], None],
    sleep: Callable[[float], None],
    retry_on: tuple[type[Exception], ...] = (Exception,),
    final: tuple[type[Exception], ...] = (InputError,),
) -> T | None:
    """Call `attempt` until it returns, and return what it returned; None when stopping after a failure.

    The first attempt always runs, stopping or not: a stop request finishes the work at hand (SIGTERM
    during inference still writes that result); only a failing attempt is not tried again once
    `should_stop()`.  After a failure of a `retry_on` kind: `on_failure(error, delay)`, then
    `sleep(delay)` (which should wake up early when stopping).  `final` kinds (by default InputError: the
    input's own fault) and anything outside `retry_on` propagate.
    """
    while True:
        try:
            return attempt()
        except final:
            raise
        except retry_on as error:
            delay = backoff.next_delay()
            on_failure(error, delay)
            if should_stop():
                return None
            sleep(delay)
            if should_stop():
                return None
