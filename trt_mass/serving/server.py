"""`trtmass serve`: a real Triton Inference Server running the engine graph with ONNX Runtime, on any CPU.

For sites without NVIDIA's server container (CPU servers, tests).  The `nvidia-pytriton` wheel ships a
tritonserver binary and its Python backend; this module lays out, in a work folder,

    repository/NAME/config.pbtxt   the same I/O and trt_mass parameters as `trtmass triton-repo` writes
                                   (trt_mass.serving.config), backend "python", plus the ONNX's path
    repository/NAME/1/model.py     one line: trt_mass.serving.python_model's TritonPythonModel
    backends/python/               the wheel's Python backend with the stub for this Python version

and runs tritonserver on it as a child process (killed with this process, even by SIGKILL).  The same
client (`--backend triton`) talks to it and to a stock server with the triton-repo repository.

PyTriton's own `Triton.bind` is not used: it cannot put parameters into the configuration, and its
proxy moves tensors through the stub's NumPy bindings, which read NumPy 2 arrays as empty
(trt_mass.serving.python_model uses DLPack instead).  Which is also why the wheel is installed with
`pip install --no-deps nvidia-pytriton`: its numpy<2 pin is for that proxy, which is not used here.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trt_mass.errors import BackendUnavailableError, ConfigError, InferenceServerError, ModelError
from trt_mass.metadata import ModelMetadata, file_sha256, read_onnx_metadata
from trt_mass.serving.config import config_parameters, model_config_text
from trt_mass.serving.python_model import ONNX_PATH_PARAMETER, THREADS_PARAMETER
from trt_mass.serving.repository import DEFAULT_MODEL_NAME

INSTALL = "pip install --no-deps nvidia-pytriton==0.7.0"
MODEL_PY = "from trt_mass.serving.python_model import TritonPythonModel  # noqa: F401\n"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServeConfig:
    """What `trtmass serve` serves and where.

    Attributes:
        model: the engine-graph ONNX.
        name: the model name clients ask for (the same default as triton-repo).
        host: the address the HTTP, gRPC and metrics endpoints listen on.
        http_port, grpc_port, metrics_port: Triton's three endpoints.
        instances: model instances (each its own stub process and ONNX Runtime session).
        threads: ONNX Runtime intra-op threads per instance (None: its default, one per physical core).
        workdir: where the repository and backend are laid out (None: a temporary folder, removed at exit).
        ready_timeout_s: how long to wait for the model to be ready.
    """

    model: Path
    name: str = DEFAULT_MODEL_NAME
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    instances: int = 1
    threads: int | None = None
    workdir: Path | None = None
    ready_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        if len(set(ports)) != 3 or not all(0 < p < 65536 for p in ports):
            raise ConfigError(f"HTTP, gRPC and metrics ports must be three different ports, got {ports}")
        if self.instances < 1:
            raise ConfigError(f"--instances must be at least 1, got {self.instances}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@dataclass(frozen=True)
class TritonDistribution:
    """The tritonserver binary, its libraries and the Python backend (with this Python's stub) of the wheel."""

    binary: Path
    libraries: Path
    python_backend: Path
    stub: Path


def triton_distribution() -> TritonDistribution:
    """Where the nvidia-pytriton wheel put tritonserver; BackendUnavailableError (with the install line) if not."""
    spec = importlib.util.find_spec("pytriton")  # located, never imported: its proxy needs numpy<2
    if spec is None or spec.origin is None:
        raise BackendUnavailableError(f"trtmass serve runs the tritonserver of the nvidia-pytriton wheel: {INSTALL}")
    root = Path(spec.origin).parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    distribution = TritonDistribution(root / "bin" / "tritonserver", Path(spec.origin).parent.parent /
                                      "nvidia_pytriton.libs", root / "backends" / "python",
                                      root / "python_backend_stubs" / version / "triton_python_backend_stub")
    for path in (distribution.binary, distribution.python_backend, distribution.libraries):
        if not path.exists():
            raise BackendUnavailableError(f"{path} is missing from the nvidia-pytriton install; reinstall: {INSTALL}")
    if not distribution.stub.is_file():
        stubs = sorted(p.name for p in (root / "python_backend_stubs").iterdir())
        raise BackendUnavailableError(f"nvidia-pytriton has no Python backend stub for Python {version} "
                                      f"(it has {', '.join(stubs)})")
    return distribution


def lay_out(config: ServeConfig, distribution: TritonDistribution, workdir: Path) -> ModelMetadata:
    """Write the repository and the backend folder into `workdir`; returns the served model's metadata."""
    model = config.model.resolve()
    metadata = read_onnx_metadata(model)
    if metadata.kind != "engine_graph":
        raise ModelError(f"{config.model} is a {metadata.kind} export; a server runs the engine graph")
    parameters = config_parameters(metadata, file_sha256(model))
    parameters[ONNX_PATH_PARAMETER] = str(model)
    if config.threads is not None:
        parameters[THREADS_PARAMETER] = str(config.threads)
    model_dir = workdir / "repository" / config.name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(MODEL_PY)
    (model_dir / "config.pbtxt").write_text(model_config_text(config.name, metadata, instances=config.instances,
                                                              kind="cpu", parameters=parameters, backend="python"))
    backend = workdir / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    for item in distribution.python_backend.iterdir():
        if item.is_file():
            shutil.copy2(item, backend / item.name)
    shutil.copy2(distribution.stub, backend / "triton_python_backend_stub")
    return metadata


def server_command(config: ServeConfig, distribution: TritonDistribution, workdir: Path,
                   shm_prefix: str) -> list[str]:
    return [str(distribution.binary), f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
            f"--model-repository={workdir / 'repository'}",
            f"--backend-directory={workdir / 'backends'}", f"--http-address={config.host}",
            f"--grpc-address={config.host}", f"--metrics-address={config.host}", f"--http-port={config.http_port}",
            f"--grpc-port={config.grpc_port}", f"--metrics-port={config.metrics_port}", "--exit-on-error=true",
            "--strict-readiness=true", "--disable-auto-complete-config", "--exit-timeout-secs=10",
            "--log-verbose=0"]


def server_environment(distribution: TritonDistribution) -> dict[str, str]:
    """The stub embeds Python: it must load this interpreter's libpython and find this environment's packages."""
    env = dict(os.environ)
    libraries = [str(distribution.libraries)]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and any(Path(libdir).glob("libpython3*.so*")):  # e.g. pyenv: not the system's libpython
        libraries.insert(0, libdir)
    env["LD_LIBRARY_PATH"] = ":".join([*libraries, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = ":".join([str(Path(sys.executable).parent), env.get("PATH", "")])
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = ":".join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, however it dies (Linux prctl)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class TritonServer:
    """A tritonserver child process serving one trt_mass model; a context manager.

    Example:
        with TritonServer(ServeConfig(Path("model.onnx"), grpc_port=9001, ...)) as server:
            ...  # server.config.grpc_url is ready
    """

    def __init__(self, config: ServeConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.metadata: ModelMetadata | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._owns_workdir = False
        # The Python backend's shared-memory regions: named per server, so servers side by side never share
        # one, and removed after a server that could not remove them itself (killed).
        self.shm_prefix = f"trtmass_{os.getpid()}_{secrets.token_hex(4)}_"

    def _refuse_foreign_repository(self, repository: Path) -> None:
        """serve lays out its own repository in --workdir (and removes the last one): one that holds other
        models is someone's (trtmass triton-repo --out), not ours to replace."""
        others = sorted(p.name for p in repository.iterdir() if p.name != self.config.name) \
            if repository.is_dir() else []
        if others:
            raise ConfigError(f"{repository} holds other models ({', '.join(others[:3])}); serve lays out its own "
                              "repository there: give --workdir a folder of its own")

    def start(self) -> TritonServer:
        if self.config.workdir is not None:
            self._refuse_foreign_repository(self.config.workdir / "repository")
        distribution = triton_distribution()
        if self.config.workdir is None:
            self._workdir, self._owns_workdir = Path(tempfile.mkdtemp(prefix="trtmass-serve-")), True
        else:
            self._workdir = self.config.workdir
            shutil.rmtree(self._workdir / "repository", ignore_errors=True)
        self.metadata = lay_out(self.config, distribution, self._workdir)
        # Without a log file the server's log goes where ours goes (stderr: the journal under systemd).
        log = open(self.log_path, "ab") if self.log_path is not None else None  # noqa: SIM115 (the child keeps it)
        try:
            self.process = subprocess.Popen(server_command(self.config, distribution, self._workdir, self.shm_prefix),
                                            env=server_environment(distribution),
                                            stdout=log if log is not None else sys.stderr.fileno(),
                                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        finally:
            if log is not None:
                log.close()
        return self

    def wait_ready(self) -> None:
        """Until the model answers ready on HTTP; InferenceServerError when the server exits or times out."""
        assert self.process is not None
        deadline = time.monotonic() + self.config.ready_timeout_s
        url = f"{self.config.http_url}/v2/models/{self.config.name}/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InferenceServerError(f"tritonserver exited with {self.process.returncode} before "
                                           f"{self.config.name} was ready{self._log_hint()}")
            with contextlib.suppress(urllib.error.URLError, OSError), \
                    urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise InferenceServerError(f"{self.config.name} was not ready within {self.config.ready_timeout_s:.0f} s"
                                   f"{self._log_hint()}")

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path is not None else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; removes a temporary work folder.  Returns the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            code = self.process.returncode
            self.process = None
            for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
                region.unlink(missing_ok=True)
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return code

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """SIGTERM and SIGINT end `serve` by KeyboardInterrupt, so the server is stopped on the way out."""
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
