"""The GPU module: cuda-python results, the GPU probe, TensorRT versions and imports, without a GPU."""

from __future__ import annotations

import enum
import importlib.util
from types import SimpleNamespace

import pytest

from trt_mass.engine.gpu import (
    GpuInfo,
    TensorRTEnvironment,
    _gpu_info,
    cuda_call,
    import_tensorrt,
    probe_gpu,
    probe_tensorrt_environment,
    require_tensorrt_11,
    tensorrt_version,
    version_tuple,
)
from trt_mass.errors import BackendUnavailableError


def test_probe_gpu_without_cuda_python_says_why() -> None:
    try:
        import cuda.bindings  # noqa: F401
    except ImportError:
        gpu, why = probe_gpu()
        assert gpu is None and why == "cuda-python is not installed"
    else:  # a GPU machine: either a GPU or a reason
        gpu, why = probe_gpu()
        assert (gpu is not None and why == "") or (gpu is None and why)


def test_version_tuple() -> None:
    assert version_tuple("11.4.1.5") == (11, 4, 1, 5)
    assert version_tuple("11.0.0b3") == (11, 0, 0)
    assert version_tuple("10.16") == (10, 16)


class _ErrorCode(enum.IntEnum):
    """The shape of cuda-python's cudaError_t (a stand-in for the bindings, which need a driver to import)."""

    cudaSuccess = 0
    cudaErrorInsufficientDriver = 35


def _cudart_stand_in() -> SimpleNamespace:
    return SimpleNamespace(cudaError_t=_ErrorCode,
                           cudaGetErrorName=lambda error: (_ErrorCode.cudaSuccess, error.name.encode()))


def test_cuda_call_unwraps_results_and_names_failures() -> None:
    cudart = _cudart_stand_in()
    assert cuda_call(cudart, (_ErrorCode.cudaSuccess,), "cudaFree") is None
    assert cuda_call(cudart, _ErrorCode.cudaSuccess, "cudaStreamSynchronize") is None
    assert cuda_call(cudart, (_ErrorCode.cudaSuccess, 3), "cudaGetDeviceCount") == 3
    assert cuda_call(cudart, (_ErrorCode.cudaSuccess, 1, 2), "two values") == (1, 2)
    with pytest.raises(RuntimeError, match="CUDA cudaMalloc failed: cudaErrorInsufficientDriver"):
        cuda_call(cudart, (_ErrorCode.cudaErrorInsufficientDriver, 0), "cudaMalloc")


def test_device_properties_become_gpu_info() -> None:
    prop = SimpleNamespace(name=b"NVIDIA RTX A2000 12GB\x00\x00garbage", major=8, minor=6,
                           totalGlobalMem=12 * 1024**3, integrated=0)
    gpu = _gpu_info(prop, 13000)
    assert gpu == GpuInfo("NVIDIA RTX A2000 12GB", "8.6", "13.0", 12288, False)
    assert gpu.describe() == "NVIDIA RTX A2000 12GB (compute capability 8.6)"
    assert _gpu_info(SimpleNamespace(name="Orin", major=8, minor=7, totalGlobalMem=0, integrated=1), 0).integrated


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_without_tensorrt_every_question_has_an_answer() -> None:
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed") as refused:
        import_tensorrt()
    assert refused.value.exit_code == 5 and "pip install 'trt_mass[gpu]'" in str(refused.value)
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        require_tensorrt_11()
    assert tensorrt_version() == (None, "tensorrt is not installed")
    environment = probe_tensorrt_environment()
    assert not environment.usable and environment.problem == "tensorrt is not installed"
    assert TensorRTEnvironment("11.4.0.106", GpuInfo("x", "8.6")).usable
