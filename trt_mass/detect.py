"""`trtmass detect` as a library call: many files in, one JSON (and optional overlay) per image out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.errors import InputError
from trt_mass.geometry import Finding
from trt_mass.inputs.dicom import Mammogram
from trt_mass.inputs.files import read_image, read_truth
from trt_mass.metadata import ModelMetadata
from trt_mass.outputs.overlay import render_overlay, write_json, write_overlay
from trt_mass.pipeline import DetectionResult, Detector


@dataclass(frozen=True)
class DetectConfig:
    """Options of a detect run.

    Attributes:
        model: engine-graph ONNX.
        out_dir: where <sop uid or stem>.json (and .overlay.png) go.
        pixel_spacing_mm: spacing for inputs that carry none (rasters); DICOM files use their own.
    """

    model: Path
    out_dir: Path
    backend: str = "ort"
    threads: int | None = None
    overlay: bool = False
    truth: Path | None = None
    pixel_spacing_mm: float | None = None
    dicom_out: tuple[str, ...] = ()
    allow_engine_host_code: bool = False
    model_dir: Path | None = None  # the only folder TensorRT engines are loaded from (default: the model's)


@dataclass
class FileOutcome:
    path: Path
    result_path: Path | None = None
    findings: int = 0
    error: str | None = None


@dataclass
class DetectSummary:
    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def findings(self) -> int:
        return sum(o.findings for o in self.outcomes)

    def line(self) -> str:
        return (f"summary: {len(self.outcomes)} file(s), {self.findings} finding(s), {len(self.refused)} refused, "
                f"{self.seconds:.1f} s")


def result_record(mammogram: Mammogram, result: DetectionResult, detector: Detector,
                  timings_ms: dict[str, float], spacing_mm: tuple[float, float] | None) -> dict[str, Any]:
    """The JSON of one image: where it came from (UIDs, no patient data), findings in original pixels."""
    metadata = detector.metadata
    return {
        "image": {**mammogram.describe(), "pixel_spacing_mm": None if spacing_mm is None else list(spacing_mm)},
        "coordinates": "original pixels, xyxy (x right, y down, pixel (0,0) spans [0,1) x [0,1))",
        "findings": [f.to_dict() for f in result.findings],
        "model": {
            "model_id": metadata.model_id,
            "weights_sha256": metadata.weights_sha256,
            "init": metadata.init,
            "precision": metadata.precision,
            "backend": detector.runner.backend,
        },
        "timings_ms": {k: round(v, 2) for k, v in timings_ms.items()},
    }


def dicom_outputs(path: Path, mammogram: Mammogram, findings: list[Finding], metadata: ModelMetadata,
                  out_dir: Path, kinds: tuple[str, ...]) -> dict[str, str] | None:
    """Write the CAD SR / GSPS / SC of a DICOM input; None for rasters (nothing to reference)."""
    from trt_mass.outputs.dicom import ModelIdentity, write_dicom_outputs

    if mammogram.sop_instance_uid is None:
        return None
    identity = ModelIdentity(metadata.weights_sha256, metadata.model_id, metadata.precision)
    written = write_dicom_outputs(path, mammogram.pixels, findings, identity, out_dir, kinds)
    return {kind: target.name for kind, target in written.items()}


def _result_stem(mammogram: Mammogram, path: Path, used: set[str]) -> str:
    stem = mammogram.sop_instance_uid or path.stem
    candidate, number = stem, 2
    while candidate in used:
        candidate, number = f"{stem}-{number}", number + 1
    used.add(candidate)
    return candidate


def run_detect(paths: Iterable[Path], config: DetectConfig,
               on_file: Callable[[FileOutcome], None] | None = None) -> DetectSummary:
    """Detect on every path; a refused file is recorded and the others still processed."""
    started = time.perf_counter()
    truth = read_truth(config.truth) if config.truth else {}
    config.out_dir.mkdir(parents=True, exist_ok=True)
    summary = DetectSummary()
    used: set[str] = set()
    with Detector(config.model, backend=config.backend, threads=config.threads, model_dir=config.model_dir,
                  allow_engine_host_code=config.allow_engine_host_code) as detector:
        for path in paths:
            outcome = FileOutcome(path)
            try:
                _detect_one(path, detector, config, truth, used, outcome)
            except InputError as error:
                outcome.error = str(error)
            summary.outcomes.append(outcome)
            if on_file is not None:
                on_file(outcome)
    summary.seconds = time.perf_counter() - started
    return summary


def _detect_one(path: Path, detector: Detector, config: DetectConfig, truth: dict[str, np.ndarray],
                used: set[str], outcome: FileOutcome) -> None:
    read_started = time.perf_counter()
    mammogram = read_image(path)
    read_ms = 1000 * (time.perf_counter() - read_started)
    spacing = mammogram.pixel_spacing_mm
    if spacing is None and config.pixel_spacing_mm is not None:
        spacing = (config.pixel_spacing_mm, config.pixel_spacing_mm)
    result = detector.detect(mammogram.pixels, pixel_spacing_mm=spacing, source=str(path))
    write_started = time.perf_counter()
    stem = _result_stem(mammogram, path, used)
    timings = {"read_decode_ms": read_ms, **result.timings_ms}
    if config.overlay:
        boxes = truth.get(mammogram.sop_instance_uid or "", truth.get(path.name))
        write_overlay(config.out_dir / f"{stem}.overlay.png", render_overlay(mammogram.pixels, result.findings, boxes))
    record = result_record(mammogram, result, detector, timings, spacing)
    if config.dicom_out:
        record["dicom_outputs"] = dicom_outputs(path, mammogram, result.findings, detector.metadata, config.out_dir,
                                                config.dicom_out)
    record["timings_ms"]["write_ms"] = round(1000 * (time.perf_counter() - write_started), 2)
    result_path = config.out_dir / f"{stem}.json"
    write_json(result_path, record)
    outcome.result_path = result_path
    outcome.findings = len(result.findings)
