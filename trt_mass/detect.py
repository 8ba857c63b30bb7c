"""`trtmass detect` as a library call: many files in, one result per image out (trt_mass.outputs.results)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trt_mass.errors import InputError
from trt_mass.geometry import check_pixel_spacing
from trt_mass.inputs.decoders import PixelDecoder, open_decoder
from trt_mass.inputs.files import read_image, read_truth
from trt_mass.outputs.operating_point import OperatingPoint, check_operating_point, choose_operating_point
from trt_mass.outputs.results import OutputOptions, ResultWriter, StemAllocator
from trt_mass.pipeline import Detector


@dataclass(frozen=True)
class DetectConfig:
    """Options of a detect run.

    Attributes:
        model: engine-graph ONNX (or a TensorRT engine with backend "trt").
        out_dir: where <sop uid or stem>.json (and .overlay.png, DICOM objects) go.
        backend: "ort", "trt", "triton" or "auto" (trt_mass.runners.select).
        pixel_spacing_mm: spacing for inputs that carry none (rasters); DICOM files use their own.
        raster_bits: significant bits of 16-bit PNG/TIFF inputs (None: from the file, else its maximum).
        dicom_out: DICOM objects for DICOM inputs, any of "sr", "gsps", "sc".
        operating_point: which findings are shown: "1fppi" (and the model's other points), a score, "all";
            None: the model's 1-FPPI point, else all (trt_mass.outputs.operating_point).
        model_dir: the only folder TensorRT engines are loaded from (default: the model's).
        decoder, decode_threads: the pixel-data decoder (trt_mass.inputs.decoders.open_decoder).
        triton_url, triton_model, triton_timeout_s: the server of backend "triton".
        all_views: run every view even when the model selects the views with tissue.
    """

    model: Path
    out_dir: Path
    backend: str = "ort"
    threads: int | None = None
    overlay: bool = False
    truth: Path | None = None
    pixel_spacing_mm: float | None = None
    raster_bits: int | None = None
    dicom_out: tuple[str, ...] = ()
    operating_point: str | None = None
    allow_engine_host_code: bool = False
    model_dir: Path | None = None
    decoder: str = "auto"
    decode_threads: int | None = None
    triton_url: str | None = None
    triton_model: str = "trt_mass"
    triton_timeout_s: float = 30.0
    all_views: bool = False

    def __post_init__(self) -> None:
        check_operating_point(self.operating_point, "--operating-point")  # before any model is loaded
        check_pixel_spacing(self.pixel_spacing_mm)

    def detector(self) -> Detector:
        """The (not yet opened) Detector of this run: the backend is chosen here, with its reason."""
        return Detector(self.model, backend=self.backend, threads=self.threads, model_dir=self.model_dir,
                        allow_engine_host_code=self.allow_engine_host_code, triton_url=self.triton_url,
                        triton_model=self.triton_model, triton_timeout_s=self.triton_timeout_s,
                        all_views=self.all_views)

    def pixel_decoder(self) -> PixelDecoder:
        """The pixel-data decoder of this run, chosen here with its reason."""
        return open_decoder(self.decoder, self.decode_threads)

    def point_for(self, detector: Detector) -> OperatingPoint:
        """The operating point of this run with the detector's (open) model."""
        return choose_operating_point(detector.metadata, self.operating_point)


@dataclass
class FileOutcome:
    path: Path
    result_path: Path | None = None
    findings: int = 0  # shown, at or above the operating point
    candidates: int = 0
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


def run_detect(paths: Iterable[Path], config: DetectConfig, on_file: Callable[[FileOutcome], None] | None = None,
               *, detector: Detector | None = None, decoder: PixelDecoder | None = None) -> DetectSummary:
    """Detect on every path; a refused file is recorded and the others still processed.

    `detector`: an open Detector for `config` (the CLI opens it first, to say which backend runs and at
    which operating point);
    default: `config.detector()`, opened and closed here.
    `decoder`: the pixel-data decoder (default: `config.pixel_decoder()`).
    """
    if detector is None:
        with config.detector() as opened:
            return run_detect(paths, config, on_file, detector=opened, decoder=decoder)
    decoder = decoder or config.pixel_decoder()
    started = time.perf_counter()
    truth = read_truth(config.truth) if config.truth else {}
    config.out_dir.mkdir(parents=True, exist_ok=True)
    writer = ResultWriter(config.out_dir, detector.metadata, detector.backend,
                          OutputOptions(overlay=config.overlay, dicom_kinds=config.dicom_out,
                                        operating_point=config.point_for(detector)))
    stems = StemAllocator()
    summary = DetectSummary()
    for path in paths:
        outcome = FileOutcome(path)
        try:
            _detect_one(path, detector, decoder, writer, stems, config, truth, outcome)
        except InputError as error:
            outcome.error = str(error)
        summary.outcomes.append(outcome)
        if on_file is not None:
            on_file(outcome)
    summary.seconds = time.perf_counter() - started
    return summary


def _detect_one(path: Path, detector: Detector, decoder: PixelDecoder, writer: ResultWriter, stems: StemAllocator,
                config: DetectConfig, truth: dict[str, np.ndarray], outcome: FileOutcome) -> None:
    read_started = time.perf_counter()
    mammogram = read_image(path, config.raster_bits, decoder)
    read_ms = 1000 * (time.perf_counter() - read_started)
    writer.check_source(path, mammogram)
    result = detector.detect_mammogram(mammogram, default_spacing_mm=config.pixel_spacing_mm, source=str(path))
    stem = stems.claim(mammogram, path)
    truth_xyxy = truth.get(mammogram.sop_instance_uid or "", truth.get(path.name))
    written = writer.write(path, mammogram, result, stem, {"read_decode_ms": read_ms, **result.timings_ms},
                           truth_xyxy)
    outcome.result_path = written.json_path
    outcome.findings = written.findings
    outcome.candidates = written.candidates
