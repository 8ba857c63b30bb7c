"""The small part of cuda-python (CUDA runtime bindings) that trt_mass uses, imported lazily.

cuda-python functions return tuples: (error, value...) -- an error code first, then the results;
TensorRT's own sample NVIDIA/TensorRT samples/python/common_runtime.py (cuda_call/check_cuda_err)
unwraps them the same way.  `cuda_call` turns a non-success code
into a RuntimeError that names the call and the CUDA error.
"""

from __future__ import annotations

import importlib
from typing import Any

from trt_mass.errors import BackendUnavailableError


def import_cudart() -> Any:
    """The CUDA runtime module of cuda-python; BackendUnavailableError when cuda-python is missing.

    cuda-python >= 12.6 (and 13, which the `gpu` extra asks for) has it as cuda.bindings.runtime; the
    old top-level `cuda.cudart` alias was removed in 13.
    """
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        return importlib.import_module("cuda.cudart")  # cuda-python < 12.6
    except ImportError as error:
        raise BackendUnavailableError(
            f"cuda-python is not installed ({error}); pip install 'trt_mass[gpu]' on a PC with an NVIDIA GPU"
        ) from error


def cuda_call(cudart: Any, result: Any, what: str) -> Any:
    """Check the error code of a cuda-python call and return its value(s) (None, one value or a tuple)."""
    if isinstance(result, tuple):
        error, values = result[0], result[1:]
    else:
        error, values = result, ()
    if error != cudart.cudaError_t.cudaSuccess:
        try:
            name = cudart.cudaGetErrorName(error)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # the error name is a courtesy; never hide the original failure
            name = str(error)
        raise RuntimeError(f"CUDA {what} failed: {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values
