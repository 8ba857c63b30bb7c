"""The paper's eager way (bench's baseline) finds what the engine graph finds, as does the torch runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TinyModel
from tests.helpers import blob_canvas, match_as_sets
from trt_mass.runners.ort import OnnxRuntimeRunner

torch = pytest.importorskip("torch")

from trt_mass.bench.baseline import EagerBaseline  # noqa: E402
from trt_mass.runners.torch_ref import TorchRunner  # noqa: E402


def test_eager_baseline_and_torch_runner_find_what_the_onnx_graph_finds(tiny_model: TinyModel,
                                                                        checkpoint: Path) -> None:
    canvas = blob_canvas(tiny_model.graph_spec.geometry.canvas_hw, seed=3)
    with OnnxRuntimeRunner(tiny_model.onnx_path, threads=2) as runner:
        want = runner.infer({"canvas": canvas})
        metadata = runner.metadata
    assert np.count_nonzero(want["scores"]) > 3, "the test needs detections to compare"
    with EagerBaseline.from_metadata(metadata, checkpoint, "cpu") as baseline:
        found = baseline.infer({"canvas": canvas})
    match_as_sets(found["boxes"], found["scores"], want["boxes"], want["scores"], box_tol=2e-2, score_tol=1e-4)
    assert set(baseline.last_stage_ms) == {"inference"} and baseline.last_detail_ms["network"] > 0
    with TorchRunner(tiny_model.onnx_path, checkpoint=checkpoint, device="cpu") as torch_runner:
        got = torch_runner.infer({"canvas": canvas})
        assert set(torch_runner.last_stage_ms) == {"inference"}
    assert got["boxes"].shape == want["boxes"].shape
    match_as_sets(got["boxes"], got["scores"], want["boxes"], want["scores"], box_tol=2e-2, score_tol=1e-4)
