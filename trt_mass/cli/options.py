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


def triton_options(model_default: str | None = "trt_mass") -> Callable[[F], F]:
    """--triton-url, --triton-model and --triton-timeout of `--backend triton` (trt_mass.runners.triton); None
    defaults leave the value to a configuration file (watch)."""
    def decorate(command: F) -> F:
        command = click.option(
            "--triton-timeout", "triton_timeout_s", type=click.FloatRange(min=0.1),
            default=None if model_default is None else 30.0, show_default=model_default is not None,
            help="Seconds a request to the Triton server may take before it is retried.")(command)
        command = click.option(
            "--triton-model", default=model_default, show_default=model_default is not None,
            help="The model's name on the Triton server.")(command)
        return click.option(
            "--triton-url", default=None, metavar="grpc://HOST:8001|http://HOST:8000",
            help="The Triton server of --backend triton (trtmass serve, or a stock server with a "
                 "trtmass triton-repo repository).")(command)

    return decorate
