"""Plain NumPy reference of the cross-view merge (docs/architecture.md), the oracle for the in-graph merge.

Semantics:
1. Candidates are boxes with score > score_threshold; of them the max_candidates highest-scoring
   are kept (the graph's fixed N; ties keep the earlier index).
2. Clusters are the connected components of the graph joining two candidates with IoU > merge_iou.
3. Each cluster yields one finding: the largest-area box of the cluster (ties: the higher-ranked
   candidate) with the cluster's maximum score.
Findings are returned sorted by decreasing score.
"""

from __future__ import annotations

import numpy as np


def box_iou(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise IoU [A, B] of xyxy boxes [A, 4] and [B, 4]; 0 where the union is empty."""
    a = np.asarray(boxes_a_xyxy, dtype=np.float64)[:, None, :]
    b = np.asarray(boxes_b_xyxy, dtype=np.float64)[None, :, :]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_oracle(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    *,
    score_threshold: float = 0.1,
    merge_iou: float = 0.2,
    max_candidates: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge candidate boxes [M, 4] (xyxy) with scores [M]; returns (boxes [K, 4], scores [K])."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    above = np.flatnonzero(scores > score_threshold)
    order = above[np.argsort(-scores[above], kind="stable")][:max_candidates]
    cand_boxes, cand_scores = boxes[order], scores[order]
    count = len(order)
    parent = list(range(count))
    iou = box_iou(cand_boxes, cand_boxes)
    for i, j in zip(*np.nonzero(np.triu(iou > merge_iou, k=1)), strict=True):
        root_i, root_j = _find(parent, int(i)), _find(parent, int(j))
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    clusters: dict[int, list[int]] = {}
    for i in range(count):
        clusters.setdefault(_find(parent, i), []).append(i)
    areas = (cand_boxes[:, 2] - cand_boxes[:, 0]) * (cand_boxes[:, 3] - cand_boxes[:, 1])
    out_boxes, out_scores = [], []
    for members in clusters.values():
        largest = max(members, key=lambda m: (areas[m], -m))
        out_boxes.append(cand_boxes[largest])
        out_scores.append(cand_scores[members].max())
    if not out_boxes:
        return np.zeros((0, 4)), np.zeros((0,))
    result_scores = np.asarray(out_scores)
    rank = np.argsort(-result_scores, kind="stable")
    return np.asarray(out_boxes)[rank], result_scores[rank]
