"""The detection pipeline on the host: canvas -> runner (engine graph) -> findings in original pixels.

Detector is where the backend is chosen (trt_mass.runners.select, once, with the reason) and where
every path that detects (detect, watch, bench, eval, compare) turns an image into a DetectionResult.
No torch here: this is the runtime path (detect, watch, bench on ONNX Runtime).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from trt_mass.engine.gpu import TensorRTEnvironment
from trt_mass.errors import ModelError
from trt_mass.geometry import CanvasBuilder, Finding, Letterbox, findings_from_canvas
from trt_mass.inputs.dicom import Mammogram
from trt_mass.metadata import ModelMetadata
from trt_mass.runners.base import Runner
from trt_mass.runners.select import AUTO, BackendChoice, BackendOptions, choose_backend, open_runner
from trt_mass.spec import GraphSpec

log = logging.getLogger(__name__)


@dataclass
class DetectionResult:
    """Findings of one image (original pixels, xyxy, by decreasing score) and how they were made.

    Attributes:
        findings: by decreasing score, original pixels.
        letterbox: how the image was placed on the canvas.
        timings_ms: canvas_ms, select_ms (view selection), infer_ms, postprocess_ms of this call.
        pixel_spacing_mm: the (row, column) spacing the area filter used; None when unknown.
        views: the views that ran (0: the full view, 1..: tiles row by row), ascending.
        view_selection: "tissue" (the views the host found tissue in), "tissue-central" (of those, the
            ones some tissue lies most centrally in: a model exported with --tissue-cover central), "all"
            (a model without view selection), or "all-forced" (a model with view selection, run with
            all_views).
        prepared_elsewhere: the canvas and views were made in another thread (a daemon's decode worker),
            so canvas_ms and select_ms were not spent on the engine's thread.
    """

    findings: list[Finding]
    letterbox: Letterbox
    timings_ms: dict[str, float] = field(default_factory=dict)
    pixel_spacing_mm: tuple[float, float] | None = None
    views: tuple[int, ...] = ()
    view_selection: str = "all"
    prepared_elsewhere: bool = False


class Detector:
    """Load an engine-graph model once, then detect masses on many images.

    Example:
        with Detector("model.onnx") as detector:
            result = detector.detect(image_uint16, pixel_spacing_mm=(0.07, 0.07))
    """

    runner: Runner
    choice: BackendChoice
    _canvas: CanvasBuilder | None
    _fallback: tuple[BackendChoice, BackendOptions] | None  # what `auto` falls back to when its engine fails to load

    def __init__(self, model_path: str | Path, backend: str = "ort", threads: int | None = None, *,
                 model_dir: str | Path | None = None, allow_engine_host_code: bool = False, device: str = "auto",
                 checkpoint: str | Path | None = None, environment: TensorRTEnvironment | None = None,
                 cpu_spin: bool = True, triton_url: str | None = None, triton_model: str = "trt_mass",
                 triton_timeout_s: float = 30.0, all_views: bool = False) -> None:
        """`backend`: "ort", "trt" (an engine, or an .onnx whose engine is in `model_dir`), "torch" or "auto".

        `model_dir`: the folder TensorRT engines are looked up in and loaded from (default: the model's).
        `allow_engine_host_code`: allow version-compatible engines (their lean runtime runs as host code).
        `device`, `checkpoint`: the torch backend's device and the checkpoint the model was exported from.
        `environment`: this machine's TensorRT and GPU when already probed (default: probed here).
        `cpu_spin`: False when other threads share the cores (ONNX Runtime's idle threads then sleep).
        `triton_url`, `triton_model`, `triton_timeout_s`: the server of backend "triton" (`model_path` is the
        .onnx the served model must be).
        `all_views`: a model with view selection runs every view (the paper's behaviour) instead of the
        views with tissue.
        Options the chosen backend does not take are ignored.  The choice and why: `backend`, `backend_reason`.

        With "auto", an engine that passes its checks but then fails to load (out of GPU memory, driver
        trouble) gives way to ONNX Runtime on the .onnx when the detector is opened, and the reason says so;
        "trt" fails loudly instead.
        """
        options = BackendOptions(threads=threads, model_dir=None if model_dir is None else Path(model_dir),
                                 allow_engine_host_code=allow_engine_host_code, device=device,
                                 checkpoint=None if checkpoint is None else Path(checkpoint), cpu_spin=cpu_spin,
                                 triton_url=triton_url, triton_model=triton_model, triton_timeout_s=triton_timeout_s)
        choice = choose_backend(backend, model_path, options, environment=environment)
        self.all_views = all_views
        self._adopt(open_runner(choice, options), choice)
        model_path = Path(model_path)
        if backend == AUTO and choice.backend == "trt" and model_path.suffix == ".onnx":
            self._fallback = (BackendChoice("ort", model_path, ""), options)

    @classmethod
    def from_runner(cls, runner: Runner, artifact: str | Path, reason: str) -> Detector:
        """A detector around a runner made elsewhere (bench's eager baseline): no backend selection."""
        detector = cls.__new__(cls)
        detector.all_views = False
        detector._adopt(runner, BackendChoice(runner.backend, Path(artifact), reason))
        return detector

    def _adopt(self, runner: Runner, choice: BackendChoice) -> None:
        log.info("backend %s (%s)", choice.backend, choice.reason)
        self.runner = runner
        self.choice = choice
        self._canvas = None
        self._fallback = None

    @property
    def backend(self) -> str:
        """The backend that runs the model ("ort", "trt", ...)."""
        return self.choice.backend

    @property
    def backend_reason(self) -> str:
        """Why that backend: what was asked for, or what `auto` found on this machine."""
        return self.choice.reason

    @property
    def metadata(self) -> ModelMetadata:
        return self.runner.metadata

    def open(self) -> Detector:
        try:
            self.runner.activate()
        except Exception as error:
            if self._fallback is None:
                raise
            self._fall_back(error)
        metadata = self.runner.metadata
        if metadata.kind != "engine_graph":
            self.runner.deactivate()
            raise ModelError(
                f"{metadata.model_id} is a {metadata.kind} export; detection needs the engine graph "
                "(export without --network-only)"
            )
        self._canvas = CanvasBuilder(metadata.graph_spec.geometry, metadata.graph_spec.canvas_dtype)
        return self

    def _fall_back(self, error: Exception) -> None:
        """`auto` chose an engine that would not load: ONNX Runtime on the .onnx instead, and say why."""
        assert self._fallback is not None
        fallback, options = self._fallback
        reason = f"{self.choice.reason}, but it could not be loaded ({error}); ONNX Runtime instead"
        log.warning("backend ort: %s", reason)
        self._adopt(open_runner(fallback._replace(reason=reason), options), fallback._replace(reason=reason))
        self.runner.activate()

    def close(self) -> None:
        self.runner.deactivate()
        self._canvas = None

    def __enter__(self) -> Detector:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def detect_mammogram(self, mammogram: Mammogram, *, default_spacing_mm: float | None = None,
                         source: str | None = None, prepared: PreparedCanvas | None = None) -> DetectionResult:
        """Detect on a loaded mammogram; its own pixel spacing, else `default_spacing_mm` (rasters carry none).

        `prepared`: its canvas, made by another thread (CanvasPreparer.prepare); used when it was made for
        this model's graph, else the canvas is made again here.
        """
        spacing = mammogram.pixel_spacing_mm
        if spacing is None and default_spacing_mm is not None:
            spacing = (default_spacing_mm, default_spacing_mm)
        if self._canvas is None:
            self.open()
        if prepared is not None and prepared.preparer == self.preparer:
            return self.detect_prepared(prepared, pixel_spacing_mm=spacing, elsewhere=True)
        return self.detect(mammogram.pixels, pixel_spacing_mm=spacing, source=source or mammogram.source)

    @property
    def preparer(self) -> CanvasPreparer:
        """The host's work before the engine for this model, safe to run in other threads."""
        return CanvasPreparer(self.metadata.graph_spec, self.all_views)

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
        prepared = self.preparer.prepare(image, source, self._canvas)
        return self.detect_prepared(prepared, pixel_spacing_mm=pixel_spacing_mm)

    def detect_prepared(self, prepared: PreparedCanvas, *, pixel_spacing_mm: tuple[float, float] | None = None,
                        elsewhere: bool = False) -> DetectionResult:
        """Detect masses on a canvas CanvasPreparer.prepare made (`elsewhere`: in another thread).

        Raises ModelError when it was prepared for another graph (geometry, view selection, canvas type).
        """
        if self._canvas is None:
            self.open()
        spec = self.metadata.graph_spec
        if prepared.preparer != self.preparer:
            raise ModelError(f"{prepared.source} was prepared for another graph than {self.metadata.model_id}'s")
        feed = {"canvas": prepared.canvas}
        if spec.selects_views:
            feed["view_index"] = prepared.views
        started = time.perf_counter()
        outputs = self.runner.infer(feed)
        infer_done = time.perf_counter()
        findings = findings_from_canvas(
            outputs["boxes"], outputs["scores"], prepared.letterbox,
            pixel_spacing_mm=pixel_spacing_mm,
            min_area_mm2=spec.min_area_mm2,
            min_area_canvas_px=spec.min_area_canvas_px,
        )
        done = time.perf_counter()
        timings = {**prepared.timings_ms, "infer_ms": 1000 * (infer_done - started),
                   "postprocess_ms": 1000 * (done - infer_done)}
        return DetectionResult(findings, prepared.letterbox, timings, pixel_spacing_mm,
                               tuple(int(v) for v in prepared.views), prepared.view_selection, elsewhere)


@dataclass(frozen=True)
class CanvasPreparer:
    """The host's work before the engine: letterbox onto the canvas, then choose the views.

    Holds no buffers and no runner, so decode workers can prepare canvases while the engine runs
    (the daemon does, to keep its engine thread for the engine).  Equal preparers make equal canvases.
    """

    graph_spec: GraphSpec
    all_views: bool = False

    def prepare(self, image: np.ndarray, source: str = "<array>",
                builder: CanvasBuilder | None = None) -> PreparedCanvas:
        """Letterbox a uint16 [H, W] image and choose its views.

        `builder`: a canvas to reuse (its buffer is then the prepared canvas until the next fill); by
        default a new one, which the result owns (safe to queue).  InputError (naming `source`) for
        anything that is not a non-empty 2-D uint16 image.
        """
        started = time.perf_counter()
        builder = builder or CanvasBuilder(self.graph_spec.geometry, self.graph_spec.canvas_dtype)
        letterbox = builder.fill(image, source)
        canvas_done = time.perf_counter()
        views, selection = self._views(builder.canvas, letterbox)
        timings = {"canvas_ms": 1000 * (canvas_done - started),
                   "select_ms": 1000 * (time.perf_counter() - canvas_done)}
        return PreparedCanvas(builder.canvas, letterbox, views, selection, timings, self, source)

    def _views(self, canvas: np.ndarray, letterbox: Letterbox) -> tuple[np.ndarray, str]:
        """int32 [K] views to run on `canvas` [1, 1, CH, CW], and how they were chosen."""
        from trt_mass.tissue import TissueSpec, all_views, views_with_tissue

        spec = self.graph_spec
        if not spec.selects_views:
            return all_views(spec.geometry), "all"
        if self.all_views:
            return all_views(spec.geometry), "all-forced"
        name = "tissue" if spec.tissue_cover == "every" else f"tissue-{spec.tissue_cover}"
        return views_with_tissue(canvas, letterbox.resized_hw, spec.geometry, TissueSpec.of(spec)), name


@dataclass
class PreparedCanvas:
    """One image letterboxed onto a canvas, with its views chosen; what the engine takes.

    Attributes:
        canvas: [1, 1, CH, CW] canvas pixels (uint16, or int32 for engines).
        letterbox: how the image lies on it (original <-> canvas pixels).
        views: int32 [K] views to run, ascending (0: the full view).
        view_selection: how they were chosen (DetectionResult.view_selection).
        timings_ms: canvas_ms and select_ms of the preparation.
        preparer: what prepared it (a detector refuses a canvas prepared for another graph).
        source: the image's name, for messages.
    """

    canvas: np.ndarray
    letterbox: Letterbox
    views: np.ndarray
    view_selection: str
    timings_ms: dict[str, float]
    preparer: CanvasPreparer
    source: str
