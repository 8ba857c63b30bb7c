"""config.pbtxt as Triton's own ModelConfig protobuf reads it, and the client's checks of a served model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from trt_mass.metadata import METADATA_KEY, ModelMetadata, OperatingPoints, TensorSpec, read_onnx_metadata
from trt_mass.serving.config import (
    config_parameters,
    model_config_text,
    served_model,
    served_problems,
)
from trt_mass.spec import TileGeometry

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient ships Triton's ModelConfig protobuf")
text_format = pytest.importorskip("google.protobuf.text_format")
json_format = pytest.importorskip("google.protobuf.json_format")

CONFIG_TYPES = {"uint16": model_config_pb2.TYPE_UINT16, "int32": model_config_pb2.TYPE_INT32,
                "float32": model_config_pb2.TYPE_FP32}


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def with_points(metadata: ModelMetadata) -> ModelMetadata:
    points = OperatingPoints(scores={"0.25": 0.9, "0.5": 0.8, "1": 0.7, "2": 0.5}, data='mias "fold 1" — ü',
                             source="eval", tpr={"1": 0.75}, images=112, lesions=17)
    return dataclasses.replace(metadata, operating_points=points)


def test_config_parses_as_triton_model_config_and_matches_the_onnx(watch_model: Path) -> None:
    metadata = with_points(read_onnx_metadata(watch_model))
    parameters = config_parameters(metadata, "ab" * 32, engine={"tensorrt_version": "11.4.0", "gpu_name": "RTX A2000"})
    config = parse(model_config_text("trt_mass", metadata, instances=2, kind="gpu", parameters=parameters,
                                     platform="onnxruntime_onnx"))
    assert (config.name, config.platform, config.max_batch_size) == ("trt_mass", "onnxruntime_onnx", 0)
    assert [(t.name, t.data_type, tuple(t.dims)) for t in config.input] == \
        [(t.name, CONFIG_TYPES[t.dtype], t.shape) for t in metadata.inputs]
    assert [(t.name, t.data_type, tuple(t.dims)) for t in config.output] == \
        [(t.name, CONFIG_TYPES[t.dtype], t.shape) for t in metadata.outputs]
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    read_back = {key: value.string_value for key, value in config.parameters.items()}
    assert read_back == parameters  # quotes, backslashes and non-ASCII survive the text format
    assert ModelMetadata.from_json(read_back[METADATA_KEY]) == metadata
    assert json.loads(read_back["trt_mass.operating_points"])["scores"]["1"] == 0.7
    assert json.loads(read_back["trt_mass.graph_spec"])["geometry"] == {"tile_h": 128, "tile_w": 96, "grid": 5}
    # What a client gets back as JSON from the server reads the same.
    served = served_model(json_format.MessageToDict(config, preserving_proto_field_name=True))
    assert served.metadata("test") == metadata and served_problems(metadata, served, metadata) == []


def test_served_problems_name_every_difference(watch_model: Path) -> None:
    expected = read_onnx_metadata(watch_model)
    config = served_model(json_format.MessageToDict(parse(model_config_text(
        "m", expected, instances=1, kind="cpu", parameters=config_parameters(expected, "0" * 64), backend="python")),
        preserving_proto_field_name=True))
    graph = dataclasses.replace(expected.graph_spec, geometry=TileGeometry(128, 128, 5), merge_iou=0.3)
    other = dataclasses.replace(expected, weights_sha256="f" * 64, precision="int8", target="cpu", graph_spec=graph)
    problems = served_problems(expected, config, other)
    assert any(p.startswith("weights ffffffffffff… are not the expected") for p in problems)
    assert "precision int8, expected fp32" in problems and "target cpu, expected any" in problems
    assert "geometry tile 128x128, grid 5, expected tile 128x96, grid 5" in problems
    assert "merge_iou 0.3, expected 0.2" in problems
    assert any(p.startswith("configuration I/O") for p in problems) is False  # the config declares expected's I/O
    # An int32 canvas is how a plan takes the same canvas: not a difference; other shapes are.
    int32 = dataclasses.replace(expected, graph_spec=dataclasses.replace(expected.graph_spec, canvas_dtype="int32"),
                                inputs=(TensorSpec("canvas", "int32", expected.inputs[0].shape),))
    int32_config = dataclasses.replace(config, inputs=int32.inputs)
    assert served_problems(expected, int32_config, int32) == []
    wider = dataclasses.replace(config, outputs=(TensorSpec("boxes", "float32", (64, 4)), *config.outputs[1:]))
    assert any(p.startswith("configuration I/O") for p in served_problems(expected, wider, expected))


def test_a_served_model_without_trt_mass_metadata_is_refused() -> None:
    from trt_mass.errors import ModelError

    bare = served_model({"name": "resnet", "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["1", "3"]}]})
    assert bare.inputs == (TensorSpec("x", "float32", (1, 3)),)
    with pytest.raises(ModelError, match="model 'resnet' carries no trt_mass metadata"):
        bare.metadata("grpc://h:8001")


def test_serve_never_replaces_a_repository_with_other_models(tmp_path: Path) -> None:
    """serve removes the repository it laid out last time in --workdir; one of triton-repo --out, with other
    models, was removed too."""
    from trt_mass.bundled import default_model
    from trt_mass.errors import ConfigError
    from trt_mass.serving.server import ServeConfig, TritonServer

    other = tmp_path / "repository" / "other_model"
    other.mkdir(parents=True)
    (other / "config.pbtxt").write_text('name: "other_model"\n')
    with pytest.raises(ConfigError, match=r"holds other models \(other_model\)"):
        TritonServer(ServeConfig(model=default_model(), workdir=tmp_path)).start()
    assert (other / "config.pbtxt").exists()
