"""The in-graph cross-view merge (exported to ONNX, run in ONNX Runtime) equals the NumPy oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import match_as_sets, random_boxes
from trt_mass.merge_oracle import merge_oracle

torch = pytest.importorskip("torch")

from trt_mass.model.graph import CrossViewMerge  # noqa: E402
from trt_mass.spec import GraphSpec  # noqa: E402


def _export_merge(tmp: Path, num_inputs: int, max_candidates: int) -> ort.InferenceSession:
    spec = GraphSpec(max_candidates=max_candidates)
    boxes = torch.zeros(num_inputs, 4)
    scores = torch.zeros(num_inputs)
    program = torch.onnx.export(CrossViewMerge(spec).eval(), (boxes, scores), dynamo=True, opset_version=19,
                                input_names=["boxes", "scores"], output_names=["out_boxes", "out_scores"])
    assert program is not None
    path = tmp / f"merge_{num_inputs}_{max_candidates}.onnx"
    program.save(str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def merge_small(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    return _export_merge(tmp_path_factory.mktemp("merge"), 300, 64)


@pytest.fixture(scope="module")
def merge_paper(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    """The paper's worst case: 26 views x 300 boxes, N = 512."""
    return _export_merge(tmp_path_factory.mktemp("merge"), 7800, 512)


def _run(session: ort.InferenceSession, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = session.get_inputs()[0].shape[0]
    padded_boxes = np.zeros((size, 4), np.float32)
    padded_scores = np.zeros(size, np.float32)
    padded_boxes[: len(boxes)] = boxes
    padded_scores[: len(scores)] = scores
    out_boxes, out_scores = session.run(None, {"boxes": padded_boxes, "scores": padded_scores})
    return out_boxes, out_scores


def _check(session: ort.InferenceSession, boxes: np.ndarray, scores: np.ndarray, max_candidates: int) -> int:
    out_boxes, out_scores = _run(session, boxes, scores)
    want_boxes, want_scores = merge_oracle(boxes, scores, max_candidates=max_candidates)
    match_as_sets(out_boxes, out_scores, want_boxes, want_scores, box_tol=1e-3, score_tol=1e-6)
    assert np.all(np.diff(out_scores) <= 0), "outputs are sorted by decreasing score"
    assert np.all(out_boxes[out_scores == 0] == 0), "unused rows are zero"
    return len(want_scores)


def test_chain_is_one_cluster(merge_small: ort.InferenceSession) -> None:
    # A overlaps B, B overlaps C, A does not overlap C: one finding, C's box (largest), A's score.
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 25, 10], [100, 100, 110, 110]], np.float32)
    scores = np.array([0.9, 0.5, 0.3, 0.4], np.float32)
    out_boxes, out_scores = _run(merge_small, boxes, scores)
    assert np.count_nonzero(out_scores) == 2
    np.testing.assert_allclose(out_scores[:2], [0.9, 0.4], rtol=1e-6)
    np.testing.assert_allclose(out_boxes[0], [10, 0, 25, 10])
    np.testing.assert_allclose(out_boxes[1], [100, 100, 110, 110])
    _check(merge_small, boxes, scores, 64)


def test_long_chain_needs_every_squaring(merge_small: ort.InferenceSession) -> None:
    # 64 boxes in a line, each overlapping only its neighbours (IoU 1/3): a path of length 63.
    starts = np.arange(64, dtype=np.float32) * 5
    boxes = np.stack([starts, np.zeros(64), starts + 10, np.full(64, 10)], axis=1).astype(np.float32)
    scores = np.linspace(0.9, 0.2, 64).astype(np.float32)
    assert _check(merge_small, boxes, scores, 64) == 1


def test_empty_and_below_threshold(merge_small: ort.InferenceSession) -> None:
    out_boxes, out_scores = _run(merge_small, np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert not out_scores.any() and not out_boxes.any()
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 200)
    scores = rng.uniform(0.0, 0.1, 200).astype(np.float32)
    scores[:5] = 0.1  # exactly the threshold is not a candidate
    out_boxes, out_scores = _run(merge_small, boxes, scores)
    assert not out_scores.any()


@pytest.mark.parametrize("seed", range(40))
def test_random_sets_match_oracle(merge_small: ort.InferenceSession, seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 300))
    boxes = random_boxes(rng, count, clusters=int(rng.integers(1, 20)))
    scores = rng.uniform(0, 1, count).astype(np.float32)
    _check(merge_small, boxes, scores, 64)


@pytest.mark.parametrize("seed", range(6))
def test_more_candidates_than_n_paper_size(merge_paper: ort.InferenceSession, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    boxes = random_boxes(rng, 7800, extent=2304, clusters=60)
    scores = rng.uniform(0, 1, 7800).astype(np.float32)
    assert int((scores > 0.1).sum()) > 512
    assert _check(merge_paper, boxes, scores, 512) >= 1


def test_oracle_hand_case() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 2, 2]], float)
    scores = np.array([0.5, 0.8, 0.3, 0.05])
    out_boxes, out_scores = merge_oracle(boxes, scores)
    np.testing.assert_allclose(out_scores, [0.8, 0.3])
    np.testing.assert_allclose(out_boxes, [[1, 1, 11, 11], [50, 50, 60, 60]])  # equal areas: higher score wins
