"""The ONNX Runtime runner: activation, input checks, missing and corrupt models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TinyModel
from trt_mass.errors import InputError, ModelError
from trt_mass.runners.ort import OnnxRuntimeRunner


def test_runner_lifecycle_and_checks(tiny_model: TinyModel) -> None:
    runner = OnnxRuntimeRunner(tiny_model.onnx_path, threads=1)
    assert not runner.is_active
    with pytest.raises(ModelError, match="not active"):
        runner.infer({})
    canvas_h, canvas_w = tiny_model.graph_spec.geometry.canvas_hw
    with runner:
        assert runner.is_active and runner.metadata.kind == "engine_graph"
        good = np.zeros((1, 1, canvas_h, canvas_w), np.uint16)
        outputs = runner.infer({"canvas": good})
        assert set(outputs) == {"boxes", "scores"}
        with pytest.raises(InputError, match="dtype"):
            runner.infer({"canvas": good.astype(np.float32)})
        with pytest.raises(InputError, match="shape"):
            runner.infer({"canvas": good[:, :, :-1]})
        with pytest.raises(InputError, match="do not match"):
            runner.infer({"image": good})
    assert not runner.is_active


def test_missing_and_corrupt_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model"):
        OnnxRuntimeRunner(tmp_path / "none.onnx").activate()
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not protobuf" * 10)
    with pytest.raises(ModelError, match=r"corrupt\.onnx"):
        OnnxRuntimeRunner(corrupt).activate()
