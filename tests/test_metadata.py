"""Model metadata: the JSON every artifact carries, its flat keys, and loud refusals of anything else."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import TinyModel
from tests.engine_helpers import make_metadata
from trt_mass.errors import ModelError
from trt_mass.metadata import METADATA_KEY, ModelMetadata, OperatingPoints, file_sha256, metadata_from_map


def test_round_trip_through_json_and_flat_entries() -> None:
    metadata = make_metadata("int8")
    again = ModelMetadata.from_json(metadata.to_json())
    assert again == metadata
    entries = metadata.flat_entries()
    assert metadata_from_map(entries, "m.onnx") == metadata
    assert entries["trt_mass.precision"] == "int8" and entries["trt_mass.tile_hw"] == "256x224"
    assert entries["trt_mass.grid"] == "5" and entries["trt_mass.weights_sha256"] == metadata.weights_sha256
    assert metadata.model_id == f"resnet18-{metadata.weights_sha256[:12]}-int8-tensorrt"
    assert dataclasses.replace(metadata, target="any", precision="fp32").model_id.endswith("-fp32")


def test_refusals_name_the_model() -> None:
    with pytest.raises(ModelError, match=r"plain\.onnx: not a trt_mass model"):
        metadata_from_map({"producer": "someone"}, "plain.onnx")
    data = json.loads(make_metadata().to_json())
    with pytest.raises(ModelError, match=r"m\.onnx: metadata format 99, this trt_mass reads 1"):
        ModelMetadata.from_json(json.dumps({**data, "format": 99}), "m.onnx")
    del data["weights_sha256"]
    with pytest.raises(ModelError, match=r"m\.onnx: malformed trt_mass metadata"):
        ModelMetadata.from_json(json.dumps(data), "m.onnx")
    with pytest.raises(ModelError, match=r"malformed"):
        metadata_from_map({METADATA_KEY: "{not json"}, "m.onnx")
    with pytest.raises(ModelError, match="unknown model kind 'detector'"):
        dataclasses.replace(make_metadata(), kind="detector")
    good = json.loads(make_metadata().to_json())
    for key, odd in (("precision", "FP16"), ("precision", "bf16"), ("target", "gpu"), ("kind", "detector")):
        with pytest.raises(ModelError, match=rf"m\.onnx: malformed trt_mass metadata \(unknown .*'{odd}'"):
            ModelMetadata.from_json(json.dumps({**good, key: odd}), "m.onnx")


def test_file_hash_reads_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f", chunk=4096) == hashlib.sha256(data).hexdigest()


def test_operating_points_travel_with_the_metadata() -> None:
    points = OperatingPoints(scores={"1": 0.35, "2": 0.2}, data="d", source="eval", tpr={"1": 0.9}, images=5,
                             lesions=4, criterion="iou", iou_threshold=0.2)
    metadata = dataclasses.replace(make_metadata(), operating_points=points)
    assert ModelMetadata.from_json(metadata.to_json()).operating_points == points
    assert ModelMetadata.from_json(make_metadata().to_json()).operating_points is None
    with pytest.raises(ModelError, match="not in"):
        OperatingPoints(scores={"1": 1.5}, data="d", source="export")


def test_rewriting_a_model_s_metadata_keeps_the_graph_and_refuses_other_weights(tiny_model: TinyModel,
                                                                              tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from trt_mass.metadata import read_onnx_metadata, rewrite_onnx_metadata

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_model.onnx_path.read_bytes())
    metadata = read_onnx_metadata(model)
    points = OperatingPoints(scores={"1": 0.4}, data="given", source="export")
    rewrite_onnx_metadata(model, dataclasses.replace(metadata, operating_points=points))
    assert read_onnx_metadata(model) == dataclasses.replace(metadata, operating_points=points)
    import onnx

    before, after = onnx.load(str(tiny_model.onnx_path)), onnx.load(str(model))
    assert before.graph.SerializeToString() == after.graph.SerializeToString(), "the graph and weights are kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(ModelError, match="other weights or another graph"):
        rewrite_onnx_metadata(model, dataclasses.replace(metadata, weights_sha256="00" * 32))
