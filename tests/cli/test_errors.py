"""How commands report library errors: one line on stderr and the error's exit code; bugs keep their traceback."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from trt_mass.cli.errors import maps_errors
from trt_mass.errors import BackendUnavailableError, InputError, ModelError


@click.command()
@click.argument("what")
@maps_errors
def failing(what: str) -> None:
    errors = {"model": ModelError("m.onnx: no such model file"),
              "input": InputError("a.dcm", "not a mammogram"),
              "backend": BackendUnavailableError("tensorrt is not installed"),
              "disk": FileExistsError(17, "File exists", "mk.py"),
              "bug": ZeroDivisionError("a bug")}
    raise errors[what]


@pytest.mark.parametrize(("what", "code", "line"), [
    ("model", 4, "trtmass: error: m.onnx: no such model file"),
    ("input", 3, "trtmass: error: a.dcm: not a mammogram"),
    ("backend", 5, "trtmass: error: tensorrt is not installed"),
    ("disk", 1, "trtmass: error: [Errno 17] File exists: 'mk.py'"),  # e.g. -o mk.py/x.onnx: no traceback
])
def test_library_errors_become_one_line_and_their_exit_code(what: str, code: int, line: str) -> None:
    result = CliRunner().invoke(failing, [what])
    assert result.exit_code == code
    assert result.stderr == line + "\n" and "Traceback" not in result.output


def test_a_bug_is_not_dressed_up() -> None:
    result = CliRunner().invoke(failing, ["bug"])
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)
