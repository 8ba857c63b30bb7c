"""The GPU side of the machine: cuda-python, the CUDA device, and whether TensorRT is there.

Whether tensorrt and cuda-python import, and why not (always lazily, inside a function): the engine
builder, the TensorRT runner, `--backend auto` and `engine-info` all ask here first.

cuda-python functions return tuples, (error, value...): an error code first, then the results;
TensorRT's own sample NVIDIA/TensorRT samples/python/common_runtime.py (cuda_call/check_cuda_err)
unwraps them the same way.  `cuda_call` turns a non-success code into a RuntimeError that names the
call and the CUDA error.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import re
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from trt_mass.errors import BackendUnavailableError, TrtMassError

if TYPE_CHECKING:  # typed against TensorRT's own API by tests/tensorrt_api (mypy.ini), Any without it
    import tensorrt as trt

TENSORRT_INSTALL = ("pip install 'trt_mass[gpu]' (TensorRT 11 wheels from NVIDIA's package index) on a PC with "
                    "an NVIDIA GPU")
CUDA_PYTHON_INSTALL = "pip install 'trt_mass[gpu]' on a PC with an NVIDIA GPU"
OLD_DRIVER = ("the NVIDIA driver is older than CUDA 13 (cudaErrorInsufficientDriver): the cu13 wheels of TensorRT 11 "
              "and cuda-python need a driver for CUDA 13 (R580 or newer); update the driver")
NO_DRIVER = "no NVIDIA driver (libcuda.so.1 cannot be loaded)"


# ------------------------------------------------------------------------------------------- cuda-python
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
        raise BackendUnavailableError(f"cuda-python is not installed ({error}); {CUDA_PYTHON_INSTALL}") from error


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


# ----------------------------------------------------------------------------------------------- the GPU
@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or run on.

    Attributes:
        name: the device name as CUDA reports it (e.g. "NVIDIA RTX A2000 12GB").
        compute_capability: "major.minor" (e.g. "8.6").
        driver_version: the CUDA driver API version ("13.0"), when known.
        total_memory_mib: device memory (shared with the CPU on Jetson), when known.
        integrated: True for an integrated GPU (Jetson).
    """

    name: str
    compute_capability: str
    driver_version: str | None = None
    total_memory_mib: int | None = None
    integrated: bool = False

    def describe(self) -> str:
        return f"{self.name} (compute capability {self.compute_capability})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability,
                "driver_version": self.driver_version, "total_memory_mib": self.total_memory_mib,
                "integrated": self.integrated}


def probe_gpu(device: int = 0) -> tuple[GpuInfo | None, str]:
    """(GpuInfo, "") for CUDA device `device`, or (None, why not) without cuda-python, driver or GPU."""
    try:
        cudart = import_cudart()
    except TrtMassError:
        return None, "cuda-python is not installed"
    try:
        count = cuda_call(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if not count or device >= int(count):
            return None, "no CUDA GPU found"
        # cudaGetDeviceProperties -> cudaDeviceProp (name, major, minor, totalGlobalMem, integrated), as in
        # the CUDA runtime API reference; cuda-python returns it as (error, prop).
        prop = cuda_call(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        driver = cuda_call(cudart, cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")
    except Exception as error:  # no driver, no device node, a container without the GPU: all mean "no GPU"
        if "cudaErrorInsufficientDriver" in str(error):
            return None, _insufficient_driver()
        return None, f"no usable CUDA GPU ({error})"
    return _gpu_info(prop, driver), ""


def _insufficient_driver() -> str:
    """CUDA says cudaErrorInsufficientDriver both without a driver and with one too old: tell them apart."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return NO_DRIVER
    return OLD_DRIVER


def _gpu_info(prop: Any, driver: Any) -> GpuInfo:
    raw_name = prop.name
    if isinstance(raw_name, bytes | bytearray):
        raw_name = bytes(raw_name).split(b"\0", 1)[0].decode(errors="replace")
    driver_text = f"{int(driver) // 1000}.{int(driver) % 1000 // 10}" if driver else None
    return GpuInfo(
        name=str(raw_name).strip(),
        compute_capability=f"{int(prop.major)}.{int(prop.minor)}",
        driver_version=driver_text,
        total_memory_mib=int(prop.totalGlobalMem) // (1 << 20),
        integrated=bool(getattr(prop, "integrated", False)),
    )


def require_gpu() -> GpuInfo:
    """The CUDA GPU; BackendUnavailableError (exit code 5) with the reason when there is none."""
    gpu, why = probe_gpu()
    if gpu is None:
        raise BackendUnavailableError(f"no CUDA GPU: {why}; build the engine on the PC (GPU) that will run it")
    return gpu


# -------------------------------------------------------------------------------------------- TensorRT
def version_tuple(version: str) -> tuple[int, ...]:
    """"11.4.1.5" -> (11, 4, 1, 5); stops at the first part that is not a number."""
    parts = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts)


def import_tensorrt() -> Any:
    """The tensorrt module; BackendUnavailableError (exit code 5) when it is not installed."""
    try:
        import tensorrt as trt
    except ImportError as error:
        raise BackendUnavailableError(f"tensorrt is not installed ({error}); {TENSORRT_INSTALL}") from error
    return trt


def require_tensorrt_11() -> Any:
    """The tensorrt module when it is TensorRT 11 (strongly typed networks, precision from the ONNX)."""
    trt = import_tensorrt()
    version = version_tuple(str(trt.__version__))
    if not version or version[0] < 11:
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} is installed; trt_mass needs TensorRT 11 (strongly typed networks, "
            f"precision from the ONNX); {TENSORRT_INSTALL}"
        )
    return trt


def tensorrt_version() -> tuple[str | None, str]:
    """(version, "") when tensorrt imports, else (None, why not); never raises."""
    if importlib.util.find_spec("tensorrt") is None:
        return None, "tensorrt is not installed"
    try:
        import tensorrt
    except Exception as error:  # installed but unusable (missing libraries): say so
        return None, f"tensorrt cannot be imported ({error})"
    return str(tensorrt.__version__), ""


@dataclass(frozen=True)
class TensorRTEnvironment:
    """What this machine offers TensorRT: its version and GPU, or why not (problem, empty when usable)."""

    tensorrt_version: str | None
    gpu: GpuInfo | None
    problem: str = ""

    @property
    def usable(self) -> bool:
        return self.tensorrt_version is not None and self.gpu is not None


def probe_tensorrt_environment() -> TensorRTEnvironment:
    """Probe for tensorrt and a CUDA GPU, cheapest first; tensorrt is imported only when a GPU is there."""
    if importlib.util.find_spec("tensorrt") is None:
        return TensorRTEnvironment(None, None, "tensorrt is not installed")
    gpu, why = probe_gpu()
    if gpu is None:
        said = "cuda-python" in why or why == OLD_DRIVER
        return TensorRTEnvironment(None, None, why if said else f"no CUDA GPU ({why})")
    version, problem = tensorrt_version()
    return TensorRTEnvironment(version, gpu, problem)


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints (-1 for a dynamic dimension)."""
    return tuple(int(dims[index]) for index in range(len(dims)))


def host_memory_bytes(memory: trt.IHostMemory) -> bytes:
    """The bytes of a serialized engine or timing cache (IHostMemory has the buffer protocol; its stubs
    do not say so)."""
    return bytes(memoryview(cast(Any, memory)))


_LOGGER: trt.Logger | None = None
_LOGGER_LOCK = threading.Lock()


def tensorrt_logger(verbose: bool = False) -> trt.Logger:
    """The process's one TensorRT logger, at the severity asked for now.

    TensorRT keeps the first logger a process hands it and ignores later ones, so a second
    trt.Logger(VERBOSE) would silently log nothing more: every builder and runtime gets this one.
    """
    import tensorrt as trt

    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = trt.Logger(trt.Logger.WARNING)
        _LOGGER.min_severity = trt.Logger.VERBOSE if verbose else trt.Logger.WARNING
        return _LOGGER
