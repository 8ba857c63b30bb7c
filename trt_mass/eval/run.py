"""`trtmass eval`: run the detection pipeline over a labelled data set and measure it (FROC and more)."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.atomic import atomic_path, write_json_atomic, write_text_atomic
from trt_mass.datasets.labelled import Sample, check_boxes_on_image, load_dataset
from trt_mass.errors import ConfigError, InputError
from trt_mass.eval.froc import FPPI_POINTS, ImageResult, bootstrap_tpr, froc_curve, lesion_outcomes
from trt_mass.metadata import OPERATING_FPPI, ModelMetadata, OperatingPoints, read_onnx_metadata, rewrite_onnx_metadata
from trt_mass.progress import ProgressLine

IOU_SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class EvalConfig:
    models: tuple[Path, ...]  # the first is the model under test; the others are compared with it
    data: str
    out_dir: Path
    criterion: str = "iou"
    iou_threshold: float = 0.2
    bootstrap: int = 1000
    backend: str = "ort"
    threads: int | None = None
    folds: int | None = None  # with fold: evaluate only that patient-wise test fold (as held out by train)
    fold: int = 0
    seed: int = 0
    write_operating_points: bool = False  # into the first model's metadata, measured on this data
    raster_bits: int | None = None  # significant bits of 16-bit PNG/TIFF images, as detect --raster-bits
    all_views: bool = False  # a model with view selection runs every view (its FROC without the selection)


def detect_samples(model: Path, samples: Sequence[Sample], backend: str = "ort", threads: int | None = None,
                   progress: bool = False, raster_bits: int | None = None,
                   all_views: bool = False) -> tuple[list[ImageResult], list[str]]:
    """Findings of every sample through the same pipeline as `trtmass detect`; (results, refusals)."""
    from trt_mass.inputs.files import read_image
    from trt_mass.pipeline import Detector

    results, refused = [], []
    with Detector(model, backend=backend, threads=threads, all_views=all_views) as detector, \
            ProgressLine(progress) as line:
        for index, sample in enumerate(samples):
            try:
                mammogram = read_image(sample.path, raster_bits)
                check_boxes_on_image(sample, *mammogram.pixels.shape)
            except InputError as error:
                refused.append(str(error))
                continue
            findings = detector.detect_mammogram(mammogram, default_spacing_mm=sample.pixel_spacing_mm,
                                                 source=str(sample.path)).findings
            boxes = np.array([[f.x1, f.y1, f.x2, f.y2] for f in findings], dtype=np.float64).reshape(-1, 4)
            scores = np.array([f.score for f in findings], dtype=np.float64)
            results.append(ImageResult(sample.image_id, sample.patient_id, boxes, scores, sample.boxes))
            line.update(f"eval {Path(model).name}: {index + 1}/{len(samples)}")
    return results, refused


def summarize(images: list[ImageResult], normal_ids: set[str], criterion: str, iou_threshold: float,
              bootstrap: int) -> dict[str, Any]:
    """Every figure of the report for one model, as plain data."""
    curve = froc_curve(images, criterion, iou_threshold)
    intervals = bootstrap_tpr(images, FPPI_POINTS, criterion, iou_threshold, resamples=bootstrap) if bootstrap else {}
    normals = [i for i in images if i.image_id in normal_ids]
    normal_scores = np.sort(np.concatenate([i.det_scores for i in normals]) if normals else np.zeros(0))[::-1]
    thresholds = np.round(np.arange(0.1, 1.0, 0.05), 2)
    defined = curve.num_lesions > 0  # without masses a TPR is undefined, not 0: null in eval.json
    return {
        "images": len(images),
        "lesions": curve.num_lesions,
        "criterion": criterion,
        "iou_threshold": iou_threshold if criterion == "iou" else None,
        "tpr_at_fppi": {str(p): {"tpr": curve.tpr_at(p) if defined else None,
                                 "ci95": list(intervals[p]) if p in intervals else None} for p in FPPI_POINTS},
        "froc": {"threshold": curve.thresholds.tolist(), "fppi": curve.fppi.tolist(), "tpr": curve.tpr.tolist()},
        "tpr_at_1fppi_vs_min_iou": {str(t): froc_curve(images, "iou", t).tpr_at(1.0) if defined else None
                                    for t in IOU_SWEEP},
        "normal_images": len(normals),
        "fp_per_normal_image_vs_threshold": {
            str(t): float((normal_scores >= t).sum() / max(1, len(normals))) for t in thresholds},
        # "found" at this data's own 1-FPPI point: the masses that TPR at 1 FPPI counts
        "lesion_outcomes": lesion_outcomes(images, curve.threshold_at(1.0), criterion, iou_threshold),
    }


def run_eval(config: EvalConfig, progress: bool = False) -> dict[str, Any]:
    samples = load_dataset(config.data)
    if config.folds:
        from trt_mass.datasets.labelled import patient_folds

        _, samples = patient_folds(samples, config.folds, config.fold, config.seed)
    normal_ids = {s.image_id for s in samples if s.normal}
    report: dict[str, Any] = {"data": config.data, "samples": len(samples), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "all_views": config.all_views, "models": {}}
    config.out_dir.mkdir(parents=True, exist_ok=True)
    for model in config.models:
        metadata = read_onnx_metadata(model)
        images, refused = detect_samples(model, samples, config.backend, config.threads, progress, config.raster_bits,
                                         config.all_views)
        if not images:
            raise ConfigError(f"every image of {config.data} was refused: {refused[:3]}")
        summary = summarize(images, normal_ids, config.criterion, config.iou_threshold, config.bootstrap)
        summary.update(model=str(model), model_id=metadata.model_id, precision=metadata.precision, refused=refused)
        if config.write_operating_points and model == config.models[0] and refused:
            # points measured without some of the set would be filed as the whole set's: not written
            summary["operating_points_not_written"] = f"{len(refused)} image(s) of {config.data} refused"
        elif config.write_operating_points and model == config.models[0]:
            summary["operating_points_written"] = _write_operating_points(model, metadata, images, config)
        report["models"][metadata.model_id if metadata.model_id not in report["models"] else str(model)] = summary
    write_report(config.out_dir, report)
    return report


def operating_points(images: Sequence[ImageResult], data: str, criterion: str,
                     iou_threshold: float) -> OperatingPoints:
    """The score thresholds for 0.25 / 0.5 / 1 / 2 false positives per image on these results."""
    curve = froc_curve(images, criterion, iou_threshold)
    return OperatingPoints(
        scores={name: curve.threshold_at(float(name)) for name in OPERATING_FPPI},
        tpr={name: curve.tpr_at(float(name)) for name in OPERATING_FPPI},
        data=data, source="eval", images=curve.num_images, lesions=curve.num_lesions, criterion=criterion,
        iou_threshold=iou_threshold if criterion == "iou" else None)


def _write_operating_points(model: Path, metadata: ModelMetadata, images: Sequence[ImageResult],
                            config: EvalConfig) -> dict[str, Any]:
    data = config.data if not config.folds else f"{config.data} (fold {config.fold} of {config.folds})"
    points = operating_points(images, data, config.criterion, config.iou_threshold)
    if points.lesions == 0:
        raise ConfigError(f"{config.data} has no masses: operating points need masses to measure sensitivity")
    rewrite_onnx_metadata(model, dataclasses.replace(metadata, operating_points=points))
    return points.to_dict()


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    write_json_atomic(out_dir / "eval.json", report)
    tpr_rows: list[list[Any]] = [["model", "fppi", "tpr", "ci95_low", "ci95_high"]]
    froc_rows: list[list[Any]] = [["model", "threshold", "fppi", "tpr"]]
    for name, summary in report["models"].items():
        for point, value in summary["tpr_at_fppi"].items():
            low, high = value["ci95"] or (None, None)
            tpr_rows.append([name, point, "" if value["tpr"] is None else round(value["tpr"], 4), low, high])
        froc = summary["froc"]
        for row in zip(froc["threshold"], froc["fppi"], froc["tpr"], strict=True):
            froc_rows.append([name, *(round(v, 6) for v in row)])
    _write_csv(out_dir / "tpr_at_fppi.csv", tpr_rows)
    _write_csv(out_dir / "froc.csv", froc_rows)
    _write_csv(out_dir / "lesions.csv", _lesion_rows(report))
    _plots(out_dir, report)


def _lesion_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [["model", "image_id", "patient_id", "x1", "y1", "x2", "y2", "width", "height",
                              "best_iou", "hit_score", "found_at_1fppi"]]
    for name, summary in report["models"].items():
        for lesion in summary["lesion_outcomes"]:
            rows.append([name, lesion["image_id"], lesion["patient_id"], *lesion["box_xyxy"], lesion["width"],
                         lesion["height"], lesion["best_iou"], lesion["hit_score"], lesion["found"]])
    return rows


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    write_text_atomic(path, text.getvalue())


def _plots(out_dir: Path, report: dict[str, Any]) -> None:
    models = report["models"]
    criterion = next(iter(models.values()))["criterion"]
    froc = {name: (m["froc"]["fppi"], m["froc"]["tpr"]) for name, m in models.items()}
    _plot(out_dir / "froc.png", froc, "false positives per image", "TPR", f"FROC ({criterion})",
          step=True, xscale="symlog", xlim=(0, 4), ylim=(0, 1.02), xticks=[0, *FPPI_POINTS],
          xticklabels=["0", *(f"{p:g}" for p in FPPI_POINTS)])
    sweep = {name: ([float(k) for k in m["tpr_at_1fppi_vs_min_iou"]], list(m["tpr_at_1fppi_vs_min_iou"].values()))
             for name, m in models.items() if m["lesions"]}
    if sweep:
        _plot(out_dir / "tpr_vs_iou.png", sweep, "minimum IoU for a hit", "TPR at 1 FPPI", "TPR against minimum IoU",
              ylim=(0, 1.02))
    normals = {name: ([float(k) for k in m["fp_per_normal_image_vs_threshold"]],
                      list(m["fp_per_normal_image_vs_threshold"].values())) for name, m in models.items()}
    _plot(out_dir / "fp_normals.png", normals, "score threshold", "false positives per normal image",
          "False positives on normal images")


def _plot(path: Path, series: dict[str, tuple[list[float], list[float]]], xlabel: str, ylabel: str, title: str,
          step: bool = False, **axes: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, (x, y) in series.items():
        if step:
            axis.step(x, y, where="post", label=name)
        else:
            axis.plot(x, y, marker=".", label=name)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title, **axes)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path, suffix=path.suffix) as temporary:  # the suffix picks the format, as in savefig
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
