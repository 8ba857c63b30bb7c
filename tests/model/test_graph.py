"""The whole engine graph in ONNX Runtime equals the PyTorch modules it was exported from."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TinyModel
from tests.helpers import blob_canvas, match_as_sets
from trt_mass.merge_oracle import merge_oracle
from trt_mass.runners.ort import OnnxRuntimeRunner

torch = pytest.importorskip("torch")

from trt_mass.model.graph import EngineGraph  # noqa: E402


def _canvas(model: TinyModel, seed: int, kind: str) -> np.ndarray:
    """Two different canvases: blobs over a faint texture, and uniform noise.

    Both are free of constant regions on purpose: anchors that see identical pixels get exactly tied
    scores, and TopK/NMS may order ties differently per backend (both answers are right).
    """
    if kind == "blobs":
        return blob_canvas(model.graph_spec.geometry.canvas_hw, seed)
    canvas_h, canvas_w = model.graph_spec.geometry.canvas_hw
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65535, size=(canvas_h, canvas_w), dtype=np.uint16)[None, None]


def _torch_outputs(model: TinyModel, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    graph = EngineGraph(model.network, model.graph_spec).eval()
    with torch.no_grad():
        boxes, scores = graph(torch.from_numpy(canvas.astype(np.int32)).to(torch.uint16))
    return boxes.numpy(), scores.numpy()


@pytest.mark.parametrize("kind", ["blobs", "noise"])
@pytest.mark.parametrize("which", ["tiny_model", "tiny_model_other_shape"])
def test_onnxruntime_equals_pytorch(request: pytest.FixtureRequest, which: str, kind: str) -> None:
    model: TinyModel = request.getfixturevalue(which)
    canvas = _canvas(model, seed=7, kind=kind)
    want_boxes, want_scores = _torch_outputs(model, canvas)
    with OnnxRuntimeRunner(model.onnx_path, threads=2) as runner:
        outputs = runner.infer({"canvas": canvas})
    assert outputs["boxes"].shape == (model.graph_spec.max_candidates, 4)
    assert outputs["scores"].shape == (model.graph_spec.max_candidates,)
    assert np.count_nonzero(want_scores) > 3, "the test needs detections to compare"
    match_as_sets(outputs["boxes"], outputs["scores"], want_boxes, want_scores, box_tol=2e-2, score_tol=1e-4)


def test_graph_merge_matches_oracle_on_its_own_candidates(tiny_model: TinyModel) -> None:
    """End to end through the torch modules: the merge output equals the oracle on the NMS survivors."""
    graph = EngineGraph(tiny_model.network, tiny_model.graph_spec).eval()
    canvas = torch.from_numpy(_canvas(tiny_model, 11, "noise").astype(np.int32)).to(torch.uint16)
    captured = {}

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
        captured["boxes"], captured["scores"] = (t.detach().numpy() for t in inputs)

    handle = graph.postprocess.merge.register_forward_hook(hook)
    with torch.no_grad():
        boxes, scores = graph(canvas)
    handle.remove()
    want_boxes, want_scores = merge_oracle(captured["boxes"], captured["scores"],
                                           max_candidates=tiny_model.graph_spec.max_candidates)
    assert len(want_scores) > 0
    match_as_sets(boxes.numpy(), scores.numpy(), want_boxes, want_scores, box_tol=1e-3, score_tol=1e-6)
    per_view = (captured["scores"].reshape(tiny_model.graph_spec.geometry.num_views, -1) > 0).sum(axis=1)
    assert per_view.max() <= tiny_model.graph_spec.max_per_view


def test_int32_canvas_gives_the_same_findings(tiny_model: TinyModel, tmp_path: object) -> None:
    """The TensorRT-friendly int32 canvas is the same computation as the uint16 one."""
    import dataclasses
    from pathlib import Path

    from trt_mass import Detector
    from trt_mass.model.export import ExportOptions, export_onnx

    path = Path(str(tmp_path)) / "int32.onnx"
    spec = dataclasses.replace(tiny_model.graph_spec, canvas_dtype="int32")
    metadata = export_onnx(tiny_model.network, "random", ExportOptions(spec), path)
    assert metadata.inputs[0].dtype == "int32"
    image = np.random.default_rng(2).integers(0, 65535, size=(1000, 700), dtype=np.uint16)
    with Detector(tiny_model.onnx_path) as reference, Detector(path) as engine_style:
        want = reference.detect(image).findings
        got = engine_style.detect(image).findings
        assert engine_style._canvas is not None and engine_style._canvas.canvas.dtype == np.int32
    assert want and got == want
