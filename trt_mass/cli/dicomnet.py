"""`trtmass send`: one-off C-STORE / STOW-RS of DICOM files, e.g. to test a route to the PACS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trt_mass.cli.errors import maps_errors


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--to", "destination", required=True, metavar="[tls:]AE@HOST:PORT|URL",
              help="A DICOM peer (C-STORE) or a DICOMweb STOW-RS URL.")
@click.option("--calling-ae", default="TRTMASS", show_default=True, help="Our AE title.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Our client certificate (PEM), for peers that require one.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None)
@click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The CA the peer's certificate must chain to [default: the system's].")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout.")
@maps_errors
def send(files: tuple[Path, ...], destination: str, calling_ae: str, tls_cert: Path | None, tls_key: Path | None,
         tls_ca: Path | None, timeout_s: float, as_json: bool) -> None:
    """Send FILES (DICOM files, or folders of them) to a PACS or DICOMweb server.

    In a folder only DICOM files are sent (a results folder also holds JSON and PNG); a file named
    on the command line must be DICOM.  Exit status 0 when every file was accepted, 7 when the peer
    could not be reached or refused the association, 3 when it refused some files (each is listed
    with the peer's status).
    """
    from trt_mass.dicomnet.peers import Destination, TlsFiles, check_ae_title
    from trt_mass.dicomnet.send import SendSettings, send_files
    from trt_mass.errors import ConfigError, InputError
    from trt_mass.inputs.dicom import is_dicom_file

    in_folders = {p for f in files if f.is_dir() for p in f.rglob("*") if p.is_file() and is_dicom_file(p)}
    paths = sorted({f for f in files if not f.is_dir()} | in_folders)
    if not paths:
        raise ConfigError(f"no DICOM files in {', '.join(map(str, files))}")
    settings = SendSettings(check_ae_title(calling_ae, "--calling-ae"), TlsFiles(tls_cert, tls_key, tls_ca),
                            timeout_s=timeout_s)
    outcomes = send_files(paths, Destination.parse(destination), settings)
    for outcome in outcomes:
        if as_json:
            click.echo(json.dumps(outcome.to_dict()))
        else:
            click.echo(f"{'sent' if outcome.delivered else 'NOT SENT'}  {outcome.status}  {outcome.path}")
    refused = sum(not o.delivered for o in outcomes)
    if refused:
        click.echo(f"{refused} of {len(outcomes)} files were not accepted by {destination}", err=True)
        sys.exit(InputError.exit_code)
