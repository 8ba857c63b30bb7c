"""Triton runner: the engine graph runs on a Triton Inference Server; loading, canvas and findings stay here.

Works against a stock server with a `trtmass triton-repo` repository (ONNX or TensorRT plan) and against
`trtmass serve`.  Before the first image, activate() reads the served model's configuration and refuses,
with the reasons, a model that is not the local one (other weights, precision, tiles, thresholds or
I/O; trt_mass.serving.config.served_problems).  The runner's metadata is then the served model's, so the
canvas is built in the dtype the server takes and results record what really ran.

Requests time out after `timeout_s` and are retried `retries` times with doubling pauses when the server
is unreachable, overloaded or timing out; then InferenceServerError, which the watch daemon treats like a
failing local model (the file waits in processing/ and is retried with backoff).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from trt_mass.errors import BackendUnavailableError, ConfigError, InferenceServerError, ModelError
from trt_mass.metadata import ModelMetadata, read_onnx_metadata
from trt_mass.runners.base import Runner
from trt_mass.serving.config import PROTOCOL_DTYPES, ServedModel, served_model, served_problems

SCHEMES = {"grpc": ("grpc", False), "grpcs": ("grpc", True), "http": ("http", False), "https": ("http", True)}
DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
# Failures worth another try: the server is away, overloaded, or slow; anything else is an answer.
TRANSIENT_GRPC = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED", "UNKNOWN")
TRANSIENT_HTTP = ("429", "502", "503", "504")


@dataclass(frozen=True)
class ServerAddress:
    """A parsed --triton-url: protocol ("grpc" or "http"), TLS, host:port."""

    protocol: str
    ssl: bool
    host: str
    port: int

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        scheme = self.protocol + ("s" if self.ssl else "")
        return f"{scheme}://{self.hostport}"


def parse_server_url(url: str) -> ServerAddress:
    """grpc://HOST[:8001], grpcs://, http://HOST[:8000] or https://; ConfigError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(f"--triton-url {url!r}: expected grpc://HOST:PORT or http://HOST:PORT (grpcs/https for TLS)")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"--triton-url {url!r}: give the server only (the model is --triton-model)")
    protocol, ssl = SCHEMES[parts.scheme]
    try:
        port = parts.port or DEFAULT_PORTS[protocol]
    except ValueError as error:
        raise ConfigError(f"--triton-url {url!r}: {error}") from error
    return ServerAddress(protocol, ssl, parts.hostname, port)


class TritonRunner(Runner):
    """Runs the engine graph on a Triton server.

    Args:
        model_path: the local .onnx the served model must be (its metadata is what is checked; it is not run).
        triton_url: grpc://HOST:PORT or http://HOST:PORT (grpcs/https with TLS).
        triton_model: the served model's name.
        triton_timeout_s: per request (and per configuration read).
        retries: extra tries of a request the server did not answer.

    After each infer(), `last_stage_ms` splits the request into "network" (serialisation, transfer,
    parsing: the client's round trip minus the server's time) and "inference" (the server's time for this
    model, from Triton's statistics, read when the property is read: one extra request, outside the timed
    one; exact with one client at a time, as bench runs it).
    """

    backend = "triton"

    def __init__(self, model_path: str | Path, triton_url: str | None = None, triton_model: str = "trt_mass",
                 triton_timeout_s: float = 30.0, retries: int = 3, retry_initial_s: float = 0.5) -> None:
        super().__init__()
        if not triton_url:
            raise ConfigError("--backend triton needs --triton-url grpc://HOST:8001 or http://HOST:8000")
        self.model_path = Path(model_path)
        self.address = parse_server_url(triton_url)
        self.model_name = triton_model
        self.timeout_s = float(triton_timeout_s)
        self.retries = int(retries)
        self.retry_initial_s = float(retry_initial_s)
        self._client: Any = None
        self._round_trip_ms: float | None = None
        self._server_totals_before: tuple[int, int] | None = None
        self._split: dict[str, float] | None = None
        self.served: ServedModel | None = None

    @property
    def where(self) -> str:
        return f"{self.address} model {self.model_name!r}"

    # ------------------------------------------------------------------------------------------ activate
    def _activate(self) -> ModelMetadata:
        expected = read_onnx_metadata(self.model_path)
        self._client = self._make_client()
        try:
            config = self._with_retries("reading the model configuration", self._read_config)
            served = served_model(config)
            metadata = served.metadata(str(self.address))
            problems = served_problems(expected, served, metadata)
            if problems:
                raise ModelError(f"{self.where} is not {self.model_path.name}: " + "; ".join(problems))
        except BaseException:
            self._close_client()
            raise
        self.served = served
        self._server_totals_before = self._server_totals()
        return metadata

    def _make_client(self) -> Any:
        try:
            if self.address.protocol == "grpc":
                import tritonclient.grpc as client_module
            else:
                import tritonclient.http as client_module
        except ImportError as error:
            raise BackendUnavailableError(f"--backend triton needs tritonclient ({error}); pip install "
                                          "'trt_mass[triton]'") from error
        if self.address.protocol == "grpc":
            return client_module.InferenceServerClient(self.address.hostport, ssl=self.address.ssl)
        return client_module.InferenceServerClient(self.address.hostport, ssl=self.address.ssl,
                                                   connection_timeout=self.timeout_s, network_timeout=self.timeout_s)

    def _read_config(self) -> dict[str, Any]:
        client = self._client
        if not client.is_model_ready(self.model_name, **self._timeout()):
            index = client.get_model_repository_index(**({"as_json": True} if self._grpc else {}))
            models = index.get("models", index) if isinstance(index, dict) else index
            names = sorted({str(m.get("name")) for m in models})
            raise InferenceServerError(f"{self.where} is not ready (models on the server: "
                                       f"{', '.join(names) or 'none'})")
        if self._grpc:
            return dict(client.get_model_config(self.model_name, as_json=True, **self._timeout())["config"])
        return dict(client.get_model_config(self.model_name))

    @property
    def _grpc(self) -> bool:
        return self.address.protocol == "grpc"

    def _timeout(self) -> dict[str, float]:
        return {"client_timeout": self.timeout_s} if self._grpc else {}

    # --------------------------------------------------------------------------------------------- infer
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        result = self._with_retries("inference", lambda: self._request(feed))
        outputs = {t.name: np.array(result.as_numpy(t.name), copy=True) for t in self.metadata.outputs}
        self._round_trip_ms = 1000 * (time.perf_counter() - started)
        self._split = None
        for spec in self.metadata.outputs:
            array = outputs[spec.name]
            if array.dtype != np.dtype(spec.dtype) or tuple(array.shape) != spec.shape:
                raise InferenceServerError(f"{self.where} answered {spec.name} as {array.dtype} {array.shape}, "
                                           f"expected {spec.dtype} {spec.shape}")
        return outputs

    def _request(self, feed: dict[str, np.ndarray]) -> Any:
        module = self._client_module()
        inputs = []
        for spec in self.metadata.inputs:
            tensor = module.InferInput(spec.name, list(feed[spec.name].shape), PROTOCOL_DTYPES[spec.dtype])
            tensor.set_data_from_numpy(np.ascontiguousarray(feed[spec.name]), **({} if self._grpc else
                                                                                   {"binary_data": True}))
            inputs.append(tensor)
        outputs = [module.InferRequestedOutput(t.name, **({} if self._grpc else {"binary_data": True}))
                   for t in self.metadata.outputs]
        return self._client.infer(self.model_name, inputs, outputs=outputs, **self._timeout())

    def _client_module(self) -> Any:
        if self._grpc:
            import tritonclient.grpc as grpc_module
            return grpc_module
        import tritonclient.http as http_module
        return http_module

    def _with_retries(self, what: str, call: Any) -> Any:
        pause = self.retry_initial_s
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (InferenceServerError, ModelError):
                raise
            except Exception as error:
                if not _transient(error) or attempt == self.retries:
                    raise InferenceServerError(f"{self.where}: {what} failed ({_describe(error)})") from error
                time.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------- stage times
    @property
    def last_stage_ms(self) -> dict[str, float]:
        """{"network": ..., "inference": ...} of the last request (see the class docstring); {} before one, or
        when the server gives no statistics."""
        if self._round_trip_ms is None:
            return {}
        if self._split is None:
            server_ms = self._server_ms_since_last_read()
            if server_ms is None:  # no statistics: the whole round trip stays "inference"
                self._split = {}
            else:
                self._split = {"network": max(0.0, self._round_trip_ms - server_ms), "inference": server_ms}
        return dict(self._split)

    def _server_ms_since_last_read(self) -> float | None:
        """The server's mean time per request for this model since the previous read (Triton statistics)."""
        totals = self._server_totals()
        before, self._server_totals_before = self._server_totals_before, totals
        if totals is None or before is None or totals[1] <= before[1]:
            return None
        return (totals[0] - before[0]) / (totals[1] - before[1]) / 1e6

    def _server_totals(self) -> tuple[int, int] | None:
        """(success ns, success count) of this model on the server, summed over versions; None if unknown."""
        try:
            if self._grpc:
                stats = self._client.get_inference_statistics(self.model_name, as_json=True, **self._timeout())
            else:
                stats = self._client.get_inference_statistics(self.model_name)
            success = [m["inference_stats"]["success"] for m in stats["model_stats"]]
            return sum(int(s.get("ns", 0)) for s in success), sum(int(s.get("count", 0)) for s in success)
        except Exception:  # statistics are a report's detail, never a reason to fail a request
            return None

    def describe(self) -> dict[str, Any]:
        """Facts for bench: where the model runs."""
        served = self.served.parameters if self.served is not None else {}
        return {"device": f"remote ({self.address})", "server_model": self.model_name,
                "server_engine": served.get("trt_mass.engine"), "protocol": self.address.protocol}

    # ---------------------------------------------------------------------------------------- deactivate
    def _deactivate(self) -> None:
        self._close_client()

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a connection to a server that is gone is no error
                client.close()


def _transient(error: Exception) -> bool:
    if isinstance(error, (OSError, TimeoutError)):
        return True
    status = getattr(error, "status", None)
    code = str(status() if callable(status) else status or "")
    return any(name in code for name in TRANSIENT_GRPC) or code in TRANSIENT_HTTP or "timed out" in str(error)


def _describe(error: Exception) -> str:
    message = getattr(error, "message", None)
    text = message() if callable(message) else str(error)
    return f"{type(error).__name__}: {text}"
