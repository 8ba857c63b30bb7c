"""FROC analysis: a hand-computed case in the repo, and the published INbreast known answer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from trt_mass.eval.froc import ImageResult, bootstrap_tpr, froc_curve, hit_matrix, lesion_outcomes

RIBLI = Path(__file__).parents[2].parent / "shared" / "data" / "ribli-inbreast-eval"


def _image(name: str, dets: list, scores: list, gts: list, patient: str | None = None) -> ImageResult:
    return ImageResult(name, patient or name, np.array(dets, float).reshape(-1, 4), np.array(scores, float),
                       np.array(gts, float).reshape(-1, 4))


def test_hand_computed_case() -> None:
    """3 images, 2 lesions.  By decreasing score:
    0.9 hits lesion A (TP 1), 0.8 on the normal image (FP 1), 0.7 hits A again (ignored),
    0.6 misses (FP 2), 0.5 hits lesion B (TP 2).  FPPI = FP / 3."""
    images = [
        _image("a", [[10, 10, 50, 50], [12, 12, 48, 48], [200, 200, 220, 220]], [0.9, 0.7, 0.6], [[10, 10, 50, 50]]),
        _image("b", [[100, 100, 140, 150]], [0.5], [[100, 100, 140, 140]]),
        _image("normal", [[0, 0, 30, 30]], [0.8], []),
    ]
    curve = froc_curve(images, "iou", 0.2)
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert np.allclose(curve.fppi, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert np.allclose(curve.tpr, [0.5, 0.5, 0.5, 0.5, 1.0])
    assert curve.tpr_at(0.1) == 0.5 and curve.tpr_at(0.5) == 0.5 and curve.tpr_at(1.0) == 1.0
    # The most sensitive threshold within each false-positive budget: 0.7 keeps 1/3 FPPI, 0.5 keeps 2/3.
    assert curve.threshold_at(0.0) == 0.9 and curve.threshold_at(0.34) == 0.7 and curve.threshold_at(1.0) == 0.5
    only_false = froc_curve([_image("n", [[0, 0, 5, 5]], [0.4], [])], "iou", 0.2)
    assert only_false.threshold_at(0.5) == 1.0, "over budget from the first mark: show nothing"
    # Box b: IoU 0.8 >= 0.2 hits; with a minimum IoU of 0.9 it no longer does.
    assert froc_curve(images, "iou", 0.9).tpr_at(3) == 0.5
    centre = hit_matrix(np.array([[0, 0, 10, 10]]), np.array([[4, 4, 6, 6], [6, 6, 9, 9]]), "centre", 0)
    assert centre.tolist() == [[True, False]]



def test_lesion_outcomes_of_the_hand_computed_case() -> None:
    """Lesion A is hit at 0.9 (IoU 1), B at 0.5 (IoU 0.8); C has a near miss (IoU 0.1, no hit) and D
    no detection at all.  At threshold 0.6 only A counts as found."""
    images = [
        _image("a", [[10, 10, 50, 50], [12, 12, 48, 48], [200, 200, 220, 220]], [0.9, 0.7, 0.6], [[10, 10, 50, 50]]),
        _image("b", [[100, 100, 140, 150]], [0.5], [[100, 100, 140, 140]]),
        _image("c", [[0, 0, 10, 10]], [0.95], [[0, 0, 100, 10]]),
        _image("d", [], [], [[5, 5, 25, 45]]),
    ]
    outcomes = {o["image_id"]: o for o in lesion_outcomes(images, 0.6, "iou", 0.2)}
    assert outcomes["a"] == {"image_id": "a", "patient_id": "a", "box_xyxy": [10.0, 10.0, 50.0, 50.0],
                             "width": 40.0, "height": 40.0, "best_iou": 1.0, "hit_score": 0.9, "found": True}
    assert (outcomes["b"]["best_iou"], outcomes["b"]["hit_score"], outcomes["b"]["found"]) == (0.8, 0.5, False)
    assert (outcomes["c"]["best_iou"], outcomes["c"]["hit_score"], outcomes["c"]["found"]) == (0.1, None, False)
    assert (outcomes["d"]["best_iou"], outcomes["d"]["hit_score"], outcomes["d"]["width"]) == (0.0, None, 20.0)
    assert lesion_outcomes(images, 0.5, "iou", 0.2)[1]["found"], "B's own score counts as found"
    assert lesion_outcomes(images[2:3], 0.5, "centre", 0.2)[0]["hit_score"] == 0.95, "centre (5, 5) lies in C"

def test_bootstrap_interval_contains_the_estimate() -> None:
    rng = np.random.default_rng(0)
    images = []
    for i in range(30):
        gt = [[100, 100, 150, 150]]
        dets = [[100, 100, 150, 150], [300, 300, 340, 340]] if i % 3 else [[300, 300, 340, 340]]
        images.append(_image(f"i{i}", dets, rng.uniform(0.2, 1, len(dets)).tolist(), gt, patient=f"p{i // 2}"))
    estimate = froc_curve(images).tpr_at(1.0)
    low, high = bootstrap_tpr(images, (1.0,), resamples=200)[1.0]
    assert low <= estimate <= high and high - low > 0


@pytest.mark.skipif(not RIBLI.is_dir(), reason="../shared/data/ribli-inbreast-eval is not present")
def test_published_inbreast_detections_known_answer() -> None:
    truth: dict[str, list] = {}
    with open(RIBLI / "inbreast_ground_truth_cancer_bbox_rois.tsv", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            truth.setdefault(row["fn"], []).append([float(row[k]) for k in ("x0", "y0", "x1", "y1")])
    detections: dict[str, list] = {}
    with open(RIBLI / "inbreast_predictions.tsv", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            box = [float(row[k]) for k in ("x0", "y0", "x1", "y1")]
            detections.setdefault(row["filename"], []).append((box, float(row["score"])))
    names = sorted(set(truth) | set(detections))
    images = [_image(n, [b for b, _ in detections.get(n, [])], [s for _, s in detections.get(n, [])],
                     truth.get(n, [])) for n in names]
    images += [_image(f"no-detection-{i}", [], [], []) for i in range(410 - len(images))]  # all 410 count
    curve = froc_curve(images, "centre")
    assert curve.num_lesions == 91
    assert [round(curve.tpr_at(p), 3) for p in (0.1, 0.3, 0.5, 1.0)] == [0.791, 0.901, 0.934, 0.967]
