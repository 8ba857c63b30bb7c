"""`trtmass watch`: the watch-folder daemon (the library is trt_mass.daemon)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trt_mass.cli.errors import maps_errors
from trt_mass.cli.options import decoder_options, triton_options
from trt_mass.runners.select import DEPLOYABLE_CHOICES


@click.command()
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Engine-graph ONNX.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="TOML file with the settings (see systemd/trtmass-watch.toml).")
@click.option("--polling/--inotify", default=None, help="Poll (network shares) instead of inotify.")
@click.option("--backend", type=click.Choice(DEPLOYABLE_CHOICES), default=None,
              help="ort, trt (the model's engine in its folder), triton (a Triton server runs --model) or auto "
                   "(TensorRT when an engine fits this GPU).")
@triton_options(model_default=None)
@click.option("--all-views/--tissue-views", default=None,
              help="Run every view even when the model selects the views with tissue [default: its selection].")
@click.option("--allow-engine-host-code/--no-engine-host-code", default=None,
              help="Allow version-compatible TensorRT engines (their embedded runtime runs as host code).")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The only folder TensorRT engines are loaded from [default: the model's folder].")
@click.option("--threads", type=int, default=None, help="ONNX Runtime intra-op threads.")
@click.option("--delete-done/--keep-done", default=None, help="Delete processed inputs instead of moving them.")
@click.option("--overlay/--no-overlay", default=None, help="Also write overlay PNGs.")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None)
@click.option("--dicom-out", default=None, help="DICOM results: any of sr,gsps,sc, or 'none' (default: all three).")
@click.option("--raster-bits", type=click.IntRange(8, 16), default=None,
              help="Significant bits of 16-bit PNG/TIFF arrivals [default: the file's own, else its maximum].")
@click.option("--operating-point", default=None, metavar="NAME|SCORE|all",
              help="Findings shown on overlays and DICOM results [default: the model's 1fppi point, else all].")
@decoder_options(default=None, threads_default="the cores shared among the decode workers")
@click.option("--decode-workers", type=click.IntRange(min=1), default=None,
              help="Files decoded side by side [default: one per core, 1 to 4].")
@click.option("--canvas-in-workers/--canvas-on-engine-thread", default=None,
              help="Letterbox and choose views in the decode workers, leaving the engine thread to the engine "
                   "[default: with 2 or more decode workers].")
@click.option("--listen", default=None, metavar="[AE@]PORT",
              help="Also receive mammograms by DICOM C-STORE on this port (e.g. TRTMASS@11112).")
@click.option("--listen-address", default=None, help="Address the listener binds [default: 0.0.0.0, every interface].")
@click.option("--allow-caller", "allowed_callers", multiple=True, metavar="AE[@ADDRESS]",
              help="A calling AE title allowed to send (repeat); default: any, with a warning.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The listener's certificate (PEM): TLS on the listening port.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The key of --tls-cert (PEM).")
@click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Callers must present a certificate signed by this CA (PEM).")
@click.option("--to", "destinations", multiple=True, metavar="[tls:]AE@HOST:PORT|URL",
              help="Deliver DICOM results there (repeat): a DICOM peer, or a DICOMweb STOW-RS URL.")
@click.option("--calling-ae", default=None, help="Our AE title when sending [default: TRTMASS].")
@maps_errors
def watch(root: Path | None, model: Path | None, config_file: Path | None, polling: bool | None,
          backend: str | None, triton_url: str | None, triton_model: str | None, triton_timeout_s: float | None,
          all_views: bool | None,
          allow_engine_host_code: bool | None, model_dir: Path | None, threads: int | None,
          delete_done: bool | None,
          overlay: bool | None, log_format: str | None, dicom_out: str | None, raster_bits: int | None,
          operating_point: str | None, decoder: str | None, decode_threads: int | None,
          decode_workers: int | None, canvas_in_workers: bool | None, listen: str | None, listen_address: str | None,
          allowed_callers: tuple[str, ...], tls_cert: Path | None, tls_key: Path | None, tls_ca: Path | None,
          destinations: tuple[str, ...], calling_ae: str | None) -> None:
    """Watch ROOT/incoming and turn every complete mammogram into ROOT/results/<SOP UID>.json.

    With --listen, mammograms sent by C-STORE land in ROOT/incoming too (acknowledged once on disk);
    with --to, the DICOM results wait in ROOT/outbox/ until each destination has accepted them.

    Settings: flags > TRTMASS_WATCH_* environment > --config TOML > defaults.  SIGTERM finishes the
    current file and exits; a restart picks up anything left in processing/.
    """
    import signal

    from trt_mass.daemon.config import load_config
    from trt_mass.daemon.service import WatchService

    flags = {"root": root, "model": model, "polling": polling, "backend": backend, "threads": threads,
             "triton_url": triton_url, "triton_model": triton_model, "triton_timeout_s": triton_timeout_s,
             "all_views": all_views,
             "delete_done": delete_done, "overlay": overlay, "log_format": log_format, "dicom_out": dicom_out,
             "allow_engine_host_code": allow_engine_host_code, "model_dir": model_dir, "raster_bits": raster_bits,
             "operating_point": operating_point, "decoder": decoder, "decode_threads": decode_threads,
             "decode_workers": decode_workers, "canvas_in_workers": canvas_in_workers,
             "listen": listen, "listen_address": listen_address,
             "allowed_callers": list(allowed_callers) or None, "tls_cert": tls_cert, "tls_key": tls_key,
             "tls_ca": tls_ca, "destinations": list(destinations) or None, "calling_ae": calling_ae}
    config = load_config(flags, config_file)
    service = WatchService(config)
    for signal_number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # HUP: a closed terminal or ssh
        signal.signal(signal_number, lambda *_: service.request_stop())
    sys.exit(service.run())
