"""FROC: true-positive rate against false positives per image, the paper's figure of merit.

A detection hits a ground-truth box when its centre lies inside the box ("centre", the criterion of
Ribli et al.) or when their IoU is at least a threshold ("iou", the paper: 0.2).  Each ground-truth
box is found at most once: further detections on a found box are neither hits nor false positives;
a detection that hits no box is a false positive.  Boxes are xyxy in one image's pixel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trt_mass.errors import ConfigError
from trt_mass.merge_oracle import box_iou

FPPI_POINTS = (0.1, 0.3, 0.5, 1.0, 1.3, 2.0, 3.0)
CRITERIA = ("centre", "iou")


@dataclass
class ImageResult:
    """Detections and truth of one image.

    Attributes:
        image_id: file name or SOP Instance UID.
        patient_id: for patient-level bootstrap (images of one patient are resampled together).
        det_boxes: [D, 4] xyxy; det_scores: [D]; gt_boxes: [G, 4] xyxy (empty for normals).
    """

    image_id: str
    patient_id: str
    det_boxes: np.ndarray
    det_scores: np.ndarray
    gt_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


@dataclass(frozen=True)
class FrocCurve:
    """Operating points, one per distinct score threshold, by decreasing threshold.

    thresholds[i]: detections with score >= thresholds[i] are kept; fppi[i], tpr[i] at that point.
    """

    thresholds: np.ndarray
    fppi: np.ndarray
    tpr: np.ndarray
    num_images: int
    num_lesions: int

    def tpr_at(self, fppi: float) -> float:
        """The best TPR reachable with at most `fppi` false positives per image (0 if none)."""
        allowed = self.fppi <= fppi + 1e-12
        return float(self.tpr[allowed].max()) if allowed.any() else 0.0

    def threshold_at(self, fppi: float) -> float:
        """The lowest score threshold with at most `fppi` false positives per image: the most sensitive
        operating point within that budget.  1.0 (nothing shown) when even the top score is over it."""
        allowed = np.flatnonzero(self.fppi <= fppi + 1e-12)
        return float(self.thresholds[allowed[-1]]) if allowed.size else 1.0


def hit_matrix(det_boxes: np.ndarray, gt_boxes: np.ndarray, criterion: str, iou_threshold: float) -> np.ndarray:
    """[D, G] bool: does detection d hit ground-truth box g."""
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if criterion == "centre":
        cx = (det_boxes[:, 0] + det_boxes[:, 2]) / 2
        cy = (det_boxes[:, 1] + det_boxes[:, 3]) / 2
        return ((cx[:, None] >= gt_boxes[None, :, 0]) & (cx[:, None] <= gt_boxes[None, :, 2])
                & (cy[:, None] >= gt_boxes[None, :, 1]) & (cy[:, None] <= gt_boxes[None, :, 3]))
    if criterion == "iou":
        return box_iou(det_boxes, gt_boxes) >= iou_threshold
    raise ConfigError(f"unknown hit criterion {criterion!r}; choose one of {CRITERIA}")


def froc_curve(images: Sequence[ImageResult], criterion: str = "iou", iou_threshold: float = 0.2) -> FrocCurve:
    """The FROC curve over all images (every image counts for FPPI, with or without detections)."""
    scores, image_index, hits = [], [], []
    gt_offset, num_lesions = [], 0
    for index, image in enumerate(images):
        matrix = hit_matrix(image.det_boxes, image.gt_boxes, criterion, iou_threshold)
        scores.append(np.asarray(image.det_scores, dtype=np.float64).reshape(-1))
        image_index.append(np.full(len(scores[-1]), index))
        hits.append(matrix)
        gt_offset.append(num_lesions)
        num_lesions += len(np.asarray(image.gt_boxes).reshape(-1, 4))
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    order = np.argsort(-all_scores, kind="stable")
    owner = np.concatenate(image_index)[order] if scores else np.zeros(0, int)
    local = np.concatenate([np.arange(len(s)) for s in scores])[order] if scores else np.zeros(0, int)
    found = np.zeros(num_lesions, dtype=bool)
    true_positives = false_positives = 0
    thresholds, fppi, tpr = [], [], []
    for position, (image, detection) in enumerate(zip(owner, local, strict=True)):
        row = hits[image][detection]
        if row.any():
            lesions = gt_offset[image] + np.flatnonzero(row)
            new = lesions[~found[lesions]]
            found[new] = True
            true_positives += len(new)
        else:
            false_positives += 1
        score = all_scores[order[position]]
        if position + 1 == len(order) or all_scores[order[position + 1]] != score:  # one point per threshold
            thresholds.append(score)
            fppi.append(false_positives / max(1, len(images)))
            tpr.append(true_positives / max(1, num_lesions))
    return FrocCurve(np.asarray(thresholds), np.asarray(fppi), np.asarray(tpr), len(images), num_lesions)


def lesion_outcomes(images: Sequence[ImageResult], threshold: float, criterion: str = "iou",
                    iou_threshold: float = 0.2) -> list[dict[str, Any]]:
    """What became of every ground-truth box, so that a person can look at the misses.

    Per box (xyxy, original pixels of its image): its size, the best IoU any detection reaches
    (whether or not it counts as a hit), the highest score among the detections that hit it (None: no
    detection hits it at any score; that score is where the FROC finds it) and whether that score is
    at least `threshold` (with the threshold of a 1-FPPI point, the boxes counted in TPR at 1 FPPI).
    """
    outcomes = []
    for image in images:
        gt_boxes = np.asarray(image.gt_boxes, dtype=np.float64).reshape(-1, 4)
        det_boxes = np.asarray(image.det_boxes, dtype=np.float64).reshape(-1, 4)
        det_scores = np.asarray(image.det_scores, dtype=np.float64).reshape(-1)
        hits = hit_matrix(det_boxes, gt_boxes, criterion, iou_threshold)
        ious = box_iou(det_boxes, gt_boxes) if len(det_boxes) else np.zeros((0, len(gt_boxes)))
        for g, box in enumerate(gt_boxes):
            hit_scores = det_scores[hits[:, g]]
            hit_score = float(hit_scores.max()) if hit_scores.size else None
            outcomes.append({
                "image_id": image.image_id, "patient_id": image.patient_id,
                "box_xyxy": [round(float(v), 1) for v in box],
                "width": round(float(box[2] - box[0]), 1), "height": round(float(box[3] - box[1]), 1),
                "best_iou": round(float(ious[:, g].max()), 3) if len(det_boxes) else 0.0,
                "hit_score": None if hit_score is None else round(hit_score, 4),
                "found": hit_score is not None and hit_score >= threshold,
            })
    return outcomes


def bootstrap_tpr(images: Sequence[ImageResult], fppi_points: Sequence[float] = FPPI_POINTS,
                  criterion: str = "iou", iou_threshold: float = 0.2, resamples: int = 1000,
                  seed: int = 0, level: float = 0.95) -> dict[float, tuple[float, float]]:
    """Percentile confidence intervals of TPR at each FPPI point, resampling patients with replacement."""
    by_patient: dict[str, list[ImageResult]] = {}
    for image in images:
        by_patient.setdefault(image.patient_id, []).append(image)
    patients = sorted(by_patient)
    rng = np.random.default_rng(seed)
    samples = np.zeros((resamples, len(fppi_points)))
    for r in range(resamples):
        chosen = rng.integers(0, len(patients), size=len(patients))
        resampled = [image for c in chosen for image in by_patient[patients[c]]]
        curve = froc_curve(resampled, criterion, iou_threshold)
        samples[r] = [curve.tpr_at(p) for p in fppi_points]
    low, high = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {p: (float(np.percentile(samples[:, i], low)), float(np.percentile(samples[:, i], high)))
            for i, p in enumerate(fppi_points)}
