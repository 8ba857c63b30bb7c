"""The ONNX Runtime runner and the Detector: activation, input checks, real inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TinyModel
from trt_mass import Detector
from trt_mass.errors import ConfigError, InputError, ModelError
from trt_mass.runners.ort import OnnxRuntimeRunner
from trt_mass.runners.select import choose_backend, open_runner


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


def test_backend_table(tiny_model: TinyModel) -> None:
    assert open_runner(choose_backend("auto", tiny_model.onnx_path)).backend == "ort"
    with pytest.raises(ConfigError, match="unknown backend"):
        choose_backend("tensorflow", tiny_model.onnx_path)


def test_missing_and_corrupt_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model"):
        OnnxRuntimeRunner(tmp_path / "none.onnx").activate()
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not protobuf" * 10)
    with pytest.raises(ModelError, match=r"corrupt\.onnx"):
        OnnxRuntimeRunner(corrupt).activate()


def test_detector_maps_findings_to_original_pixels(tiny_model: TinyModel) -> None:
    """The detector's findings equal the graph's canvas boxes mapped through the letterbox."""
    rng = np.random.default_rng(5)
    image = rng.integers(1000, 60000, size=(1500, 900), dtype=np.uint16)  # portrait, odd scale
    with Detector(tiny_model.onnx_path, threads=2) as detector:
        result = detector.detect(image, pixel_spacing_mm=(0.05, 0.05))
        canvas = detector._canvas
        assert canvas is not None
        raw = detector.runner.infer({"canvas": canvas.canvas})
    letterbox = result.letterbox
    assert letterbox.original_hw == (1500, 900) and letterbox.resized_hw[0] == 768
    assert result.findings, "structured random weights give findings"
    scale_y, scale_x = letterbox.scale_yx
    used = raw["scores"] > 0
    expected = raw["boxes"][used].astype(np.float64) / np.array([scale_x, scale_y, scale_x, scale_y])
    expected = np.clip(expected, 0, [900, 1500, 900, 1500])  # boxes reaching into the padding are clipped
    for finding in result.findings:
        assert 0 <= finding.x1 <= finding.x2 <= 900 and 0 <= finding.y1 <= finding.y2 <= 1500
        corners = np.array([finding.x1, finding.y1, finding.x2, finding.y2])
        assert np.abs(expected - corners).max(axis=1).min() < 1e-3
        assert finding.area_mm2 is not None and finding.area_mm2 >= 24.5
    assert list(result.timings_ms) == ["canvas_ms", "infer_ms", "postprocess_ms"]


def test_detector_refuses_network_only_models(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from trt_mass.model.checkpoint import random_network
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry

    path = tmp_path / "net.onnx"
    export_onnx(random_network(ModelSpec("resnet18", 16), 0), "random", ExportOptions(
        GraphSpec(geometry=TileGeometry(64, 64, 1)), network_only=True), path)
    with pytest.raises(ModelError, match="network_only"), Detector(path):
        pass
