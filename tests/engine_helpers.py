"""Helpers for the engine tests: model metadata, real sidecar files beside (fake) engine bytes, int32 exports.

Fake engine bytes are only ever hashed and checked here, never deserialized: without TensorRT nothing
can load them, and the checks under test run before any deserialization.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from trt_mass.engine.gpu import GpuInfo
from trt_mass.engine.sidecar import BuildOptions, EngineSidecar, write_sidecar
from trt_mass.metadata import ModelMetadata, TensorSpec
from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry

A2000 = GpuInfo("NVIDIA RTX A2000 12GB", "8.6", "13.0", 12000)
ADA2000 = GpuInfo("NVIDIA RTX 2000 Ada Generation", "8.9", "13.0", 16000)
T1000 = GpuInfo("NVIDIA T1000 8GB", "7.5", "13.0", 8000)
TRT = "11.4.1.5"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
no_tensorrt = pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here; these tests state its absence")


def onnx_stand_in(folder: Path, content: bytes = b"an onnx file, hashed only") -> Path:
    """folder/model.onnx with `content`: the selection and the checks only hash it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(content)
    return path


def make_metadata(precision: str = "fp16", canvas_dtype: str = "int32", target: str = "tensorrt") -> ModelMetadata:
    spec = GraphSpec(geometry=TileGeometry(256, 224, 5), canvas_dtype=canvas_dtype)
    canvas_h, canvas_w = spec.geometry.canvas_hw
    return ModelMetadata(
        kind="engine_graph",
        model_spec=ModelSpec(arch="resnet18", head_width=32),
        graph_spec=spec,
        weights_sha256="ab" * 32,
        init="random:seed=0,prior=0.001",
        precision=precision,
        target=target if precision != "fp32" else "any",
        calibration_sha256="cd" * 32 if precision == "int8" else None,
        inputs=(TensorSpec("canvas", canvas_dtype, (1, 1, canvas_h, canvas_w)),),
        outputs=(TensorSpec("boxes", "float32", (spec.max_candidates, 4)),
                 TensorSpec("scores", "float32", (spec.max_candidates,))),
    )


def write_engine_pair(
    folder: Path,
    onnx_sha256: str,
    *,
    name: str = "model.plan",
    payload: bytes = b"not a real engine: hashed and checked, never deserialized",
    gpu: GpuInfo = A2000,
    tensorrt_version: str = TRT,
    hardware_compatibility: str = "none",
    version_compatible: bool = False,
    source_onnx: str = "model.onnx",
    metadata: ModelMetadata | None = None,
) -> tuple[Path, EngineSidecar]:
    """Engine bytes and their real sidecar in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = folder / name
    engine.write_bytes(payload)
    sidecar = EngineSidecar(
        engine_sha256=hashlib.sha256(payload).hexdigest(),
        engine_bytes=len(payload),
        source_onnx=source_onnx,
        source_onnx_sha256=onnx_sha256,
        model_metadata=metadata or make_metadata(),
        tensorrt_version=tensorrt_version,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        gpu_driver_version=gpu.driver_version,
        gpu_memory_mib=gpu.total_memory_mib,
        build=BuildOptions(profile_name="a2000-ada2000-int8", profile={"name": "a2000-ada2000-int8"},
                           hardware_compatibility_level=hardware_compatibility,
                           version_compatible=version_compatible),
        trt_mass_version="0.1.0",
    )
    write_sidecar(engine, sidecar)
    return engine, sidecar


def export_tiny_int32(folder: Path, quiet: bool = False) -> Path:
    """The conftest tiny model (tile 256x224, grid 5) exported with an int32 canvas; reused when present.

    `quiet`: the paper's init instead of the structured weights: nothing anywhere scores above the threshold.
    """
    name = "quiet-int32" if quiet else "tiny-int32"
    path = folder / f"{name}.onnx"
    if path.is_file():
        return path
    from tests.conftest import quiet_network, structured_random_network
    from trt_mass.model.export import ExportOptions, export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    network = quiet_network() if quiet else structured_random_network(0, 0.001)
    spec = GraphSpec(geometry=TileGeometry(256, 224, 5), canvas_dtype="int32")
    export_onnx(network, "random:seed=0,prior=0.001", ExportOptions(spec), path)  # written atomically
    return path
