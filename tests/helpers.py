"""Shared helpers for the tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np

from trt_mass.merge_oracle import box_iou


def free_port() -> int:
    """A TCP port free on the loopback interface now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def random_boxes(rng: np.random.Generator, count: int, extent: float = 1000.0, clusters: int = 8) -> np.ndarray:
    """[count, 4] xyxy boxes around a few centres, so that clusters and chains occur."""
    centres = rng.uniform(0.1 * extent, 0.9 * extent, size=(clusters, 2))
    pick = rng.integers(0, clusters, size=count)
    centre = centres[pick] + rng.normal(0, 0.03 * extent, size=(count, 2))
    size = rng.uniform(0.02 * extent, 0.15 * extent, size=(count, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    return np.clip(boxes, 0, extent).astype(np.float32)


def match_as_sets(
    boxes_a: np.ndarray, scores_a: np.ndarray, boxes_b: np.ndarray, scores_b: np.ndarray,
    *, box_tol: float = 1e-2, score_tol: float = 1e-4,
) -> None:
    """Assert two detection sets are equal up to order: same count, each box matched one-to-one."""
    keep_a, keep_b = scores_a > 0, scores_b > 0
    boxes_a, scores_a = np.asarray(boxes_a)[keep_a], np.asarray(scores_a)[keep_a]
    boxes_b, scores_b = np.asarray(boxes_b)[keep_b], np.asarray(scores_b)[keep_b]
    assert len(scores_a) == len(scores_b), f"{len(scores_a)} vs {len(scores_b)} detections"
    if len(scores_a) == 0:
        return
    unmatched = set(range(len(scores_b)))
    for i in range(len(scores_a)):
        distance = np.abs(boxes_b - boxes_a[i]).max(axis=1) + np.abs(scores_b - scores_a[i]) * 1e3
        for j in np.argsort(distance):
            if j in unmatched:
                break
        assert j in unmatched
        assert np.abs(boxes_b[j] - boxes_a[i]).max() <= box_tol, (boxes_a[i], boxes_b[j])
        assert abs(scores_b[j] - scores_a[i]) <= score_tol, (scores_a[i], scores_b[j])
        unmatched.discard(int(j))


def max_iou_to(box: np.ndarray, boxes: np.ndarray) -> float:
    if len(boxes) == 0:
        return 0.0
    return float(box_iou(box[None], boxes).max())


def blob_canvas(canvas_hw: tuple[int, int], seed: int) -> np.ndarray:
    """uint16 [1, 1, H, W]: blobs over a faint texture.

    Free of constant regions on purpose: anchors that see identical pixels get exactly tied scores,
    and TopK/NMS may order ties differently per backend (both answers are right).
    """
    canvas_h, canvas_w = canvas_hw
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:canvas_h, 0:canvas_w]
    image = np.zeros((canvas_h, canvas_w))
    for _ in range(12):
        cy, cx, radius = rng.uniform(0, canvas_h), rng.uniform(0, canvas_w), rng.uniform(10, 80)
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    image += rng.uniform(0.02, 0.08, size=image.shape)
    return (np.clip(image, 0, 1) * 65535).astype(np.uint16)[None, None]


def all_views_feed(runner: Any, canvas: np.ndarray) -> dict[str, np.ndarray]:
    """The engine graph's feed for `canvas` [1, 1, H, W]: with every view where the model selects views."""
    from trt_mass.tissue import all_views

    feed = {"canvas": canvas}
    if any(spec.name == "view_index" for spec in runner.metadata.inputs):
        feed["view_index"] = all_views(runner.metadata.graph_spec.geometry)
    return feed
