"""`trtmass bench`: the timed run.  Latency of the whole mammogram pipeline, stage by stage.

Each timed mammogram goes the way `trtmass detect` takes it -- read_image, Detector.detect_mammogram,
the output step (trt_mass.outputs.results) -- with contiguous timestamps:

    read_decode        the file read from disk and decoded to the uint16 image (trt_mass.inputs.files)
    canvas             letterbox into the model's preallocated canvas (CanvasBuilder.fill), and the choice of
                       the views with tissue for a model with view selection (trt_mass.tissue)
    network            request serialised, sent to the inference server, answer received and parsed, less the
                       server's own time (the triton backend; see "applicable")
    h2d                canvas copy host -> device (GPU backends; see "applicable")
    inference          the engine graph: 26 views, network, decode, per-view NMS, cross-view merge
    d2h                outputs device -> host (GPU backends)
    postprocess_write  canvas boxes -> findings in original pixels + the JSON result written (fsync'd)

so the stages partition each mammogram's end-to-end time exactly.  Medians need not add up: the
median of a sum is not the sum of the medians (only means add), so a report's stage medians add to its
end-to-end median only approximately (tests allow 10 %).

`--baseline` measures, in the same process on the same inputs and interleaved round by round (the
order alternates, so drift hits both alike), the paper's way of running the same weights
(trt_mass.bench.baseline.EagerBaseline: PyTorch eager, one view per forward pass, per-view decode + NMS,
merge in Python), and the ratio ours / baseline of every stage median and of the end-to-end median.
The report's schema is in trt_mass.bench.report.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.bench.decoders import compare_decoders
from trt_mass.bench.machine import gpu_process_used_mib, load_average, machine_facts, peak_rss_mib
from trt_mass.bench.report import (
    OPTIONAL_STAGES,
    SCHEMA,
    STAGE_KEYS,
    STAGES,
    baseline_ratios,
    stats,
    warnings_of,
)
from trt_mass.errors import BackendUnavailableError, ConfigError
from trt_mass.geometry import check_pixel_spacing
from trt_mass.inputs.decoders import PixelDecoder, open_decoder
from trt_mass.inputs.files import collect_inputs, read_image
from trt_mass.metadata import ModelMetadata, file_sha256
from trt_mass.outputs.results import ResultWriter, result_stem
from trt_mass.pipeline import Detector
from trt_mass.runners.select import ALL_CHOICES

ProgressFn = Callable[[int, int, str], None]
# Untimed pause between the two pipelines of a round: ONNX Runtime's and OpenMP's worker threads spin for
# a while after a run and would otherwise steal cores from whichever pipeline runs next.
SETTLE_S = 0.1


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how.

    Attributes:
        model: the engine-graph model (.onnx; for the trt backend what its runner loads).
        backend: "ort", "trt", "torch" (the EngineGraph module in PyTorch, one batched call) or "auto".
        inputs: a folder of DICOM/PNG/TIFF files, or None with `synthetic`.
        synthetic: write this many phantoms (trtmass synth) to a temporary folder and read them from there.
        synthetic_scale: size of the phantoms, as a fraction of the vendors' native sizes.
        seed: seed of the phantoms.
        warmup: untimed mammograms per pipeline before the timed ones.
        runs: timed mammograms per pipeline (cycling through the inputs in order).
        threads: ONNX Runtime intra-op threads, and torch's threads for the torch backend and the baseline.
        device: torch device of the torch backend ("auto": cuda when available, else cpu).
        checkpoint: the checkpoint a "checkpoint:..." model was exported from (torch backend, baseline).
        baseline: also measure the paper's way of running the same weights.
        baseline_model: take the baseline's weights from this model's metadata (e.g. the fp32 model an int8
            variant was made from); default: `model`.
        baseline_device: torch device of the baseline ("auto": the GPU when ours runs on one, else the CPU).
        pixel_spacing_mm: spacing for inputs that carry none (PNG/TIFF).
        raster_bits: significant bits of 16-bit PNG/TIFF inputs (None: the file's, else its maximum).
        cov_threshold: warn when a coefficient of variation exceeds this (0.10 = 10 %).
        command: the command line, recorded in the report.
        decoder, decode_threads: the pixel decoder of the pipelines (trt_mass.inputs.decoders.open_decoder).
        compare_decoders: also time the read + decode stage with every decoder available here
            (trt_mass.bench.decoders).
        triton_url, triton_model, triton_timeout_s: the server of backend "triton".
        all_views: run every view even when the model selects the views with tissue.
    """

    model: Path
    backend: str = "ort"
    inputs: Path | None = None
    synthetic: int | None = None
    synthetic_scale: float = 1.0
    seed: int = 0
    warmup: int = 1
    runs: int = 10
    threads: int | None = None
    device: str = "auto"
    checkpoint: Path | None = None
    baseline: bool = False
    baseline_model: Path | None = None
    baseline_device: str = "auto"
    pixel_spacing_mm: float | None = None
    raster_bits: int | None = None
    cov_threshold: float = 0.10
    command: str = ""
    decoder: str = "auto"
    decode_threads: int | None = None
    compare_decoders: bool = False
    triton_url: str | None = None
    triton_model: str = "trt_mass"
    triton_timeout_s: float = 30.0
    all_views: bool = False

    def __post_init__(self) -> None:
        if self.backend not in ALL_CHOICES:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {', '.join(ALL_CHOICES)}")
        if (self.inputs is None) == (self.synthetic is None):
            raise ConfigError("give either an input folder or a number of synthetic phantoms (not both)")
        if self.synthetic is not None and self.synthetic < 1:
            raise ConfigError("--synthetic needs at least 1 phantom")
        check_pixel_spacing(self.pixel_spacing_mm)
        if self.runs < 1 or self.warmup < 0:
            raise ConfigError("--runs must be at least 1 and --warmup at least 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.cov_threshold <= 0:
            raise ConfigError("the coefficient-of-variation threshold must be positive")
        if self.baseline_model is not None and not self.baseline:
            raise ConfigError("--baseline-model needs --baseline")


def model_facts(path: Path, metadata: ModelMetadata) -> dict[str, Any]:
    geometry = metadata.graph_spec.geometry
    return {
        "path": str(path),
        "file_sha256": file_sha256(path) if path.is_file() else None,
        "size_bytes": path.stat().st_size if path.is_file() else None,
        "kind": metadata.kind,
        "model_id": metadata.model_id,
        "weights_sha256": metadata.weights_sha256,
        "init": metadata.init,
        "precision": metadata.precision,
        "target": metadata.target,
        "quantization": metadata.quantization,
        "calibration_sha256": metadata.calibration_sha256,
        "model_spec": metadata.model_spec.to_dict(),
        "graph_spec": metadata.graph_spec.to_dict(),
        "geometry": {"tile_hw": [geometry.tile_h, geometry.tile_w], "grid": geometry.grid,
                     "canvas_hw": list(geometry.canvas_hw), "views": geometry.num_views},
    }


def engine_facts(model: Path, detector: Detector) -> dict[str, Any]:
    """The engine file the detector loaded, when it is not the model file itself."""
    engine = detector.choice.artifact
    if engine == model or not engine.is_file():
        return {}
    return {"engine_path": str(engine), "engine_sha256": file_sha256(engine)}


# ---------------------------------------------------------------------------------------------- pipelines

@dataclass
class _Timings:
    stages: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in STAGE_KEYS})
    end_to_end: list[float] = field(default_factory=list)
    detail: dict[str, list[float]] = field(default_factory=dict)
    findings: list[int] = field(default_factory=list)
    views: list[int] = field(default_factory=list)
    applicable: dict[str, bool] = field(default_factory=dict)


class _CudaMemory:
    """Peak torch CUDA allocations of one pipeline, with the other pipeline's resident tensors subtracted."""

    def __init__(self, device: Any, base: int | None = None) -> None:
        import torch

        self.torch, self.device = torch, device
        self.base = torch.cuda.memory_allocated(device) if base is None else base
        self.own = 0
        self.others = 0
        self.peak = 0

    def loaded(self) -> None:
        self.own = self.torch.cuda.memory_allocated(self.device) - self.base

    def before_call(self) -> None:
        self.others = self.torch.cuda.memory_allocated(self.device) - self.own
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def after_call(self) -> None:
        self.peak = max(self.peak, self.torch.cuda.max_memory_allocated(self.device) - self.others)


class _Pipeline:
    """One way of running the model (a Detector), timed stage by stage, its results written by the output step."""

    def __init__(self, name: str, label: str, detector: Detector, facts: dict[str, Any], out_dir: Path,
                 decoder: PixelDecoder) -> None:
        self.name, self.label, self.detector, self.decoder = name, label, detector, decoder
        self.facts = {**facts, "pixel_decoder": decoder.name, "pixel_decoder_reason": decoder.reason,
                      "decode_threads": decoder.threads}
        self.metadata = detector.metadata
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        self.writer = ResultWriter(folder, detector.metadata, detector.backend)
        self.timings = _Timings()
        self.cuda_memory: _CudaMemory | None = None
        self.device_memory_note = "no GPU in use"

    def close(self) -> None:
        self.detector.close()

    def process(self, path: Path, config: BenchConfig, record: bool) -> list[int]:
        """One mammogram from file to JSON result; returns the image's [H, W]."""
        if self.cuda_memory is not None:
            self.cuda_memory.before_call()  # bookkeeping outside the timed region
        started = time.perf_counter()
        mammogram = read_image(path, config.raster_bits, self.decoder)
        read_done = time.perf_counter()
        result = self.detector.detect_mammogram(mammogram, default_spacing_mm=config.pixel_spacing_mm,
                                                source=str(path))
        self.writer.write(path, mammogram, result, result_stem(mammogram, path), dict(result.timings_ms))
        done = time.perf_counter()
        if self.cuda_memory is not None:
            self.cuda_memory.after_call()
        if record:
            read_ms, rest_ms = 1000 * (read_done - started), 1000 * (done - read_done)
            # View selection is host work on the canvas: it counts in the canvas stage (and alone in "detail").
            select_ms = result.timings_ms.get("select_ms", 0.0)
            self._record(read_ms, result.timings_ms["canvas_ms"] + select_ms, result.timings_ms["infer_ms"], rest_ms,
                         len(result.findings))
            if self.metadata.graph_spec.selects_views:
                self.timings.detail.setdefault("view_selection", []).append(select_ms)
            self.timings.views.append(len(result.views))
        return [int(v) for v in mammogram.pixels.shape]

    def _record(self, read_ms: float, canvas_ms: float, engine_ms: float, after_read_ms: float, findings: int) -> None:
        """Stages from the timestamps; everything after the read that is not canvas or engine is post+write."""
        runner = self.detector.runner
        reported: dict[str, float] = dict(getattr(runner, "last_stage_ms", None) or {})
        h2d, d2h, network = reported.get("h2d"), reported.get("d2h"), reported.get("network")
        # The runner's own copy and network times are carved out of its wall time, so the stages partition the total.
        parts = {
            "read_decode": read_ms,
            "canvas": canvas_ms,
            "network": network,
            "h2d": h2d,
            "inference": engine_ms - (h2d or 0.0) - (d2h or 0.0) - (network or 0.0),
            "d2h": d2h,
            "postprocess_write": after_read_ms - canvas_ms - engine_ms,
        }
        for key, value in parts.items():
            self.timings.applicable.setdefault(key, value is not None)
            if value is not None:
                self.timings.stages[key].append(value)
        self.timings.end_to_end.append(read_ms + after_read_ms)
        detail = dict(getattr(runner, "last_detail_ms", None) or {})
        if self.name == "ours" and "inference" in reported and h2d is not None:
            detail["device_inference"] = reported["inference"]  # the runner's device time alone (CUDA events)
        for key, value in detail.items():
            self.timings.detail.setdefault(key, []).append(value)
        self.timings.findings.append(findings)

    def summary(self) -> dict[str, Any]:
        timings = self.timings
        geometry = self.metadata.graph_spec.geometry
        end_to_end = stats(timings.end_to_end)
        per_second = 1000.0 / end_to_end["mean"] if end_to_end["mean"] > 0 else 0.0
        views_per_mammogram = float(np.mean(timings.views)) if timings.views else float(geometry.num_views)
        return {
            "label": self.label,
            **self.facts,
            "precision": self.metadata.precision,
            "samples": len(timings.end_to_end),
            "stages": {key: self._stage_summary(key) for key in STAGE_KEYS},
            "end_to_end": {"stats": end_to_end, "samples_ms": [round(v, 3) for v in timings.end_to_end]},
            "detail": {key: {"stats": stats(values), "samples_ms": [round(v, 3) for v in values]}
                       for key, values in timings.detail.items()},
            "throughput": {"mammograms_per_s": per_second, "views_per_s": per_second * views_per_mammogram,
                           "views_per_mammogram": views_per_mammogram,
                           "basis": "1000 / mean end-to-end ms, one mammogram at a time"},
            "memory": self._memory_summary(),
            "findings_per_mammogram": list(timings.findings),
            "views_run_per_mammogram": list(timings.views),
        }

    def _stage_summary(self, key: str) -> dict[str, Any]:
        applicable = self.timings.applicable.get(key, key not in OPTIONAL_STAGES)
        samples = self.timings.stages[key]
        return {
            "applicable": applicable,
            "note": None if applicable else _not_applicable_note(self.facts, key),
            "stats": stats(samples) if applicable and samples else None,
            "samples_ms": [round(v, 3) for v in samples] if applicable else None,
        }

    def _memory_summary(self) -> dict[str, Any]:
        memory: dict[str, Any] = {"device_peak_mib": None, "device_note": self.device_memory_note}
        device_bytes = getattr(self.detector.runner, "device_memory_bytes", None)
        if self.cuda_memory is not None:
            memory["device_peak_mib"] = round(self.cuda_memory.peak / 2**20, 1)
        elif device_bytes is not None:
            memory["device_peak_mib"] = round(float(device_bytes) / 2**20, 1)
        return memory


def _not_applicable_note(facts: dict[str, Any], key: str) -> str:
    if key == "network":
        return f"no inference server: {facts.get('backend')} runs the model in this process"
    return (f"no separate host/device copy on {facts.get('backend')} ({facts.get('device')}): the input is read "
            "where it lies; any copy is inside 'inference'")


def _open_ours(config: BenchConfig, out_dir: Path) -> _Pipeline:
    detector = Detector(config.model, backend=config.backend, threads=config.threads, device=config.device,
                        checkpoint=config.checkpoint, triton_url=config.triton_url, triton_model=config.triton_model,
                        triton_timeout_s=config.triton_timeout_s, all_views=config.all_views)
    detector.open()
    runner = detector.runner
    facts: dict[str, Any] = {"backend": detector.backend, "backend_reason": detector.backend_reason}
    describe = getattr(runner, "describe", None)
    if callable(describe):
        facts.update(describe())
    facts.setdefault("device", "cuda" if detector.backend == "trt" else "cpu")
    if detector.backend == "ort":
        facts["threads"] = config.threads if config.threads is not None else "ONNX Runtime default (physical cores)"
        facts["providers"] = list(getattr(runner, "providers", ()))
    label = f"trt_mass engine graph ({detector.backend}, {detector.metadata.precision})"
    pipeline = _Pipeline("ours", label, detector, facts, out_dir, open_decoder(config.decoder, config.decode_threads))
    if str(facts["device"]).startswith("cuda") and detector.backend == "torch":
        pipeline.cuda_memory = _CudaMemory(facts["device"], base=0)  # ours is loaded first: all is its own
        pipeline.cuda_memory.loaded()
        pipeline.device_memory_note = "torch.cuda.max_memory_allocated during its own calls"
    elif detector.backend == "trt":
        pipeline.device_memory_note = ("the runner's device_memory_bytes" if
                                       getattr(runner, "device_memory_bytes", None) is not None else
                                       "not reported by the runner; see memory.gpu_process_used_mib")
    return pipeline


def _baseline_metadata(config: BenchConfig, ours: _Pipeline) -> ModelMetadata:
    """The metadata whose weights the baseline runs: refused unless it computes what ours computes."""
    from trt_mass.runners.torch_ref import read_metadata

    source = config.baseline_model or config.model
    metadata = read_metadata(config.baseline_model) if config.baseline_model else ours.metadata
    ours_spec, baseline_spec = ours.metadata.graph_spec.to_dict(), metadata.graph_spec.to_dict()
    for how_not_what in ("canvas_dtype", "view_selection", "tissue_floor", "tissue_min_fraction",
                          "tissue_cover"):
        ours_spec.pop(how_not_what)
        baseline_spec.pop(how_not_what)
    if ours_spec != baseline_spec:
        raise ConfigError(f"{source} has other tiles or thresholds than {config.model}: the baseline must compute "
                          "the same views and findings")
    if metadata.weights_sha256 != ours.metadata.weights_sha256:
        raise ConfigError(f"{source} has other weights (sha256 {metadata.weights_sha256[:12]}…) than {config.model} "
                          f"({ours.metadata.weights_sha256[:12]}…): the baseline must run the same weights")
    return metadata


def _uint16_canvas(metadata: ModelMetadata) -> ModelMetadata:
    """The paper's way reads the image as it is, a uint16 canvas (whatever ours takes: int32 for TensorRT), and
    runs every view (whatever ours selects)."""
    inputs = tuple(dataclasses.replace(t, dtype="uint16") for t in metadata.inputs if t.name == "canvas")
    return dataclasses.replace(metadata, inputs=inputs, graph_spec=dataclasses.replace(
        metadata.graph_spec, canvas_dtype="uint16", view_selection="all"))


def _open_baseline(config: BenchConfig, ours: _Pipeline, out_dir: Path) -> _Pipeline:
    try:
        from trt_mass.bench.baseline import EagerBaseline
        from trt_mass.runners.torch_ref import resolve_device
    except ImportError as error:
        raise BackendUnavailableError(f"--baseline needs torch and torchvision ({error}); "
                                      "pip install 'trt_mass[train]'") from error
    source = config.baseline_model or config.model
    metadata = _uint16_canvas(_baseline_metadata(config, ours))
    device = config.baseline_device
    if device == "auto":
        device = "cuda" if str(ours.facts.get("device", "cpu")).startswith("cuda") else "cpu"
    torch_device = resolve_device(device)
    probe = _CudaMemory(torch_device) if torch_device.type == "cuda" else None
    baseline = EagerBaseline.from_metadata(metadata, config.checkpoint, str(torch_device), config.threads,
                                           str(source))
    detector = Detector.from_runner(baseline, source, "the paper's way of running the same weights (--baseline)")
    detector.open()
    facts = {"backend": baseline.backend, **baseline.describe(),
             "weights_from": str(source), "weights_sha256": metadata.weights_sha256}
    label = "paper's way: PyTorch eager, 26 views one after another, per-view decode/NMS, merge in Python"
    pipeline = _Pipeline("baseline", label, detector, facts, out_dir, ours.decoder)
    if probe is not None:
        probe.loaded()
        pipeline.cuda_memory = probe
        pipeline.device_memory_note = "torch.cuda.max_memory_allocated during its own calls"
    return pipeline


# ---------------------------------------------------------------------------------------------- the run

def _prepare_inputs(config: BenchConfig, folder: Path) -> tuple[list[Path], dict[str, Any]]:
    if config.inputs is not None:
        if not config.inputs.is_dir():
            raise ConfigError(f"{config.inputs}: not a folder")
        files = collect_inputs([config.inputs])
        if not files:
            raise ConfigError(f"{config.inputs}: no DICOM, PNG or TIFF files")
        return files, {"source": "dir", "path": str(config.inputs), "files": [str(p) for p in files]}
    from trt_mass.datasets.synth import write_phantoms

    assert config.synthetic is not None
    # In a child process, so that making full-size phantoms does not count in this process's peak memory.
    import multiprocessing

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        files = pool.submit(write_phantoms, folder, config.synthetic, config.seed,
                            scale=config.synthetic_scale).result()
    return list(files), {"source": "synthetic", "count": config.synthetic, "scale": config.synthetic_scale,
                         "seed": config.seed, "files": [p.name for p in files]}


class _Progress:
    """Counts the mammograms of the run for a progress callback."""

    def __init__(self, total: int, callback: ProgressFn | None) -> None:
        self.total, self.callback, self.done = total, callback, 0

    def step(self, what: str) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total, what)


def run_bench(config: BenchConfig, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Benchmark the pipeline (and, with config.baseline, the paper's way) and return the report.

    The report's schema is in trt_mass.bench.report.
    """
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_at_start = load_average()
    counter = _Progress((config.warmup + config.runs) * (2 if config.baseline else 1), progress)
    with tempfile.TemporaryDirectory(prefix="trtmass-bench-") as tmp:
        files, inputs_info = _prepare_inputs(config, Path(tmp) / "inputs")
        pipelines: list[_Pipeline] = []
        try:
            rss_before_baseline, images_hw = _timed_rounds(config, files, Path(tmp) / "results", pipelines, counter)
            summaries = {pipeline.name: pipeline.summary() for pipeline in pipelines}
            decoders = (compare_decoders(files, config.runs, config.raster_bits, config.decode_threads)
                        if config.compare_decoders else None)
        finally:
            for pipeline in pipelines:
                pipeline.close()
    inputs_info["images_hw"] = images_hw
    ours = pipelines[0]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": created,
        "command": config.command,
        "machine": {**machine_facts(), "load_average_at_start": load_at_start},
        "model": {**model_facts(config.model, ours.metadata), **engine_facts(config.model, ours.detector)},
        "settings": _settings(config, inputs_info),
        "stage_definitions": {key: definition for key, _, definition in STAGES},
        "pipelines": summaries,
        "memory": {"peak_rss_mib": peak_rss_mib(), "peak_rss_mib_before_baseline": rss_before_baseline,
                   "gpu_process_used_mib": gpu_process_used_mib()},
        "ratios": baseline_ratios(summaries["ours"], summaries["baseline"]) if config.baseline else None,
        "decoders": decoders,
    }
    report["warnings"] = warnings_of(report)
    return report


def _timed_rounds(config: BenchConfig, files: list[Path], out_dir: Path, pipelines: list[_Pipeline],
                  counter: _Progress) -> tuple[float | None, dict[str, list[int]]]:
    """Open the pipelines into `pipelines` (the caller closes them), warm them up, run the timed rounds.

    Returns (peak RSS before the baseline was loaded, {file name: image [H, W]}).
    """
    ours = _open_ours(config, out_dir)
    pipelines.append(ours)
    _warm_up(ours, config, files, counter)
    rss_before_baseline = None
    if config.baseline:
        rss_before_baseline = peak_rss_mib()
        baseline = _open_baseline(config, ours, out_dir)
        pipelines.append(baseline)
        _warm_up(baseline, config, files, counter)
    images_hw: dict[str, list[int]] = {}
    for index in range(config.runs):
        path = files[index % len(files)]
        order = pipelines if index % 2 == 0 else pipelines[::-1]
        for position, pipeline in enumerate(order):
            if position:
                time.sleep(SETTLE_S)
            images_hw[path.name] = pipeline.process(path, config, record=True)
            counter.step(f"{pipeline.name} {index + 1}/{config.runs}")
    return rss_before_baseline, images_hw


def _warm_up(pipeline: _Pipeline, config: BenchConfig, files: list[Path], counter: _Progress) -> None:
    for index in range(config.warmup):
        pipeline.process(files[index % len(files)], config, record=False)
        counter.step(f"warm-up ({pipeline.name})")


def _settings(config: BenchConfig, inputs_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "backend": config.backend, "runs": config.runs, "warmup": config.warmup, "threads": config.threads,
        "device": config.device, "baseline": config.baseline,
        "baseline_model": None if config.baseline_model is None else str(config.baseline_model),
        "baseline_device": config.baseline_device, "cov_threshold": config.cov_threshold,
        "pixel_spacing_mm": config.pixel_spacing_mm, "raster_bits": config.raster_bits, "inputs": inputs_info,
        "decoder": config.decoder, "decode_threads": config.decode_threads, "compare_decoders": config.compare_decoders,
    }
