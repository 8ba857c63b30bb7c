"""The engine graph with view selection: K of the views, exactly what the 26-view graph computes for them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TinyModel
from tests.helpers import blob_canvas, match_as_sets
from trt_mass.errors import InputError
from trt_mass.merge_oracle import merge_oracle
from trt_mass.runners.ort import OnnxRuntimeRunner

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from trt_mass.model.graph import EngineGraph  # noqa: E402

SUBSETS = {5: [0, 1, 3, 7, 12, 13, 20, 24, 25], 3: [0, 2, 4, 5, 9]}  # by grid: views of 26 and of 10


def _per_view_candidates(model: TinyModel, canvas: np.ndarray,
                         views: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """boxes [V, K, 4], scores [V, K] of the eager graph, on all views (None) or on `views` only."""
    graph = EngineGraph(model.network, model.graph_spec).eval()
    with torch.no_grad():
        batch = graph.views(torch.from_numpy(canvas.astype(np.int32)).to(torch.uint16))
        index = None if views is None else torch.tensor(views, dtype=torch.int32)
        if index is not None:
            batch = batch.index_select(0, index)
        cls_logits, box_regression = graph.network(batch)
        boxes, scores = graph.postprocess.candidates(cls_logits, box_regression, index)
    return boxes.numpy(), scores.numpy()


@pytest.mark.parametrize("which", ["tissue_model", "tissue_model_other_shape"])
def test_k_views_are_the_full_graphs_candidates_of_those_views_merged(request: pytest.FixtureRequest,
                                                                     which: str) -> None:
    model: TinyModel = request.getfixturevalue(which)
    spec = model.graph_spec
    views = SUBSETS[spec.geometry.grid]
    canvas_h, canvas_w = spec.geometry.canvas_hw
    canvas = np.random.default_rng(5).integers(0, 65535, size=(1, 1, canvas_h, canvas_w), dtype=np.uint16)
    all_boxes, all_scores = _per_view_candidates(model, canvas, None)
    some_boxes, some_scores = _per_view_candidates(model, canvas, views)
    # Per view the same candidates, at the same canvas places: gathering views and offsets is exact.
    np.testing.assert_array_equal(some_scores, all_scores[views])
    np.testing.assert_allclose(some_boxes, all_boxes[views], atol=1e-4)
    want_boxes, want_scores = merge_oracle(all_boxes[views].reshape(-1, 4), all_scores[views].reshape(-1),
                                           score_threshold=spec.score_threshold, merge_iou=spec.merge_iou,
                                           max_candidates=spec.max_candidates)
    assert len(want_scores) > 3, "the test needs detections to compare"
    with OnnxRuntimeRunner(model.onnx_path, threads=2) as runner:
        outputs = runner.infer({"canvas": canvas, "view_index": np.asarray(views, dtype=np.int32)})
    assert outputs["boxes"].shape == (spec.max_candidates, 4)
    match_as_sets(outputs["boxes"], outputs["scores"], want_boxes, want_scores, box_tol=2e-2, score_tol=1e-4)


@pytest.mark.parametrize(("tissue", "plain"), [("tissue_model", "tiny_model"),
                                               ("tissue_model_other_shape", "tiny_model_other_shape")])
def test_every_view_selected_is_the_graph_without_selection(request: pytest.FixtureRequest, tissue: str,
                                                            plain: str) -> None:
    with_selection: TinyModel = request.getfixturevalue(tissue)
    without: TinyModel = request.getfixturevalue(plain)
    geometry = without.graph_spec.geometry
    canvas = blob_canvas(geometry.canvas_hw, 9)
    with OnnxRuntimeRunner(with_selection.onnx_path, threads=2) as a, OnnxRuntimeRunner(without.onnx_path,
                                                                                      threads=2) as b:
        assert [t.name for t in b.metadata.inputs] == ["canvas"]
        got = a.infer({"canvas": canvas, "view_index": np.arange(geometry.num_views, dtype=np.int32)})
        want = b.infer({"canvas": canvas})
    assert np.count_nonzero(want["scores"]) > 3
    match_as_sets(got["boxes"], got["scores"], want["boxes"], want["scores"], box_tol=2e-2, score_tol=1e-4)


def test_the_export_records_a_dynamic_view_input_and_the_selection_settings(tissue_model: TinyModel) -> None:
    with OnnxRuntimeRunner(tissue_model.onnx_path) as runner:
        metadata = runner.metadata
    assert [(t.name, t.dtype, t.shape) for t in metadata.inputs] == \
        [("canvas", "uint16", (1, 1, 768, 672)), ("view_index", "int32", (-1,))]
    spec = metadata.graph_spec
    assert (spec.view_selection, spec.tissue_floor, spec.tissue_min_fraction, spec.tissue_cover) == \
        ("tissue", 0.02, 0.01, "every")
    proto = onnx.load(str(tissue_model.onnx_path), load_external_data=False)
    view_input = next(v for v in proto.graph.input if v.name == "view_index")
    assert view_input.type.tensor_type.shape.dim[0].dim_param == "views"


def test_view_index_is_checked_before_the_graph_runs(tissue_model: TinyModel) -> None:
    canvas = np.zeros((1, 1, 768, 672), np.uint16)
    with OnnxRuntimeRunner(tissue_model.onnx_path) as runner:
        for bad, why in (([], "0 views"), ([1, 2], "ascend from 0"), ([0, 3, 2], "ascend from 0"),
                         ([0, 26], "below 26"), (list(range(27)), "27 views"), ([0, 0], "ascend from 0")):
            with pytest.raises(InputError, match=why):
                runner.infer({"canvas": canvas, "view_index": np.asarray(bad, dtype=np.int32)})
        with pytest.raises(InputError, match="dtype int64"):
            runner.infer({"canvas": canvas, "view_index": np.asarray([0], dtype=np.int64)})
        with pytest.raises(InputError, match="do not match"):
            runner.infer({"canvas": canvas})
        assert runner.infer({"canvas": canvas, "view_index": np.asarray([0], np.int32)})["scores"].shape == (512,)
