"""`trtmass compare`: does a variant (fp16, int8, another export) find what the reference finds?

Both models run through the same pipeline on the same labelled images.  Two kinds of figures:
agreement of the outputs (findings matched one to one by IoU, with score and box differences, in
original pixels) and the accuracy delta (FROC of each against the truth).  The gate is the TPR at
1 FPPI: a drop larger than `max_tpr_drop` is an AccuracyRegressionError (exit code 6) once the
report is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.atomic import write_json_atomic
from trt_mass.errors import AccuracyRegressionError, ConfigError
from trt_mass.eval.froc import FPPI_POINTS, ImageResult
from trt_mass.merge_oracle import box_iou


@dataclass(frozen=True)
class CompareConfig:
    """Reference model A, variant B, and how to judge B.

    Attributes:
        match_iou: two findings (one of A, one of B) are the same finding when their IoU >= this.
        max_tpr_drop: allowed drop of TPR at 1 FPPI from A to B (absolute, 0.02 = 2 points).
    """

    model_a: Path
    model_b: Path
    data: str
    out_dir: Path | None = None
    criterion: str = "iou"
    iou_threshold: float = 0.2
    match_iou: float = 0.5
    max_tpr_drop: float = 0.02
    bootstrap: int = 0
    backend: str = "ort"
    threads: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.max_tpr_drop < 1:
            raise ConfigError(f"--max-tpr-drop must be in [0, 1), got {self.max_tpr_drop}")
        if not 0 < self.match_iou <= 1:
            raise ConfigError(f"--match-iou must be in (0, 1], got {self.match_iou}")


def match_findings(boxes_a_xyxy: np.ndarray, scores_a: np.ndarray, boxes_b_xyxy: np.ndarray,
                   match_iou: float) -> list[tuple[int, int, float]]:
    """One-to-one matches (index in A, index in B, IoU): A's findings by decreasing score take the best free B."""
    if len(boxes_a_xyxy) == 0 or len(boxes_b_xyxy) == 0:
        return []
    iou = box_iou(boxes_a_xyxy, boxes_b_xyxy)
    taken: set[int] = set()
    matches = []
    for a in np.argsort(-scores_a, kind="stable"):
        candidates = [(iou[a, b], b) for b in range(len(boxes_b_xyxy)) if b not in taken and iou[a, b] >= match_iou]
        if candidates:
            best_iou, b = max(candidates)
            taken.add(b)
            matches.append((int(a), int(b), float(best_iou)))
    return matches


def agreement(results_a: list[ImageResult], results_b: list[ImageResult], match_iou: float) -> dict[str, Any]:
    """Output agreement of two models over the same images (set comparison per image, not by index)."""
    by_id_b = {r.image_id: r for r in results_b}
    matched = only_a = only_b = identical_images = 0
    score_diffs: list[float] = []
    corner_diffs_px: list[float] = []
    ious: list[float] = []
    for result_a in results_a:
        result_b = by_id_b.get(result_a.image_id)
        if result_b is None:
            continue
        pairs = match_findings(result_a.det_boxes, result_a.det_scores, result_b.det_boxes, match_iou)
        matched += len(pairs)
        only_a += len(result_a.det_boxes) - len(pairs)
        only_b += len(result_b.det_boxes) - len(pairs)
        identical_images += int(len(pairs) == len(result_a.det_boxes) == len(result_b.det_boxes))
        for a, b, iou in pairs:
            score_diffs.append(abs(float(result_a.det_scores[a]) - float(result_b.det_scores[b])))
            corner_diffs_px.append(float(np.abs(result_a.det_boxes[a] - result_b.det_boxes[b]).max()))
            ious.append(iou)
    total = 2 * matched + only_a + only_b
    return {
        "images": len(results_a),
        "images_with_the_same_findings": identical_images,
        "findings_a": matched + only_a,
        "findings_b": matched + only_b,
        "matched": matched,
        "only_a": only_a,
        "only_b": only_b,
        "match_iou": match_iou,
        "dice": 1.0 if total == 0 else 2 * matched / total,
        "score_abs_diff": _stats(score_diffs),
        "box_corner_max_abs_diff_px": _stats(corner_diffs_px),
        "matched_iou": _stats(ious),
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "max": None}
    array = np.asarray(values)
    return {"mean": float(array.mean()), "median": float(np.median(array)), "max": float(array.max())}


def run_compare(config: CompareConfig, progress: bool = False) -> dict[str, Any]:
    """Measure both models on `config.data` and write compare.json (see `enforce_gate`)."""
    from trt_mass.datasets.labelled import load_dataset
    from trt_mass.metadata import read_onnx_metadata

    if config.model_a.resolve() == config.model_b.resolve():
        raise ConfigError(f"MODEL_A and MODEL_B are the same file ({config.model_a})")
    samples = load_dataset(config.data)
    if not any(len(sample.boxes) for sample in samples):
        raise ConfigError(f"{config.data} has no masses in its truth: the TPR gate cannot judge; compare on labelled "
                          "images with masses")
    paths = {"a": config.model_a, "b": config.model_b}
    metadata = {name: read_onnx_metadata(path) for name, path in paths.items()}
    if metadata["a"].graph_spec.geometry != metadata["b"].graph_spec.geometry:
        raise ConfigError(f"{config.model_a} and {config.model_b} have different tile geometries; "
                          "compare variants of one export")
    measured = {name: _measure(path, samples, config, progress) for name, path in paths.items()}
    lesions = measured["a"].summary["lesions"]
    if lesions == 0:
        raise ConfigError(f"{config.data} has no masses in its truth: the TPR gate cannot judge; compare on labelled "
                          "images with masses")
    tpr = {name: measured[name].tpr_at(1.0) for name in paths}
    drop = tpr["a"] - tpr["b"]
    report: dict[str, Any] = {
        "data": config.data,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "models": {name: {"path": str(path), "model_id": metadata[name].model_id,
                          "precision": metadata[name].precision, "target": metadata[name].target,
                          "calibration_sha256": metadata[name].calibration_sha256,
                          "seconds_per_image": measured[name].seconds / max(1, len(measured[name].images))}
                   for name, path in paths.items()},
        "same_weights": metadata["a"].weights_sha256 == metadata["b"].weights_sha256,
        "agreement": agreement(measured["a"].images, measured["b"].images, config.match_iou),
        "accuracy": {
            "criterion": config.criterion,
            "iou_threshold": config.iou_threshold,
            "lesions": lesions,
            "tpr_at_fppi": {str(p): {"a": measured["a"].tpr_at(p), "b": measured["b"].tpr_at(p),
                                     "delta": measured["b"].tpr_at(p) - measured["a"].tpr_at(p)} for p in FPPI_POINTS},
        },
        "gate": {"metric": "TPR at 1 FPPI", "max_drop": config.max_tpr_drop,
                 # 1e-9: a drop of exactly the allowance passes (46/50 - 45/50 is 0.020000000000000018)
                 "drop": drop, "passed": bool(drop <= config.max_tpr_drop + 1e-9)},
    }
    if config.out_dir is not None:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(config.out_dir / "compare.json", report)
    return report


@dataclass
class _Measured:
    """One model's detections on the data, their FROC summary, and the time they took."""

    images: list[ImageResult]
    summary: dict[str, Any]
    seconds: float

    def tpr_at(self, fppi: float) -> float:
        return float(self.summary["tpr_at_fppi"][str(fppi)]["tpr"])


def _measure(path: Path, samples: list[Any], config: CompareConfig, progress: bool) -> _Measured:
    from trt_mass.eval.run import detect_samples, summarize

    normal_ids = {s.image_id for s in samples if s.normal}
    started = time.perf_counter()
    images, refused = detect_samples(path, samples, config.backend, config.threads, progress)
    seconds = time.perf_counter() - started
    if not images:
        raise ConfigError(f"every image of {config.data} was refused: {refused[:3]}")
    summary = summarize(images, normal_ids, config.criterion, config.iou_threshold, config.bootstrap)
    return _Measured(images, summary, seconds)


def enforce_gate(report: dict[str, Any]) -> None:
    """Raise AccuracyRegressionError when the report's gate failed."""
    gate = report["gate"]
    if gate["passed"]:
        return
    a, b = report["models"]["a"], report["models"]["b"]
    tpr = report["accuracy"]["tpr_at_fppi"]["1.0"]
    raise AccuracyRegressionError(
        f"{b['model_id']} loses {gate['drop']:.3f} TPR at 1 FPPI against {a['model_id']} "
        f"({tpr['a']:.3f} -> {tpr['b']:.3f}; allowed {gate['max_drop']})")
