"""The model `trtmass serve` gives Triton's Python backend: the engine graph on ONNX Runtime, in the stub process.

Triton imports this through the one-line model.py that trt_mass.serving.server writes; `initialize`
reads the ONNX path from the model's configuration (parameter trt_mass.onnx_path), loads it with the
same runner `trtmass detect` uses, and refuses a file whose metadata is not the one the configuration
announces (the file changed after the server was set up).

Tensors cross between Triton and NumPy by DLPack only: the Python backend stub shipped with
nvidia-pytriton 0.7.0 was built with a pybind11 that predates NumPy 2's array layout, so its
`as_numpy()` and `Tensor(name, ndarray)` read NumPy 2 arrays as empty; DLPack does not involve it.
The stub renames an output's capsule once it has taken it, which NumPy's capsule destructor reports as
an unraisable "PyCapsule_GetPointer called with incorrect name" per output; that one report is dropped
(every other unraisable error still reaches the log).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from trt_mass.metadata import METADATA_KEY

CONSUMED_CAPSULE = "PyCapsule_GetPointer called with incorrect name"
ONNX_PATH_PARAMETER = "trt_mass.onnx_path"
THREADS_PARAMETER = "trt_mass.threads"


class _DLPackInput:
    """A Triton tensor as a DLPack producer NumPy accepts (it asks for keyword arguments the stub lacks)."""

    def __init__(self, tensor: Any) -> None:
        self._tensor = tensor

    def __dlpack__(self, **_: Any) -> Any:
        return self._tensor.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU: the Python backend hands CPU tensors to a KIND_CPU instance


class TritonPythonModel:
    """Triton Python-backend model: initialize / execute / finalize (the backend's names)."""

    def initialize(self, args: dict[str, str]) -> None:
        from trt_mass.runners.ort import OnnxRuntimeRunner

        _drop_consumed_capsule_reports()
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        threads = int(parameters[THREADS_PARAMETER]) if parameters.get(THREADS_PARAMETER) else None
        self.runner = OnnxRuntimeRunner(parameters[ONNX_PATH_PARAMETER], threads=threads).activate()
        if self.runner.metadata.to_json() != parameters[METADATA_KEY]:
            raise RuntimeError(f"{parameters[ONNX_PATH_PARAMETER]} is no longer the model this server announces "
                               "(it changed after trtmass serve started)")
        self.output_names = [t.name for t in self.runner.metadata.outputs]

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # the backend's module, importable inside the stub only

        responses = []
        for request in requests:
            try:
                feed = {t.name: np.from_dlpack(_DLPackInput(pb_utils.get_input_tensor_by_name(request, t.name)))
                        for t in self.runner.metadata.inputs}
                outputs = self.runner.infer(feed)
                tensors = [pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(outputs[name]).__dlpack__())
                           for name in self.output_names]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as error:  # one bad request must not take the others down
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(
                    f"trt_mass: {type(error).__name__}: {error}")))
        return responses

    def finalize(self) -> None:
        self.runner.deactivate()


def _drop_consumed_capsule_reports() -> None:
    previous = sys.unraisablehook

    def hook(report: Any) -> None:
        if not (report.exc_type is ValueError and str(report.exc_value) == CONSUMED_CAPSULE and report.object is None):
            previous(report)

    sys.unraisablehook = hook
