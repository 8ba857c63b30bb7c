"""The status line of long work: rewritten in place on a terminal, whole lines (rarely) in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from trt_mass.progress import ProgressLine

CLI = [sys.executable, "-m", "trt_mass.cli"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_rewritten_and_cleared_of_a_longer_tail() -> None:
    terminal = Terminal()
    with ProgressLine(stream=terminal) as line:
        line.update("step 9/10 (long text)")
        line.update("step 10/10")
    assert terminal.getvalue() == "\rstep 9/10 (long text)\rstep 10/10           \n"


def test_a_log_gets_whole_lines_the_first_and_the_last_not_one_per_step() -> None:
    log = io.StringIO()
    with ProgressLine(stream=log, log_every_s=3600) as line:
        for step in range(1, 1001):
            line.update(f"step {step}/1000")
    assert log.getvalue() == "step 1/1000\nstep 1000/1000\n"


def test_a_log_gets_a_line_per_interval() -> None:
    log = io.StringIO()
    with ProgressLine(stream=log, log_every_s=0) as line:
        line.update("a")
        line.update("b")
    assert log.getvalue() == "a\nb\n"


def test_a_message_keeps_the_status_line_before_it() -> None:
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        with ProgressLine(stream=stream, log_every_s=3600) as line:
            line.update("loading 1/3")
            line.update("loading 2/3")
            line.message("skipped b.png: not an image")
            line.update("loading 3/3")
    assert terminal.getvalue() == "\rloading 1/3\rloading 2/3\nskipped b.png: not an image\n\rloading 3/3\n"
    assert log.getvalue() == "loading 1/3\nloading 2/3\nskipped b.png: not an image\nloading 3/3\n"


def test_disabled_prints_nothing() -> None:
    log = Terminal()
    with ProgressLine(enabled=False, stream=log) as line:
        line.update("x")
        line.message("y")
    assert log.getvalue() == ""


def test_synth_to_a_log_file_writes_lines_without_carriage_returns(tmp_path: Path) -> None:
    log = tmp_path / "synth.log"
    with log.open("w") as stderr:
        subprocess.run([*CLI, "synth", str(tmp_path / "phantoms"), "--count", "3", "--seed", "2", "--scale", "0.05"],
                       check=True, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ})
    text = log.read_text()
    assert "\r" not in text
    assert text.splitlines()[-1] == "synth 3/3"
