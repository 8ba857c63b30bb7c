"""`trtmass triton-repo`: the ONNX or a checked plan, and a config.pbtxt Triton's protobuf reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_helpers import write_engine_pair
from trt_mass.metadata import METADATA_KEY, ModelMetadata, file_sha256, read_onnx_metadata

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient ships Triton's ModelConfig protobuf")
text_format = pytest.importorskip("google.protobuf.text_format")


def triton_repo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_mass.cli", "triton-repo", *args], capture_output=True,
                          text=True, timeout=300)


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_onnx_repository_serves_the_very_file_with_its_metadata(watch_model: Path, tmp_path: Path) -> None:
    done = triton_repo(str(watch_model), "--out", str(tmp_path / "repo"), "--instances", "3", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    model_dir = tmp_path / "repo" / "trt_mass"
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == \
        ["1", "1/model.onnx", "config.pbtxt"]
    assert file_sha256(model_dir / "1" / "model.onnx") == file_sha256(watch_model)
    config = read_config(model_dir / "config.pbtxt")
    metadata = read_onnx_metadata(watch_model)
    assert (config.platform, config.instance_group[0].count) == ("onnxruntime_onnx", 3)
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert ModelMetadata.from_json(config.parameters[METADATA_KEY].string_value) == metadata
    assert config.parameters["trt_mass.source_sha256"].string_value == file_sha256(watch_model)
    assert "trt_mass.engine" not in config.parameters
    # Existing model folders are not overwritten by accident.
    again = triton_repo(str(watch_model), "--out", str(tmp_path / "repo"))
    assert again.returncode == 2 and "use --force" in again.stderr
    assert triton_repo(str(watch_model), "--out", str(tmp_path / "repo"), "--force").returncode == 0


def test_a_plan_is_taken_only_when_its_sidecar_names_this_onnx(watch_model: Path, tmp_path: Path) -> None:
    metadata = read_onnx_metadata(watch_model)
    engines = tmp_path / "engines"
    plan, sidecar = write_engine_pair(engines, file_sha256(watch_model), metadata=metadata)
    done = triton_repo(str(watch_model), "--out", str(tmp_path / "repo"), "--engine", str(plan), "--name", "mass")
    assert done.returncode == 0, done.stderr
    model_dir = tmp_path / "repo" / "mass"
    assert (model_dir / "1" / "model.plan").read_bytes() == plan.read_bytes()
    config = read_config(model_dir / "config.pbtxt")
    assert (config.name, config.platform) == ("mass", "tensorrt_plan")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    engine = json.loads(config.parameters["trt_mass.engine"].string_value)
    assert (engine["tensorrt_version"], engine["gpu_name"]) == (sidecar.tensorrt_version, sidecar.gpu_name)

    other, _ = write_engine_pair(tmp_path / "other", "0" * 64, metadata=metadata)
    refused = triton_repo(str(watch_model), "--out", str(tmp_path / "repo2"), "--engine", str(other))
    assert refused.returncode == 4 and "was built from model.onnx (SHA-256 000000000000…)" in refused.stderr
    plan.write_bytes(plan.read_bytes() + b"tampered")
    refused = triton_repo(str(watch_model), "--out", str(tmp_path / "repo3"), "--engine", str(plan))
    assert refused.returncode == 4 and "differs from its sidecar's" in refused.stderr
    assert not (tmp_path / "repo2").exists() and not (tmp_path / "repo3").exists()
    cpu = triton_repo(str(watch_model), "--out", str(tmp_path / "repo4"), "--engine", str(other), "--device", "cpu")
    assert cpu.returncode == 2 and "a TensorRT plan runs on a GPU" in cpu.stderr
