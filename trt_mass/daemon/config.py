"""Typed configuration of `trtmass watch`: defaults < TOML file < TRTMASS_WATCH_* environment < flags."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from trt_mass.errors import ConfigError
from trt_mass.inputs.decoders import DECODER_NAMES, decode_plan
from trt_mass.outputs.dicom import parse_kinds
from trt_mass.outputs.operating_point import check_operating_point
from trt_mass.runners.select import DEPLOYABLE_CHOICES

if TYPE_CHECKING:
    from trt_mass.dicomnet.peers import Caller, Destination, ListenSpec

ENV_PREFIX = "TRTMASS_WATCH_"


def default_canvas_in_workers(decode_workers: int) -> bool:
    """Whether the decode workers make the canvases when the settings do not say: from 2 workers (one
    worker that resizes in line after its decode slows the daemon: benchmarks/RESULTS.md, issue #19)."""
    return decode_workers >= 2


@dataclass(frozen=True)
class WatchConfig:
    """Every setting of the daemon (keys of the TOML file and, upper-cased, of TRTMASS_WATCH_*).

    Attributes:
        root: the watched tree; the folders below default to root/<name> (one filesystem, so that
            moves are atomic renames).
        polling: poll instead of inotify (network shares: SMB/NFS deliver no inotify events).
        poll_interval_s: time between polls (and between checks of an inotify-announced file).
        stable_polls: a polled file is taken when size and mtime stayed the same this many polls.
        settle_s: an inotify-announced file must keep its size and mtime this long before it is taken.
        rescan_s: inotify mode also rescans incoming/ this often, in case an event was missed.
        incomplete_grace_s: a file that does not parse yet is taken (and fails as truncated) only once it
            has been unchanged this long: a writer on a share may pause mid-file.
        delete_done: delete processed inputs instead of moving them to done/.
        queue_size: decoded images waiting for the engine (backpressure for the reader).
        retry_initial_s, retry_max_s: backoff while the model or the result folder fails.
        status_interval_s: how often the status file is rewritten when idle.
        log_format: "plain" or "json".
        dicom_out: DICOM results for DICOM inputs, any of "sr,gsps,sc" (all by default), or "none".
        backend: "ort", "trt" (the engine of `model` in its folder, or an engine file), "triton" or "auto".
        triton_url, triton_model, triton_timeout_s: the Triton server of backend "triton" (`model` is the
            .onnx the served model must be); a server that is away keeps the files waiting, retried.
        all_views: run every view even when the model selects the views with tissue.
        allow_engine_host_code: allow version-compatible TensorRT engines (their lean runtime runs as host code).
        model_dir: the only folder TensorRT engines are looked up in and loaded from (default: the model's).
        raster_bits: significant bits of 16-bit PNG/TIFF arrivals (default: the file's statement, else its maximum).
        operating_point: findings shown on overlays and DICOM results: "1fppi" (or another of the model's
            points), a score, or "all" (default: the model's 1-FPPI point, else all, with a warning).
        decoder: JPEG 2000 / HTJ2K pixel data: "auto", "nvimgcodec", "openjpeg" or "pydicom".
        decode_workers: files decoded side by side (default: one per core, 1 to 4).
        decode_threads: OpenJPEG threads per decode (default: the cores shared among the workers).
        canvas_in_workers: the decode workers also letterbox each image onto the canvas and choose its
            views, so that the engine thread only runs the engine, the findings and the writing (default:
            when there are 2 or more decode workers; one worker would do it after its decode, in line).
        listen: "[AE@]PORT": also receive mammograms by C-STORE (trt_mass.dicomnet.scp); None: folder only.
        listen_address: the address the listener binds ("0.0.0.0": every interface).
        allowed_callers: calling AE titles allowed to associate, "AE" or "AE@ADDRESS", comma-separated
            (None: any caller, with a warning in the log).
        tls_cert, tls_key: the listener's certificate and key (PEM): TLS on the listening port.
        tls_ca: callers must present a certificate this CA signed (mutual TLS).
        max_pdu: the largest PDU the listener receives, bytes.
        max_associations: associations served at once; more are refused.
        network_timeout_s: an association idle this long is closed.
        destinations: where DICOM results go, comma-separated: "[tls:]AE@HOST:PORT" (C-STORE) or a
            STOW-RS URL; each result waits in the outbox until its destination accepted it.
        calling_ae: our AE title when sending.
        send_tls_cert, send_tls_key, send_tls_ca: our client certificate, its key, and the CA that the
            TLS destinations' certificates must chain to.
        receiving: where the listener writes an instance before renaming it into incoming/.
        outbox: the outbox folder (one subfolder per destination).
    """

    root: Path
    model: Path | None = None
    backend: str = "ort"
    threads: int | None = None
    triton_url: str | None = None
    triton_model: str = "trt_mass"
    triton_timeout_s: float = 30.0
    all_views: bool = False
    incoming: Path | None = None
    processing: Path | None = None
    done: Path | None = None
    results: Path | None = None
    failed: Path | None = None
    status_file: Path | None = None
    polling: bool = False
    poll_interval_s: float = 1.0
    stable_polls: int = 3
    settle_s: float = 0.3
    rescan_s: float = 30.0
    incomplete_grace_s: float = 60.0
    delete_done: bool = False
    overlay: bool = False
    queue_size: int = 2
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    status_interval_s: float = 5.0
    log_format: str = "plain"
    dicom_out: str = "sr,gsps,sc"
    allow_engine_host_code: bool = False
    model_dir: Path | None = None
    raster_bits: int | None = None
    operating_point: str | None = None
    decoder: str = "auto"
    decode_workers: int | None = None
    decode_threads: int | None = None
    canvas_in_workers: bool | None = None
    listen: str | None = None
    listen_address: str = "0.0.0.0"
    allowed_callers: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    max_pdu: int = 262144
    max_associations: int = 8
    network_timeout_s: float = 60.0
    destinations: str | None = None
    calling_ae: str = "TRTMASS"
    send_tls_cert: Path | None = None
    send_tls_key: Path | None = None
    send_tls_ca: Path | None = None
    receiving: Path | None = None
    outbox: Path | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # NaN passes every comparison below: e.g. a settle that never ends
            value = getattr(self, field.name)
            if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{field.name} must be a finite number >= 0, got {value}")
        if self.backend not in DEPLOYABLE_CHOICES:
            raise ConfigError(f"backend must be one of {', '.join(DEPLOYABLE_CHOICES)}, got {self.backend!r}")
        parse_kinds(self.dicom_out)
        if self.log_format not in ("plain", "json"):
            raise ConfigError(f"log_format must be plain or json, got {self.log_format!r}")
        if self.poll_interval_s <= 0 or self.stable_polls < 1 or self.queue_size < 1:
            raise ConfigError("poll_interval_s > 0, stable_polls >= 1 and queue_size >= 1 are required")
        check_operating_point(self.operating_point)
        if self.raster_bits is not None and not 8 <= self.raster_bits <= 16:
            raise ConfigError(f"raster_bits must be 8..16, got {self.raster_bits}")
        if self.retry_initial_s <= 0 or self.retry_max_s < self.retry_initial_s:
            raise ConfigError("retry_initial_s must be > 0 and <= retry_max_s")
        if self.decoder not in DECODER_NAMES:
            raise ConfigError(f"decoder must be one of {', '.join(DECODER_NAMES)}, got {self.decoder!r}")
        decode_plan(self.decode_workers, self.decode_threads)
        if self.backend == "triton":
            from trt_mass.runners.triton import parse_server_url

            if not self.triton_url:
                raise ConfigError("backend triton needs triton_url (grpc://HOST:8001 or http://HOST:8000)")
            parse_server_url(self.triton_url)
        self._check_network()

    def _check_network(self) -> None:
        from trt_mass.dicomnet.peers import check_ae_title

        if self.listen is not None:
            self.listen_spec  # noqa: B018  parsing is the check
        self.callers  # noqa: B018
        self.destination_list  # noqa: B018
        check_ae_title(self.calling_ae, "calling_ae")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_ca (callers' certificates) needs tls_cert and tls_key (ours)")
        if self.max_pdu < 4096 or self.max_associations < 1 or self.network_timeout_s <= 0:
            raise ConfigError("max_pdu >= 4096, max_associations >= 1 and network_timeout_s > 0 are required")
        if self.destinations and self.dicom_out == "none":
            raise ConfigError("destinations are set but dicom_out is 'none': there would be nothing to deliver")

    @property
    def listen_spec(self) -> ListenSpec | None:
        from trt_mass.dicomnet.peers import ListenSpec

        return None if self.listen is None else ListenSpec.parse(self.listen)

    @property
    def callers(self) -> tuple[Caller, ...]:
        from trt_mass.dicomnet.peers import Caller, split_list

        return tuple(Caller.parse(item) for item in split_list(self.allowed_callers))

    @property
    def destination_list(self) -> tuple[Destination, ...]:
        from trt_mass.dicomnet.peers import Destination, split_list

        return tuple(Destination.parse(item) for item in split_list(self.destinations))

    def folder(self, name: str) -> Path:
        value = getattr(self, name)
        return Path(value) if value is not None else self.root / name

    @property
    def dicom_kinds(self) -> tuple[str, ...]:
        return parse_kinds(self.dicom_out)

    @property
    def status_path(self) -> Path:
        return self.status_file or self.root / "status.json"


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(WatchConfig)}


def _convert(key: str, value: Any) -> Any:
    kind = str(FIELD_TYPES[key])
    if value is None:
        return None
    if isinstance(value, list):  # TOML lists of callers or destinations
        value = ",".join(str(item) for item in value)
    if "Path" in kind:
        if not str(value).strip():  # Path("") is the working folder: folders would appear wherever it is
            raise ConfigError(f"{key}: empty; give a path")
        return Path(str(value))
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{key}: expected a boolean, got {value!r}")
    numeric = kind.startswith(("int", "float"))
    if numeric and isinstance(value, bool):  # TOML true is no number (it became 1)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("not a whole number")  # 2.9 polls were 2
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{key}: expected a {'whole ' if kind.startswith('int') else ''}number, "
                          f"got {value!r}") from error
    return str(value)


def load_config(flags: dict[str, Any], config_file: Path | None = None,
                environ: dict[str, str] | None = None) -> WatchConfig:
    """Merge defaults, the TOML file, the environment and the flags (None = not given)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"{config_file}: cannot read the watch config ({error})") from error
        section = data.get("watch", data)
        outside = sorted(key for key in data if key != "watch") if "watch" in data else []
        if outside:  # TOML puts keys written above [watch] outside it: they would be ignored
            raise ConfigError(f"{config_file}: {', '.join(map(repr, outside))} outside the [watch] table")
        for key, value in section.items():
            if key not in FIELD_TYPES:
                raise ConfigError(f"{config_file}: unknown key {key!r}")
            values[key] = _convert(key, value)
    environ = dict(os.environ if environ is None else environ)
    known = {ENV_PREFIX + key.upper() for key in FIELD_TYPES}
    unknown = sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)
    if unknown:  # a misspelt variable (an EnvironmentFile typo) would leave its setting at the default
        raise ConfigError(f"unknown environment variable {unknown[0]}: the watch settings are "
                          f"{ENV_PREFIX}<KEY> for the keys of the config file")
    for key in FIELD_TYPES:
        env_value = environ.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key] = _convert(key, env_value)
    for key, value in flags.items():
        if value is not None:
            values[key] = _convert(key, value)
    if values.get("root") is None:
        raise ConfigError("no watch root: give ROOT, root = ... in the config file, or TRTMASS_WATCH_ROOT")
    return WatchConfig(**values)
