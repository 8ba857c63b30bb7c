"""Retry with backoff, as the daemon waits out a failing model, detection or results folder."""

from __future__ import annotations

import pytest

from trt_mass.daemon.retry import Backoff, retry
from trt_mass.errors import InputError


def test_backoff_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


class Flaky:
    """Fails `failures` times with `error`, then returns "done"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def _retry(attempt: Flaky, stop_after: int | None = None, retry_on: tuple[type[Exception], ...] = (Exception,)):
    reported: list[tuple[str, float]] = []
    slept: list[float] = []
    value = retry(attempt, backoff=Backoff(1.0, 4.0),
                  should_stop=lambda: stop_after is not None and attempt.calls >= stop_after,
                  on_failure=lambda error, delay: reported.append((str(error), delay)),
                  sleep=slept.append, retry_on=retry_on)
    return value, reported, slept


def test_failures_are_reported_and_waited_out() -> None:
    attempt = Flaky(3, OSError("disk full"))
    value, reported, slept = _retry(attempt)
    assert value == "done" and attempt.calls == 4
    assert reported == [("disk full", 1.0), ("disk full", 2.0), ("disk full", 4.0)]
    assert slept == [1.0, 2.0, 4.0]


def test_stopping_while_failing_gives_none() -> None:
    attempt = Flaky(100, RuntimeError("no GPU"))
    value, reported, _ = _retry(attempt, stop_after=2)
    assert value is None and attempt.calls == 2 and len(reported) == 2


def test_input_errors_are_never_retried() -> None:
    attempt = Flaky(1, InputError("a.dcm", "not a mammogram"))
    with pytest.raises(InputError, match="not a mammogram"):
        _retry(attempt)
    assert attempt.calls == 1


def test_only_the_kinds_asked_for_are_retried() -> None:
    attempt = Flaky(1, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        _retry(attempt, retry_on=(OSError,))
    assert attempt.calls == 1


def test_nothing_is_final_where_the_caller_says_so() -> None:
    """Loading a model: whatever it raises is the model's problem, so even an InputError is retried."""
    attempt = Flaky(1, InputError("model.onnx", "odd"))
    value = retry(attempt, backoff=Backoff(1.0, 2.0), should_stop=lambda: False, on_failure=lambda e, d: None,
                  sleep=lambda s: None, final=())
    assert value == "done" and attempt.calls == 2


def test_the_first_attempt_runs_even_when_stopping() -> None:
    """SIGTERM during inference: the file at hand is finished and written, not thrown away."""
    value = retry(Flaky(0, OSError("unused")), backoff=Backoff(1.0, 2.0), should_stop=lambda: True,
                  on_failure=lambda e, d: None, sleep=lambda s: None)
    assert value == "done"
    failing = Flaky(5, OSError("disk full"))
    slept: list[float] = []
    value = retry(failing, backoff=Backoff(1.0, 2.0), should_stop=lambda: True, on_failure=lambda e, d: None,
                  sleep=slept.append)
    assert value is None and failing.calls == 1 and slept == [], "a failure is not retried once stopping"
