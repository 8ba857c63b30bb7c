"""TensorRT runner: a checked engine (.plan + sidecar), one CUDA stream, static device and pinned host buffers.

Written against the TensorRT 11 Python API (name-based I/O: num_io_tensors, get_tensor_name,
get_tensor_mode, set_tensor_address, execute_async_v3) and cuda-python's runtime bindings, following
NVIDIA/TensorRT samples/python/common_runtime.py (cudaMallocHost / cudaMalloc / cudaMemcpyAsync /
execute_async_v3 / cudaStreamSynchronize).  Not run on a GPU in this repository's CI.
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_mass.errors import ModelError
from trt_mass.metadata import ModelMetadata
from trt_mass.runners.base import Runner

if TYPE_CHECKING:  # typed against TensorRT's own API by tests/tensorrt_api (mypy.ini), Any without it
    import tensorrt as trt


@dataclass
class _Binding:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int
    device: int = 0
    host_pointer: int = 0
    host: np.ndarray | None = None


class TensorRTRunner(Runner):
    """Runs a TensorRT engine built by `trtmass build-engine`.

    Before anything is deserialized the engine must pass the sidecar checks (trt_mass.engine.checks):
    inside `model_dir` (symlinks resolved), SHA-256 equal to the sidecar's (on the very bytes that are
    deserialized), built for this GPU and this TensorRT, and no engine host code unless
    `allow_engine_host_code`.

    Args:
        model_path: the engine file (model.plan, with model.plan.json beside it).
        model_dir: the only folder engines are loaded from (default: the folder of `model_path` as given).
        allow_engine_host_code: allow version-compatible engines, whose embedded lean runtime runs as host
            code when loaded (Runtime.engine_host_code_allowed).  Only for engines you built yourself.
        device: CUDA device ordinal.

    After each infer(), `last_stage_ms` holds the device times of the stages measured with CUDA events:
    {"h2d": ..., "inference": ..., "d2h": ...} (milliseconds).
    """

    backend = "trt"

    def __init__(
        self,
        model_path: str | Path,
        model_dir: str | Path | None = None,
        allow_engine_host_code: bool = False,
        device: int = 0,
    ) -> None:
        super().__init__()
        self.engine_path = Path(model_path)
        self.model_dir = Path(model_dir) if model_dir is not None else self.engine_path.parent
        self.allow_engine_host_code = allow_engine_host_code
        self.device = device
        self.last_stage_ms: dict[str, float] = {}
        self._cudart: Any = None
        self._runtime: trt.Runtime | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: Any = None
        self._events: list[Any] = []
        self._bindings: list[_Binding] = []

    # ------------------------------------------------------------------------------------------ activate
    def _activate(self) -> ModelMetadata:
        from trt_mass.engine.checks import LoadContext, check_engine
        from trt_mass.engine.gpu import import_cudart, import_tensorrt, probe_gpu
        from trt_mass.engine.sidecar import read_sidecar

        trt = import_tensorrt()
        cudart = import_cudart()
        sidecar = read_sidecar(self.engine_path)
        gpu, _ = probe_gpu(self.device)
        # The hash is taken of the exact bytes handed to TensorRT below (no second read that could differ), and
        # every check passes before anything is deserialized: an engine is code-like.
        try:
            blob: bytes | None = self.engine_path.read_bytes() if self.engine_path.is_file() else None
        except OSError as error:
            raise ModelError(f"{self.engine_path}: cannot read the engine ({error})") from error
        context = LoadContext(gpu, str(trt.__version__), self.model_dir, self.allow_engine_host_code)
        check_engine(sidecar, self.engine_path, context, engine_bytes=blob)
        assert blob is not None  # check_engine refuses a missing engine
        self._cudart = cudart
        try:
            return self._load(cudart, blob, sidecar.model_metadata)
        except BaseException:
            with contextlib.suppress(Exception):  # the load error is the one to report
                self._release()
            raise

    def _load(self, cudart: Any, blob: bytes, metadata: ModelMetadata) -> ModelMetadata:
        import tensorrt as trt

        from trt_mass.engine.gpu import tensorrt_logger

        self._call(cudart.cudaSetDevice(self.device), "cudaSetDevice")
        runtime = trt.Runtime(tensorrt_logger())
        if runtime is None:
            raise ModelError(f"{self.engine_path}: TensorRT could not create a runtime (see its messages above)")
        if self.allow_engine_host_code:
            # Runtime.engine_host_code_allowed (default False): needed to deserialize a version-compatible
            # plan with its embedded lean runtime (TensorRT docs, Engine Compatibility > Version Compatibility).
            runtime.engine_host_code_allowed = True
        # deserialize_cuda_engine(buffer) -> ICudaEngine, or None (Core/Runtime).
        engine = runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise ModelError(f"{self.engine_path}: TensorRT could not deserialize the engine (see its messages above)")
        context = engine.create_execution_context()
        if context is None:
            raise ModelError(f"{self.engine_path}: TensorRT could not create an execution context (GPU memory?)")
        self._engine, self._context = engine, context
        self._runtime = runtime
        found = self._engine_io(engine, metadata)
        self._stream = self._call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        for _ in range(4):  # appended one by one, so a failure frees the ones made
            self._events.append(self._call(cudart.cudaEventCreate(), "cudaEventCreate"))
        for name, (is_input, dtype_name, shape) in found.items():
            self._bind(cudart, context, _Binding(name, is_input, shape, np.dtype(dtype_name), 0))
        return metadata

    def _engine_io(self, engine: trt.ICudaEngine,
                   metadata: ModelMetadata) -> dict[str, tuple[bool, str, tuple[int, ...]]]:
        """{name: (is input, dtype, shape)} of the engine, refused unless it is what the metadata declares."""
        import tensorrt as trt

        from trt_mass.engine.gpu import dims_tuple

        declared = {t.name: (True, t) for t in metadata.inputs} | {t.name: (False, t) for t in metadata.outputs}
        found = {}
        # Name-based I/O (TensorRT >= 10; unchanged in 11): num_io_tensors, get_tensor_name(i),
        # get_tensor_mode(name) -> TensorIOMode.INPUT/OUTPUT, get_tensor_shape(name), get_tensor_dtype(name).
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = dims_tuple(engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            found[name] = (is_input, dtype.name, shape)
        expected = {name: (is_input, t.dtype, t.shape) for name, (is_input, t) in declared.items()}
        if found != expected:
            raise ModelError(f"{self.engine_path}: engine I/O {found} differs from the model metadata in its "
                             f"sidecar {expected}")
        if any(d < 0 for name, (_, _, shape) in found.items() for d in shape if name != "view_index"):
            raise ModelError(f"{self.engine_path}: only view_index may have a dynamic shape (trt_mass graphs are "
                             "static otherwise)")
        views = metadata.graph_spec.geometry.num_views
        # view_index [K]: buffers for every view; each call sets K (IExecutionContext.set_input_shape).
        return {name: (is_input, dtype, (views,) if name == "view_index" else shape)
                for name, (is_input, dtype, shape) in found.items()}

    def _bind(self, cudart: Any, context: trt.IExecutionContext, binding: _Binding) -> None:
        """Device and pinned host memory for one I/O tensor, its address given to the execution context."""
        binding.nbytes = max(1, int(np.prod(binding.shape, dtype=np.int64)) * binding.dtype.itemsize)
        self._bindings.append(binding)  # before allocating, so a failure frees what was allocated
        binding.device = int(self._call(cudart.cudaMalloc(binding.nbytes), f"cudaMalloc({binding.name})"))
        # Pinned (page-locked) host memory, so cudaMemcpyAsync really is asynchronous and fast.
        binding.host_pointer = int(self._call(cudart.cudaMallocHost(binding.nbytes),
                                              f"cudaMallocHost({binding.name})"))
        buffer: Any = (ctypes.c_byte * binding.nbytes).from_address(binding.host_pointer)
        binding.host = np.frombuffer(buffer, dtype=binding.dtype,
                                     count=binding.nbytes // binding.dtype.itemsize).reshape(binding.shape)
        # set_tensor_address(name, device pointer) for every I/O tensor before execute_async_v3
        # (IExecutionContext, Core/ExecutionContext).
        if not context.set_tensor_address(binding.name, binding.device):
            raise ModelError(f"{self.engine_path}: TensorRT refused the address of tensor {binding.name!r}")

    @property
    def device_memory_bytes(self) -> int | None:
        """Device memory this runner holds: the engine's weights, its activation memory and the I/O buffers.

        ICudaEngine.get_engine_stat(EngineStat.TOTAL_WEIGHTS_SIZE) (TensorRT 11.4) is the weights;
        device_memory_size_v2 what the execution context allocates for the activations.
        """
        if self._engine is None:
            return None
        import tensorrt as trt

        weights = int(self._engine.get_engine_stat(trt.EngineStat.TOTAL_WEIGHTS_SIZE))
        activations = int(self._engine.device_memory_size_v2)
        return weights + activations + sum(binding.nbytes for binding in self._bindings)

    # --------------------------------------------------------------------------------------------- infer
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self._cudart
        stream = self._stream
        assert self._context is not None
        # The current CUDA device belongs to the calling thread, and a caller may infer from another thread
        # than the one that loaded the engine: set it on every call.
        self._call(cudart.cudaSetDevice(self.device), "cudaSetDevice")
        start, copied_in, inferred, copied_out = self._events
        host_to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        device_to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        inputs = [b for b in self._bindings if b.is_input]
        outputs = [b for b in self._bindings if not b.is_input]
        sizes = {}
        for binding in inputs:
            assert binding.host is not None
            value = feed[binding.name]
            if binding.name == "view_index":  # dynamic length K: the first K slots, and the shape set per call
                binding.host[: value.size] = value
                if not self._context.set_input_shape(binding.name, (int(value.size),)):
                    raise ModelError(f"{self.engine_path}: TensorRT refused view_index of length {value.size}")
                sizes[binding.name] = value.nbytes
            else:
                np.copyto(binding.host, value, casting="no")
                sizes[binding.name] = binding.nbytes
        self._call(cudart.cudaEventRecord(start, stream), "cudaEventRecord")
        for binding in inputs:
            self._call(cudart.cudaMemcpyAsync(binding.device, binding.host_pointer, sizes[binding.name],
                                              host_to_device, stream), f"cudaMemcpyAsync(H2D {binding.name})")
        self._call(cudart.cudaEventRecord(copied_in, stream), "cudaEventRecord")
        # execute_async_v3(stream_handle) enqueues the engine on the stream; returns False on failure.
        if not self._context.execute_async_v3(int(stream)):
            raise ModelError(f"{self.engine_path}: TensorRT failed to enqueue the engine")
        self._call(cudart.cudaEventRecord(inferred, stream), "cudaEventRecord")
        for binding in outputs:
            self._call(cudart.cudaMemcpyAsync(binding.host_pointer, binding.device, binding.nbytes, device_to_host,
                                              stream), f"cudaMemcpyAsync(D2H {binding.name})")
        self._call(cudart.cudaEventRecord(copied_out, stream), "cudaEventRecord")
        self._call(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        self.last_stage_ms = {
            "h2d": float(self._call(cudart.cudaEventElapsedTime(start, copied_in), "cudaEventElapsedTime")),
            "inference": float(self._call(cudart.cudaEventElapsedTime(copied_in, inferred), "cudaEventElapsedTime")),
            "d2h": float(self._call(cudart.cudaEventElapsedTime(inferred, copied_out), "cudaEventElapsedTime")),
        }
        # Copies: the pinned buffers are overwritten by the next call.
        return {b.name: np.array(b.host, copy=True) for b in outputs}

    # ---------------------------------------------------------------------------------------- deactivate
    def _deactivate(self) -> None:
        self._release()

    def _release(self) -> None:
        """Free everything (context before the memory it points at); keep going past individual failures."""
        cudart = self._cudart
        self._context = None
        self._engine = None
        self._runtime = None
        if cudart is None:
            return
        failures: list[str] = []
        for binding in self._bindings:
            if binding.device:
                self._try(cudart.cudaFree, binding.device, failures)
            if binding.host_pointer:
                binding.host = None
                self._try(cudart.cudaFreeHost, binding.host_pointer, failures)
        self._bindings = []
        for event in self._events:
            self._try(cudart.cudaEventDestroy, event, failures)
        self._events = []
        if self._stream is not None:
            self._try(cudart.cudaStreamDestroy, self._stream, failures)
            self._stream = None
        self._cudart = None
        if failures:
            raise ModelError("releasing TensorRT buffers failed: " + "; ".join(failures))

    def _try(self, function: Any, handle: Any, failures: list[str]) -> None:
        try:
            self._call(function(handle), function.__name__)
        except Exception as error:  # free the rest, then report
            failures.append(str(error))

    def _call(self, result: Any, what: str) -> Any:
        from trt_mass.engine.gpu import cuda_call

        try:
            return cuda_call(self._cudart, result, what)
        except RuntimeError as error:
            raise ModelError(f"{self.engine_path}: {error}") from error
