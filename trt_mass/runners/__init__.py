"""Backends behind one Runner interface.  Each backend is imported only when it is used."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_mass.errors import BackendUnavailableError, ConfigError, ModelError
from trt_mass.runners.base import Runner

if TYPE_CHECKING:
    from trt_mass.engine.sidecar import GpuInfo

# backend name -> (module, class, what to install when it is missing)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "ort": ("trt_mass.runners.ort", "OnnxRuntimeRunner", "pip install onnxruntime"),
    "trt": ("trt_mass.runners.trt", "TensorRTRunner", "pip install 'trt_mass[gpu]' on a PC with an NVIDIA GPU"),
    "torch": ("trt_mass.runners.torch_ref", "TorchRunner", "pip install 'trt_mass[train]'"),
}


# Options each backend takes; `auto` passes on only those of the backend it picked.
BACKEND_OPTIONS: dict[str, frozenset[str]] = {
    "ort": frozenset({"threads", "providers"}),
    "trt": frozenset({"model_dir", "allow_engine_host_code", "device"}),
}


def make_runner(backend: str, model_path: str | Path, **options: Any) -> Runner:
    """Create (not activate) the runner for `backend`.

    "auto" picks TensorRT when an engine built from this ONNX matches this GPU and TensorRT, else ONNX
    Runtime (see select_backend); "trt" given an .onnx looks for its engine the same way and fails with
    the reason when there is none.  Options of the other backend are dropped for "auto".
    """
    if backend == "auto" or (backend == "trt" and Path(model_path).suffix == ".onnx"):
        backend, model_path, _ = resolve_backend(
            backend, model_path, model_dir=options.get("model_dir"),
            allow_engine_host_code=bool(options.get("allow_engine_host_code", False)))
        options = {k: v for k, v in options.items() if k in BACKEND_OPTIONS[backend]}
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; available: {', '.join(sorted(BACKENDS))}, auto")
    module_name, class_name, install = BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BackendUnavailableError(f"backend {backend!r} is not installed ({error}); {install}") from error
    runner: Runner = getattr(module, class_name)(model_path, **options)
    return runner


@dataclass(frozen=True)
class BackendEnvironment:
    """What this machine offers TensorRT: its version and GPU, or why not (problem, empty when usable)."""

    tensorrt_version: str | None
    gpu: GpuInfo | None
    problem: str = ""


def probe_environment() -> BackendEnvironment:
    """Probe for tensorrt and a CUDA GPU, cheapest first; tensorrt is imported only when a GPU is there."""
    if importlib.util.find_spec("tensorrt") is None:
        return BackendEnvironment(None, None, "tensorrt is not installed")
    from trt_mass.engine.sidecar import probe_gpu

    gpu, why = probe_gpu()
    if gpu is None:
        return BackendEnvironment(None, None, why if "cuda-python" in why else f"no CUDA GPU ({why})")
    try:
        import tensorrt
    except Exception as error:  # installed but unusable (missing libraries): say so, fall back to ONNX Runtime
        return BackendEnvironment(None, gpu, f"tensorrt cannot be imported ({error})")
    return BackendEnvironment(str(tensorrt.__version__), gpu)


def find_engine(onnx_path: str | Path, model_dir: str | Path, environment: BackendEnvironment,
                allow_engine_host_code: bool = False) -> tuple[Path | None, str]:
    """The engine in `model_dir` built from this ONNX (sidecar's source_onnx_sha256) that may run here.

    Returns (engine, "") or (None, why not): no engine for this model, or the first candidate's failed
    check with the command that rebuilds it.
    """
    from trt_mass.engine.sidecar import SIDECAR_SUFFIX, engine_checks, read_sidecar, rebuild_command
    from trt_mass.metadata import file_sha256

    onnx_path, model_dir = Path(onnx_path), Path(model_dir)
    onnx_sha256 = file_sha256(onnx_path)
    candidates = []
    for side in sorted(model_dir.glob(f"*{SIDECAR_SUFFIX}")):
        engine = side.with_name(side.name[: -len(SIDECAR_SUFFIX)])
        if not engine.is_file() or engine.suffix == ".onnx":
            continue
        try:
            sidecar = read_sidecar(engine)
        except ModelError:
            continue
        if sidecar.source_onnx_sha256 == onnx_sha256:
            candidates.append((engine, sidecar))
    if not candidates:
        return None, f"no engine for this model in {model_dir}"
    problems = []
    for engine, sidecar in candidates:
        checks = engine_checks(sidecar, engine, gpu=environment.gpu, tensorrt_version=environment.tensorrt_version,
                               model_dir=model_dir, allow_engine_host_code=allow_engine_host_code)
        failed = [check for check in checks if not check.ok]
        if not failed:
            return engine, ""
        problems.append(f"engine {engine.name} was built for {sidecar.gpu_name} (compute capability "
                        f"{sidecar.compute_capability}, TensorRT {sidecar.tensorrt_version}): {failed[0].detail} "
                        f"(rebuild with: {rebuild_command(sidecar, engine, model_dir)})")
    return None, problems[0]


def select_backend(model_path: str | Path, model_dir: str | Path | None = None, *,
                   allow_engine_host_code: bool = False,
                   environment: BackendEnvironment | None = None) -> tuple[str, Path, str]:
    """(backend, artifact to load, human reason) for `--backend auto`.

    TensorRT when an engine built from this ONNX lies in `model_dir` (default: the ONNX's folder) and
    passes every sidecar check on this machine; otherwise ONNX Runtime on the ONNX, with the reason
    (tensorrt not installed, no CUDA GPU, no engine for this model, engine built for another GPU...).
    An engine file given directly runs on TensorRT.  `environment` (tests) replaces the probe.
    """
    model_path = Path(model_path)
    if model_path.suffix != ".onnx":
        return "trt", model_path, f"TensorRT engine {model_path.name} given"
    environment = environment if environment is not None else probe_environment()
    if environment.tensorrt_version is None or environment.gpu is None:
        return "ort", model_path, environment.problem
    folder = Path(model_dir) if model_dir is not None else model_path.parent
    engine, problem = find_engine(model_path, folder, environment, allow_engine_host_code)
    if engine is None:
        return "ort", model_path, problem
    return "trt", engine, (f"TensorRT engine {engine.name} matches this GPU ({environment.gpu.describe()}) and "
                           f"TensorRT {environment.tensorrt_version}")


def resolve_backend(backend: str, model_path: str | Path, *, model_dir: str | Path | None = None,
                    allow_engine_host_code: bool = False) -> tuple[str, Path, str]:
    """(backend, artifact, reason) for a --backend choice: "auto" selects; "trt" with an .onnx finds its engine."""
    model_path = Path(model_path)
    if backend == "auto":
        return select_backend(model_path, model_dir, allow_engine_host_code=allow_engine_host_code)
    if backend == "trt" and model_path.suffix == ".onnx":
        environment = probe_environment()
        if environment.tensorrt_version is None or environment.gpu is None:
            raise BackendUnavailableError(f"--backend trt: {environment.problem}; use --backend ort or auto")
        folder = Path(model_dir) if model_dir is not None else model_path.parent
        engine, problem = find_engine(model_path, folder, environment, allow_engine_host_code)
        if engine is None:
            hint = "" if "rebuild with" in problem else (
                f"; build one with: trtmass build-engine {model_path} --profile PROFILE -o "
                f"{folder / model_path.with_suffix('.plan').name}")
            raise ModelError(f"--backend trt: {problem}{hint}")
        return "trt", engine, f"TensorRT engine {engine.name} for {model_path.name}"
    if backend == "ort" and model_path.suffix in (".plan", ".engine"):
        raise ConfigError(f"{model_path} is a TensorRT engine; ONNX Runtime runs the .onnx it was built from "
                          "(or use --backend trt)")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; available: {', '.join(sorted(BACKENDS))}, auto")
    return backend, model_path, f"requested with --backend {backend}"


__all__ = ["BACKENDS", "BackendEnvironment", "Runner", "make_runner", "resolve_backend", "select_backend"]
