"""How every `trtmass` command reports a library error: one line on stderr and the error's exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from trt_mass.errors import TrtMassError

F = TypeVar("F", bound=Callable[..., Any])


def maps_errors(command: F) -> F:
    """Wrap a click command: TrtMassError -> message + exit code, an OSError (with its file) -> message + exit 1;
    anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TrtMassError as error:
            click.echo(f"trtmass: error: {error}", err=True)
            sys.exit(error.exit_code)
        except OSError as error:  # the file system said no (a file where a folder must be, no space, no access)
            click.echo(f"trtmass: error: {error}", err=True)
            sys.exit(TrtMassError.exit_code)

    return wrapper  # type: ignore[return-value]
