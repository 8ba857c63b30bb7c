"""Validation FROC and hard-negative mining on cached canvases (the PyTorch engine graph, tiny network)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trt_mass.model.checkpoint import random_network  # noqa: E402
from trt_mass.model.validate import (  # noqa: E402
    CachedImage,
    detect_cached,
    mine_hard_negatives,
    selecting_graph,
    validate,
)
from trt_mass.spec import ModelSpec, TileGeometry  # noqa: E402

GEOMETRY = TileGeometry(128, 96, 5)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def eager() -> torch.nn.Module:
    """A random network that fires everywhere (scores about 0.5), its scores spread so that they do not tie."""
    network = random_network(ModelSpec(arch="resnet18", head_width=16), seed=0, prior=0.5)
    with torch.no_grad():
        network.head.classification_head.cls_logits.weight.mul_(300.0)
    return network


def _image(seed: int, boxes: np.ndarray | None = None, tissue_width: int | None = None) -> CachedImage:
    """A canvas with random texture in its left `tissue_width` columns (default half; the rest is black
    air), image 'seed'."""
    canvas = np.zeros(GEOMETRY.canvas_hw, np.uint16)
    rng = np.random.default_rng(seed)
    width = GEOMETRY.canvas_hw[1] // 2 if tissue_width is None else tissue_width
    canvas[:, :width] = rng.integers(15000, 30000, size=(GEOMETRY.canvas_hw[0], width), dtype=np.uint16)
    return CachedImage(canvas, np.zeros((0, 4)) if boxes is None else boxes, image_id=f"img{seed}",
                       patient_id=f"p{seed}")


def test_a_mass_where_the_top_finding_is_is_found_at_every_budget(eager: torch.nn.Module) -> None:
    graph = selecting_graph(eager, GEOMETRY)
    images = []
    for seed in range(3):
        image = _image(seed, tissue_width=GEOMETRY.canvas_hw[1])  # texture everywhere: no tied scores
        boxes, scores = detect_cached(graph, image, CPU)
        assert len(boxes) > 3 and np.all(np.diff(scores) <= 0), "findings come by decreasing score"
        image.boxes = boxes[:1]  # the truth is the top finding: hit before any false positive
        images.append(image)
    measured = validate(eager, images, GEOMETRY, CPU)
    assert measured.images == 3 and measured.lesions == 3
    assert measured.tpr_at_fppi == {0.5: 1.0, 1.0: 1.0, 2.0: 1.0}
    images[0].boxes = np.array([[0.0, 0.0, 2.0, 2.0]])  # a 2-pixel mass in a corner: missed
    worse = validate(eager, images, GEOMETRY, CPU)
    assert worse.key < measured.key and worse.tpr_at_fppi[2.0] == pytest.approx(2 / 3)


def test_hard_negatives_come_from_images_without_a_mass_and_lie_on_tissue(eager: torch.nn.Module) -> None:
    images = [_image(0), _image(1, np.array([[10.0, 10.0, 40.0, 40.0]])), _image(2)]
    centres = mine_hard_negatives(eager, images, GEOMETRY, CPU, np.random.default_rng(0), per_image=2)
    assert sorted(position for position, _, _ in centres) == [0, 0, 2, 2]
    canvas_h, canvas_w = GEOMETRY.canvas_hw
    for _, y, x in centres:
        assert 0 <= y <= canvas_h and 0 <= x <= canvas_w // 2 + 32, "a finding on tissue, not on the air"
    none = mine_hard_negatives(eager, images, GEOMETRY, CPU, np.random.default_rng(0), min_score=0.99)
    assert none == []
