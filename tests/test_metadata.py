"""Model metadata: the JSON every artifact carries, its flat keys, and loud refusals of anything else."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from tests.engine_helpers import make_metadata
from trt_mass.errors import ModelError
from trt_mass.metadata import METADATA_KEY, ModelMetadata, file_sha256, metadata_from_map


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


def test_file_hash_reads_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f", chunk=4096) == hashlib.sha256(data).hexdigest()
