"""The detection pipeline on the host: canvas -> runner (engine graph) -> findings in original pixels.

No torch here: this is the runtime path (detect, watch, bench on ONNX Runtime).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from trt_mass.errors import ModelError
from trt_mass.geometry import CanvasBuilder, Finding, Letterbox, findings_from_canvas
from trt_mass.metadata import ModelMetadata
from trt_mass.runners import Runner, make_runner, resolve_backend

log = logging.getLogger(__name__)


@dataclass
class DetectionResult:
    """Findings of one image (original pixels, xyxy, by decreasing score) and how they were made."""

    findings: list[Finding]
    letterbox: Letterbox
    timings_ms: dict[str, float] = field(default_factory=dict)


class Detector:
    """Load an engine-graph model once, then detect masses on many images.

    Example:
        with Detector("model.onnx") as detector:
            result = detector.detect(image_uint16, pixel_spacing_mm=(0.07, 0.07))
    """

    def __init__(self, model_path: str | Path, backend: str = "ort", threads: int | None = None, *,
                 model_dir: str | Path | None = None, allow_engine_host_code: bool = False) -> None:
        """`backend`: "ort", "trt" (an engine, or an .onnx whose engine is in `model_dir`) or "auto".

        `model_dir`: the folder TensorRT engines are looked up in and loaded from (default: the model's).
        `allow_engine_host_code`: allow version-compatible engines (their lean runtime runs as host code).
        The backend picked and why are in `backend_reason` (and logged).
        """
        backend, artifact, self.backend_reason = resolve_backend(
            backend, model_path, model_dir=model_dir, allow_engine_host_code=allow_engine_host_code)
        options: dict[str, Any] = {}
        if backend == "ort":
            options = {"threads": threads}
        elif backend == "trt":
            options = {"model_dir": model_dir, "allow_engine_host_code": allow_engine_host_code}
        log.info("backend %s (%s)", backend, self.backend_reason)
        self.runner: Runner = make_runner(backend, artifact, **options)
        self._canvas: CanvasBuilder | None = None

    @property
    def metadata(self) -> ModelMetadata:
        return self.runner.metadata

    def open(self) -> Detector:
        self.runner.activate()
        metadata = self.runner.metadata
        if metadata.kind != "engine_graph":
            raise ModelError(
                f"{metadata.model_id} is a {metadata.kind} export; detection needs the engine graph "
                "(export without --network-only)"
            )
        self._canvas = CanvasBuilder(metadata.graph_spec.geometry, metadata.graph_spec.canvas_dtype)
        return self

    def close(self) -> None:
        self.runner.deactivate()
        self._canvas = None

    def __enter__(self) -> Detector:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def detect(
        self,
        image: np.ndarray,
        *,
        pixel_spacing_mm: tuple[float, float] | None = None,
        source: str = "<array>",
    ) -> DetectionResult:
        """Detect masses in a uint16 [H, W] image.

        Args:
            image: the canonical model input (dense tissue bright), uint16 H x W.
            pixel_spacing_mm: (row, column) spacing; enables the mm^2 area filter and areas in mm^2.
            source: name used in error messages.
        """
        if self._canvas is None:
            self.open()
        assert self._canvas is not None
        spec = self.metadata.graph_spec
        started = time.perf_counter()
        letterbox = self._canvas.fill(image, source)
        canvas_done = time.perf_counter()
        outputs = self.runner.infer({"canvas": self._canvas.canvas})
        infer_done = time.perf_counter()
        findings = findings_from_canvas(
            outputs["boxes"], outputs["scores"], letterbox,
            pixel_spacing_mm=pixel_spacing_mm,
            min_area_mm2=spec.min_area_mm2,
            min_area_canvas_px=spec.min_area_canvas_px,
        )
        done = time.perf_counter()
        timings = {
            "canvas_ms": 1000 * (canvas_done - started),
            "infer_ms": 1000 * (infer_done - canvas_done),
            "postprocess_ms": 1000 * (done - infer_done),
        }
        return DetectionResult(findings, letterbox, timings)
