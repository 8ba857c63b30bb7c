"""Options several commands share, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from trt_mass.inputs.decoders import DECODER_NAMES

F = TypeVar("F", bound=Callable[..., object])


def decoder_options(default: str | None = "auto", threads_default: str = "every core this process may use"
                    ) -> Callable[[F], F]:
    """--decoder and --decode-threads (trt_mass.inputs.decoders.open_decoder); None defaults leave the
    value to a configuration file (watch)."""
    def decorate(command: F) -> F:
        command = click.option(
            "--decode-threads", type=click.IntRange(min=1), default=None,
            help=f"OpenJPEG threads per JPEG 2000 / HTJ2K decode [default: {threads_default}].")(command)
        return click.option(
            "--decoder", type=click.Choice(DECODER_NAMES), default=default, show_default=default is not None,
            help="JPEG 2000 / HTJ2K pixel data: nvimgcodec (GPU), openjpeg (CPU threads) or pydicom; auto: "
                 "nvimgcodec when it decodes on a GPU here, else openjpeg. Other transfer syntaxes always go "
                 "through pydicom.")(command)

    return decorate
