"""The engine sidecar file: what is written beside an engine, read back, and refused when malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine_helpers import TRT, make_metadata, write_engine_pair
from trt_mass.engine.sidecar import read_sidecar, sidecar_path
from trt_mass.errors import ModelError

ONNX_SHA = "12" * 32


def test_sidecar_round_trip_and_layout(tmp_path: Path) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA, metadata=make_metadata("int8"))
    assert sidecar_path(engine) == tmp_path / "model.plan.json"
    again = read_sidecar(engine)
    assert again == sidecar
    data = json.loads(sidecar_path(engine).read_text())
    assert data["kind"] == "trt_mass.engine" and data["format"] == 1
    assert data["model_metadata"]["precision"] == "int8"
    assert data["model_metadata"]["calibration_sha256"] == "cd" * 32
    assert data["model_metadata"]["graph_spec"]["geometry"] == {"tile_h": 256, "tile_w": 224, "grid": 5}
    assert data["compute_capability"] == "8.6" and data["tensorrt_version"] == TRT
    assert data["build"]["profile_name"] == "a2000-ada2000-int8"
    assert data["created"].endswith("+00:00")  # UTC


def test_missing_and_malformed_sidecars(tmp_path: Path) -> None:
    engine, _ = write_engine_pair(tmp_path, ONNX_SHA)
    side = sidecar_path(engine)
    good = json.loads(side.read_text())
    side.unlink()
    with pytest.raises(ModelError, match=r"no sidecar model\.plan\.json.*never loaded.*trtmass build-engine"):
        read_sidecar(engine)

    def broken(mutate: object, match: str) -> None:
        data = json.loads(json.dumps(good))
        if callable(mutate):
            mutate(data)
        side.write_text(json.dumps(data) if not isinstance(mutate, str) else mutate)
        with pytest.raises(ModelError, match=match):
            read_sidecar(engine)

    broken("{not json", "not JSON")
    broken("[1, 2]", "malformed engine sidecar")
    broken(lambda d: d.pop("engine_sha256"), "malformed.*engine_sha256")
    broken(lambda d: d.update(engine_sha256="ABC"), "malformed.*SHA-256")
    broken(lambda d: d.update(kind="something.else"), "malformed.*kind")
    broken(lambda d: d.update(format=99), "malformed.*format 99")
    broken(lambda d: d.update(compute_capability="sm_86"), "malformed.*compute_capability")
    broken(lambda d: d.update(source_onnx="../../etc/model.onnx"), "malformed.*file name")
    broken(lambda d: d["build"].update(version_compatible="yes"), "malformed.*version_compatible")
    broken(lambda d: d["build"].update(hardware_compatibility_level="everything"), "malformed.*hardware")
    broken(lambda d: d["model_metadata"].pop("graph_spec"), "malformed")
    broken(lambda d: d.update(model_metadata={"format": 1}), "malformed")
    side.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ModelError, match=r"cannot read|malformed"):
        read_sidecar(engine)
