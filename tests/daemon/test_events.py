"""The daemon's log lines: one per event, plain key=value or JSON, with what is given and nothing else."""

from __future__ import annotations

import io
import json
import re

from trt_mass.daemon.events import Counters, EventLog


def test_json_lines() -> None:
    stream = io.StringIO()
    EventLog("json", stream).event("failed", file="a.dcm", reason="not a mammogram")
    EventLog("json", stream).event("processed", file="b.dcm", findings=2, ms={"infer_ms": 1.5})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "failed" and first["file"] == "a.dcm" and first["reason"] == "not a mammogram"
    assert set(first) == {"time", "event", "file", "reason"}
    assert second["ms"] == {"infer_ms": 1.5} and second["findings"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", first["time"])


def test_plain_lines_quote_values_as_json() -> None:
    stream = io.StringIO()
    EventLog("plain", stream).event("duplicate", file="a b.dcm", sop_instance_uid=None)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert ' duplicate file="a b.dcm" sop_instance_uid=null' in line


def test_counters_start_at_zero_with_a_start_time() -> None:
    counters = Counters()
    assert (counters.processed, counters.failed, counters.duplicates, counters.retries) == (0, 0, 0, 0)
    assert counters.last_error is None and counters.started
