"""Backends behind one Runner interface.  Each backend is imported only when it is used."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from trt_mass.errors import BackendUnavailableError, ConfigError
from trt_mass.runners.base import Runner

# backend name -> (module, class, what to install when it is missing)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "ort": ("trt_mass.runners.ort", "OnnxRuntimeRunner", "pip install onnxruntime"),
}


def make_runner(backend: str, model_path: str | Path, **options: Any) -> Runner:
    """Create (not activate) the runner for `backend` ("ort"; "auto" picks what this machine can run)."""
    if backend == "auto":
        backend = "ort"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; available: {', '.join(sorted(BACKENDS))}")
    module_name, class_name, install = BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BackendUnavailableError(f"backend {backend!r} is not installed ({error}); {install}") from error
    runner: Runner = getattr(module, class_name)(model_path, **options)
    return runner


__all__ = ["BACKENDS", "Runner", "make_runner"]
