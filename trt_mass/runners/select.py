"""Which backend runs a model: the one table of backends, their options, and what `auto` decides.

Detector (trt_mass.pipeline) is the only caller: it asks `choose_backend` for a BackendChoice (backend,
the artifact it loads, and the reason, said to the user) and `open_runner` for the runner.  The CLI,
the daemon and bench take the choice from the Detector.  Each backend's module is imported only when
it is used: choosing never imports torch, and imports tensorrt only to probe it when a CUDA GPU is there.

    ort    the .onnx on ONNX Runtime (CPU): the default, and the path CI tests every numeric step with
    trt    a TensorRT engine: given as a file, or the engine of the .onnx in the model directory
    torch  the same engine graph as PyTorch modules (reference; needs torch and the weights)
    triton the engine graph on a Triton Inference Server (--triton-url); the .onnx is what it must serve
    auto   trt when an engine built from this .onnx passes every sidecar check on this machine,
           else ort, with the reason (tensorrt not installed, no GPU, no engine, built for another GPU...)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from trt_mass.engine.gpu import TensorRTEnvironment, probe_tensorrt_environment
from trt_mass.errors import BackendUnavailableError, ConfigError, ModelError

if TYPE_CHECKING:  # the CLI imports this table: keep it free of numpy and the runners
    from trt_mass.runners.base import Runner

ENGINE_SUFFIXES = (".plan", ".engine")


@dataclass(frozen=True)
class BackendOptions:
    """Every backend option; a backend takes the fields its table row names and ignores the others.

    Attributes:
        threads: intra-op threads of ONNX Runtime or torch (None: their default).
        model_dir: the only folder TensorRT engines are looked up in and loaded from (None: the model's).
        allow_engine_host_code: allow version-compatible engines (their lean runtime runs as host code).
        device: torch device ("auto": cuda when available, else cpu).
        checkpoint: the checkpoint a "checkpoint:..." model was exported from (torch).
        cpu_spin: let ONNX Runtime's idle intra-op threads spin for the next run (lower latency alone);
            off where other work shares the cores (the daemon's decode workers).
        triton_url: the Triton server (grpc://HOST:8001 or http://HOST:8000) of the triton backend.
        triton_model: the model name on that server.
        triton_timeout_s: per request to that server.
    """

    threads: int | None = None
    model_dir: Path | None = None
    allow_engine_host_code: bool = False
    device: str = "auto"
    checkpoint: Path | None = None
    cpu_spin: bool = True
    triton_url: str | None = None
    triton_model: str = "trt_mass"
    triton_timeout_s: float = 30.0


@dataclass(frozen=True)
class Backend:
    """One row of the table: where its runner lives, what it takes, what to install when it is missing.

    `deployable`: offered by detect and watch (torch is a reference for bench and tests).
    """

    name: str
    module: str
    runner_class: str
    options: tuple[str, ...]
    install: str
    deployable: bool = True


BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    Backend("ort", "trt_mass.runners.ort", "OnnxRuntimeRunner", ("threads", "cpu_spin"), "pip install onnxruntime"),
    Backend("trt", "trt_mass.runners.trt", "TensorRTRunner", ("model_dir", "allow_engine_host_code"),
            "pip install 'trt_mass[gpu]' on a PC with an NVIDIA GPU"),
    Backend("torch", "trt_mass.runners.torch_ref", "TorchRunner", ("threads", "device", "checkpoint"),
            "pip install 'trt_mass[train]'", deployable=False),
    Backend("triton", "trt_mass.runners.triton", "TritonRunner", ("triton_url", "triton_model", "triton_timeout_s"),
            "pip install 'trt_mass[triton]'"),
)}
AUTO = "auto"
ALL_CHOICES = (*BACKENDS, AUTO)
DEPLOYABLE_CHOICES = (*(name for name, backend in BACKENDS.items() if backend.deployable), AUTO)


class BackendChoice(NamedTuple):
    """The backend that runs a model, the file it loads (the .onnx or an engine), and why it was chosen."""

    backend: str
    artifact: Path
    reason: str


def choose_backend(requested: str, model_path: str | Path, options: BackendOptions = BackendOptions(), *,
                   environment: TensorRTEnvironment | None = None) -> BackendChoice:
    """The BackendChoice for `--backend requested` and `model_path`.

    "auto" selects (see the module docstring); "trt" given an .onnx finds its engine and fails with the
    reason when there is none; "ort" refuses an engine file.  `environment` (tests) replaces the probe
    of this machine's TensorRT and GPU.
    """
    model_path = Path(model_path)
    if requested == AUTO:
        return _auto(model_path, options, environment)
    if requested not in BACKENDS:
        raise ConfigError(f"unknown backend {requested!r}; available: {', '.join(sorted(BACKENDS))}, {AUTO}")
    if requested == "trt" and model_path.suffix == ".onnx":
        return _engine_of(model_path, options, environment)
    if requested == "triton":
        return _served(model_path, options)
    if requested == "ort" and model_path.suffix in ENGINE_SUFFIXES:
        raise ConfigError(f"{model_path} is a TensorRT engine; ONNX Runtime runs the .onnx it was built from "
                          "(or use --backend trt)")
    return BackendChoice(requested, model_path, f"requested with --backend {requested}")


def _served(model_path: Path, options: BackendOptions) -> BackendChoice:
    if not options.triton_url:
        raise ConfigError("--backend triton needs --triton-url grpc://HOST:8001 or http://HOST:8000")
    if model_path.suffix != ".onnx":
        raise ConfigError(f"--backend triton checks the served model against an .onnx, not {model_path.name} (give the "
                          ".onnx the server's model or engine was made from)")
    return BackendChoice("triton", model_path, f"requested with --backend triton: model {options.triton_model!r} at "
                                               f"{options.triton_url}, checked against {model_path.name}")


def _auto(model_path: Path, options: BackendOptions, environment: TensorRTEnvironment | None) -> BackendChoice:
    if model_path.suffix != ".onnx":
        return BackendChoice("trt", model_path, f"TensorRT engine {model_path.name} given")
    environment = environment if environment is not None else probe_tensorrt_environment()
    if not environment.usable:
        return BackendChoice("ort", model_path, environment.problem)
    engine, problem = _find_engine(model_path, options, environment)
    if engine is None:
        return BackendChoice("ort", model_path, problem)
    assert environment.gpu is not None
    return BackendChoice("trt", engine, f"TensorRT engine {engine.name} matches this GPU "
                                        f"({environment.gpu.describe()}) and TensorRT {environment.tensorrt_version}")


def _engine_of(model_path: Path, options: BackendOptions, environment: TensorRTEnvironment | None) -> BackendChoice:
    environment = environment if environment is not None else probe_tensorrt_environment()
    if not environment.usable:
        raise BackendUnavailableError(f"--backend trt: {environment.problem}; use --backend ort or auto")
    engine, problem = _find_engine(model_path, options, environment)
    if engine is None:
        folder = _engine_folder(model_path, options)
        hint = "" if "rebuild with" in problem else (
            f"; build one with: trtmass build-engine {model_path} --profile PROFILE -o "
            f"{folder / model_path.with_suffix('.plan').name}")
        raise ModelError(f"--backend trt: {problem}{hint}")
    return BackendChoice("trt", engine, f"TensorRT engine {engine.name} for {model_path.name}")


def _engine_folder(model_path: Path, options: BackendOptions) -> Path:
    return Path(options.model_dir) if options.model_dir is not None else model_path.parent


def _find_engine(model_path: Path, options: BackendOptions,
                 environment: TensorRTEnvironment) -> tuple[Path | None, str]:
    from trt_mass.engine.checks import LoadContext, find_engine

    context = LoadContext(environment.gpu, environment.tensorrt_version, _engine_folder(model_path, options),
                          options.allow_engine_host_code)
    return find_engine(model_path, context)


def open_runner(choice: BackendChoice, options: BackendOptions = BackendOptions()) -> Runner:
    """Create (not activate) the runner of `choice` with the options its backend takes."""
    backend = BACKENDS[choice.backend]
    try:
        module = importlib.import_module(backend.module)
    except ImportError as error:
        raise BackendUnavailableError(f"backend {backend.name!r} is not installed ({error}); {backend.install}") \
            from error
    taken = {name: getattr(options, name) for name in backend.options}
    runner: Runner = getattr(module, backend.runner_class)(choice.artifact, **taken)
    return runner
