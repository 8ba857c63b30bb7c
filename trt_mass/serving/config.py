"""Triton model configuration (config.pbtxt) written from a model's metadata, and read back by a client.

One function writes the configuration of every model trt_mass puts on a Triton server: the stock
repository of `trtmass triton-repo` (platform onnxruntime_onnx or tensorrt_plan) and the Python-backend
model of `trtmass serve`.  Both carry the same inputs and outputs (the engine graph's, static shapes,
max_batch_size 0: the graph batches its 26 views itself) and the same parameters, so one client checks
them the same way:

    trt_mass                  the model's whole metadata (trt_mass.metadata.ModelMetadata JSON)
    trt_mass.model_id         arch-hash-precision[-target], as in results
    trt_mass.weights_sha256   the weights' hash
    trt_mass.precision        fp32 / fp16 / int8
    trt_mass.graph_spec       tiles, grid, thresholds, N (JSON)
    trt_mass.operating_points the measured operating points (JSON, "null" without)
    trt_mass.source_sha256    SHA-256 of the ONNX the served file is (or was built from)
    trt_mass.engine           the engine's sidecar facts (TensorRT version, GPU), plans only

Text format follows Triton's ModelConfig protobuf (model_config.proto); tests parse it with the
protobuf that tritonclient ships.  Reading the served configuration needs no protobuf: both client
protocols give it as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trt_mass.errors import ModelError
from trt_mass.metadata import METADATA_KEY, ModelMetadata, TensorSpec

# numpy dtype name <-> Triton's ModelConfig data type and its inference-protocol datatype.
CONFIG_DTYPES = {"uint16": "TYPE_UINT16", "int32": "TYPE_INT32", "float32": "TYPE_FP32", "int64": "TYPE_INT64",
                 "float16": "TYPE_FP16", "uint8": "TYPE_UINT8"}
PROTOCOL_DTYPES = {name: config[len("TYPE_"):] for name, config in CONFIG_DTYPES.items()}
INSTANCE_KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}


@dataclass(frozen=True)
class ServedModel:
    """What a model configuration says: its I/O (numpy dtypes, static shapes) and its trt_mass parameters."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: dict[str, str]

    def metadata(self, where: str) -> ModelMetadata:
        """The served model's trt_mass metadata; ModelError when it carries none."""
        if METADATA_KEY not in self.parameters:
            raise ModelError(f"{where}: model {self.name!r} carries no trt_mass metadata in its configuration "
                             "(write the repository with trtmass triton-repo, or serve with trtmass serve)")
        return ModelMetadata.from_json(self.parameters[METADATA_KEY], f"{where} model {self.name!r}")


def config_parameters(metadata: ModelMetadata, source_sha256: str,
                      engine: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The trt_mass parameters of a model configuration (see the module docstring)."""
    points = metadata.operating_points
    parameters = {
        METADATA_KEY: metadata.to_json(),
        "trt_mass.model_id": metadata.model_id,
        "trt_mass.weights_sha256": metadata.weights_sha256,
        "trt_mass.precision": metadata.precision,
        "trt_mass.graph_spec": json.dumps(metadata.graph_spec.to_dict(), sort_keys=True),
        "trt_mass.operating_points": json.dumps(None if points is None else points.to_dict(), sort_keys=True),
        "trt_mass.source_sha256": source_sha256,
    }
    if engine is not None:
        parameters["trt_mass.engine"] = json.dumps(dict(engine), sort_keys=True)
    return parameters


def model_config_text(name: str, metadata: ModelMetadata, *, instances: int, kind: str,
                      parameters: Mapping[str, str], platform: str | None = None, backend: str | None = None,
                      default_model_filename: str | None = None) -> str:
    """config.pbtxt of one model: exactly one of `platform` (stock backends) or `backend` ("python")."""
    if (platform is None) == (backend is None):
        raise ValueError("give exactly one of platform and backend")
    if instances < 1:
        raise ModelError(f"instances must be at least 1, got {instances}")
    lines = [f"name: {_quoted(name)}"]
    lines.append(f"platform: {_quoted(platform)}" if platform is not None else f"backend: {_quoted(str(backend))}")
    if default_model_filename is not None:
        lines.append(f"default_model_filename: {_quoted(default_model_filename)}")
    lines.append("max_batch_size: 0")
    lines += _tensors("input", metadata.inputs) + _tensors("output", metadata.outputs)
    lines.append(f"instance_group [ {{ count: {instances} kind: {INSTANCE_KINDS[kind]} }} ]")
    for key in sorted(parameters):
        lines.append(f"parameters {{ key: {_quoted(key)} value {{ string_value: {_quoted(parameters[key])} }} }}")
    return "\n".join(lines) + "\n"


def _tensors(field: str, tensors: tuple[TensorSpec, ...]) -> list[str]:
    lines = [f"{field} ["]
    for index, tensor in enumerate(tensors):
        if tensor.dtype not in CONFIG_DTYPES:
            raise ModelError(f"tensor {tensor.name!r} has dtype {tensor.dtype}, which this writer does not map")
        dims = ", ".join(str(d) for d in tensor.shape)
        comma = "," if index < len(tensors) - 1 else ""
        lines.append(f"  {{ name: {_quoted(tensor.name)} data_type: {CONFIG_DTYPES[tensor.dtype]} dims: [ {dims} ] }}"
                     f"{comma}")
    return [*lines, "]"]


def _quoted(text: str) -> str:
    """A protobuf text-format string literal (C escapes; non-ASCII as octal bytes)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def served_model(config: Mapping[str, Any]) -> ServedModel:
    """A ServedModel from the JSON form of a ModelConfig (HTTP /config, or gRPC's with as_json=True)."""
    dtypes = {config_name: name for name, config_name in CONFIG_DTYPES.items()}

    def tensors(entries: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(str(e["name"]), dtypes.get(str(e.get("data_type")), str(e.get("data_type"))),
                                tuple(int(d) for d in e.get("dims", []))) for e in entries)

    parameters = {str(key): str(value.get("string_value", "")) for key, value in
                  (config.get("parameters") or {}).items()}
    return ServedModel(str(config.get("name", "")), tensors(config.get("input") or []),
                       tensors(config.get("output") or []), parameters)


def served_problems(expected: ModelMetadata, served: ServedModel, served_metadata: ModelMetadata) -> list[str]:
    """Why the served model is not the expected one (empty: it is).

    The canvas element type may differ (uint16 for ONNX Runtime, int32 for a TensorRT plan): it is how the
    canvas travels, not what it holds.  Everything else -- weights, precision, target, tiles, thresholds,
    and the I/O names and shapes -- must be equal, and the configuration must declare the I/O its own
    metadata declares.
    """
    problems = []
    if served_metadata.weights_sha256 != expected.weights_sha256:
        problems.append(f"weights {served_metadata.weights_sha256[:12]}… are not the expected "
                        f"{expected.weights_sha256[:12]}…")
    for what in ("precision", "target", "kind"):
        if getattr(served_metadata, what) != getattr(expected, what):
            problems.append(f"{what} {getattr(served_metadata, what)}, expected {getattr(expected, what)}")
    if served_metadata.graph_spec.geometry != expected.graph_spec.geometry:
        problems.append(f"geometry {_geometry(served_metadata)}, expected {_geometry(expected)}")
    served_graph, expected_graph = served_metadata.graph_spec.to_dict(), expected.graph_spec.to_dict()
    for key in sorted(set(served_graph) | set(expected_graph)):
        if key not in ("geometry", "canvas_dtype") and served_graph.get(key) != expected_graph.get(key):
            problems.append(f"{key} {served_graph.get(key)}, expected {expected_graph.get(key)}")
    declared = _io(served_metadata.inputs, served_metadata.outputs)
    configured = _io(served.inputs, served.outputs)
    if configured != declared:
        problems.append(f"configuration I/O {configured} differs from the served model's metadata {declared}")
    shapes = {name: shape for name, (_, shape) in declared.items()}
    wanted = {name: shape for name, (_, shape) in _io(expected.inputs, expected.outputs).items()}
    if shapes != wanted:
        problems.append(f"I/O shapes {shapes}, expected {wanted}")
    return problems


def _geometry(metadata: ModelMetadata) -> str:
    geometry = metadata.graph_spec.geometry
    return f"tile {geometry.tile_h}x{geometry.tile_w}, grid {geometry.grid}"


def _io(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {t.name: (t.dtype, t.shape) for t in (*inputs, *outputs)}
