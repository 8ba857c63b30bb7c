"""`trtmass bench`: latency of the whole mammogram pipeline, stage by stage, with the machine it ran on.

Each timed mammogram goes through the same steps as `trtmass detect`, with contiguous timestamps:

    read_decode        the file read from disk and decoded to the uint16 image (trt_mass.inputs.read_image)
    canvas             letterbox into the model's preallocated canvas (CanvasBuilder.fill)
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

Report schema ("trt_mass.bench/1"; JSON, every time in ms):

    schema, created (UTC ISO), command
    machine     cpu_model, logical_cores, physical_cores, usable_cores, memory_total_mib, gpus [{name,
                driver, memory_total_mib, compute_capability}] (nvidia-smi; [] without), load_average_at_start
                and load_average (end) [1, 5, 15 min], python, platform,
                versions {package: version} (onnxruntime, tensorrt, torch, numpy, ...; absent = not installed)
    model       path, file_sha256, size_bytes, kind, model_id, weights_sha256, init, precision, target,
                quantization, calibration_sha256, model_spec, graph_spec (geometry + thresholds),
                geometry {tile_hw, grid, canvas_hw, views}; engine_path, engine_sha256 (TensorRT, when the
                runner loaded an engine other than the model file)
    settings    backend (asked), runs, warmup, threads, device, baseline, cov_threshold,
                inputs {source: "dir"|"synthetic", path | count+scale+seed, files, images_hw}
    stage_definitions  {stage: what it times}
    pipelines   {"ours": P, "baseline": P (only with --baseline)}, P =
                label, backend, device, precision, threads, samples (timed mammograms),
                stages {stage: {applicable: bool, note: str | null, stats: S | null, samples_ms: [..] | null}}
                    -- a stage that does not exist on a backend (no host/device copy on ONNX Runtime's CPU
                       provider or torch on the CPU) is "applicable": false with null stats, never a fake 0
                end_to_end {stats: S, samples_ms}, detail {name: {stats: S, samples_ms}} (parts of the
                inference a pipeline reports: the baseline's network / decode_nms / merge; a GPU runner's
                device_inference, the device time alone, without host-side overhead),
                throughput {mammograms_per_s, views_per_s, views_per_mammogram, basis},
                memory {device_peak_mib | null, device_note}, findings_per_mammogram [..]
                S = {count, min, median, mean, p90, p95, p99, max, std, cov} (percentiles: linear
                interpolation between samples; cov = sample std / mean)
    memory      peak_rss_mib (process, whole run), peak_rss_mib_before_baseline (ours loaded and warmed
                up, before anything of the baseline was loaded; null without --baseline),
                gpu_process_used_mib (nvidia-smi, this process, end of run; null without a GPU)
    ratios      null without --baseline, else {definition, stages {stage: ratio | null}, end_to_end}
                ratio = ours median / baseline median (below 1: ours is faster)
    warnings    [str] (coefficient of variation above the threshold, findings that differ, ...)
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.errors import BackendUnavailableError, ConfigError
from trt_mass.geometry import CanvasBuilder, findings_from_canvas
from trt_mass.inputs.files import collect_inputs, read_image
from trt_mass.metadata import ModelMetadata, file_sha256
from trt_mass.outputs.overlay import write_json

SCHEMA = "trt_mass.bench/1"
STAGES: tuple[tuple[str, str, str], ...] = (
    ("read_decode", "read + decode", "read the file and decode it to the uint16 image (DICOM: modality/VOI/inversion)"),
    ("canvas", "canvas", "letterbox the image into the model's preallocated canvas"),
    ("h2d", "host to device", "copy the canvas to the GPU (GPU backends only)"),
    ("inference", "inference", "the engine graph: 26 views, network, fp32 decode, per-view NMS, cross-view merge "
                               "(and the runner's host-side overhead)"),
    ("d2h", "device to host", "copy the outputs back from the GPU (GPU backends only)"),
    ("postprocess_write", "post-processing + writing", "canvas boxes to findings in original pixels, area filter, "
                                                       "JSON result written and fsync'd"),
)
STAGE_KEYS = tuple(key for key, _, _ in STAGES)
STAGE_LABELS = {key: label for key, label, _ in STAGES}
BACKEND_CHOICES = ("ort", "trt", "torch", "auto")
VERSION_PACKAGES = ("trt_mass", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu13", "tensorrt-cu12",
                    "cuda-python", "torch", "torchvision", "onnx", "numpy", "pydicom", "pillow")

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
        cov_threshold: warn when a coefficient of variation exceeds this (0.10 = 10 %).
        command: the command line, recorded in the report.
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
    cov_threshold: float = 0.10
    command: str = ""

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
        if (self.inputs is None) == (self.synthetic is None):
            raise ConfigError("give either an input folder or a number of synthetic phantoms (not both)")
        if self.synthetic is not None and self.synthetic < 1:
            raise ConfigError("--synthetic needs at least 1 phantom")
        if self.runs < 1 or self.warmup < 0:
            raise ConfigError("--runs must be at least 1 and --warmup at least 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.cov_threshold <= 0:
            raise ConfigError("the coefficient-of-variation threshold must be positive")
        if self.baseline_model is not None and not self.baseline:
            raise ConfigError("--baseline-model needs --baseline")


# ---------------------------------------------------------------------------------------------- statistics

def stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """min/median/mean/p90/p95/p99/max/std/cov of a list of times (ms); percentiles interpolate linearly."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no samples")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    p90, p95, p99 = (float(v) for v in np.percentile(values, [90, 95, 99]))
    return {
        "count": int(values.size), "min": float(values.min()), "median": float(np.median(values)), "mean": mean,
        "p90": p90, "p95": p95, "p99": p99, "max": float(values.max()), "std": std,
        "cov": std / mean if mean > 0 else 0.0,
    }


# ---------------------------------------------------------------------------------------------- machine facts

def _cpuinfo() -> tuple[str, int | None]:
    model, cores = platform.processor() or platform.machine(), set()
    try:
        physical = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model in ("", platform.processor(), platform.machine()):
                model = value
            elif key == "physical id":
                physical = value
            elif key == "core id":
                cores.add((physical, value))
    except OSError:
        pass
    return model, (len(cores) or None)


def _memory_total_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _nvidia_smi(*query: str) -> list[list[str]]:
    """Rows of `nvidia-smi --query-...=... --format=csv,noheader,nounits`; [] without a GPU or driver."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        result = subprocess.run([binary, *query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return [[cell.strip() for cell in line.split(",")] for line in result.stdout.splitlines() if line.strip()]


def gpu_facts() -> list[dict[str, Any]]:
    gpus = []
    for row in _nvidia_smi("--query-gpu=name,driver_version,memory.total,compute_cap"):
        if len(row) >= 4:
            gpus.append({"name": row[0], "driver": row[1], "memory_total_mib": _number(row[2]),
                         "compute_capability": row[3]})
    return gpus


def _gpu_process_used_mib() -> float | None:
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory")
    used = [_number(row[1]) for row in rows if len(row) >= 2 and row[0] == str(os.getpid())]
    numbers = [u for u in used if u is not None]
    return sum(numbers) if numbers else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def package_versions() -> dict[str, str]:
    """Installed versions (read from package metadata: nothing is imported)."""
    found = {}
    for name in VERSION_PACKAGES:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_facts() -> dict[str, Any]:
    """CPU, cores, memory, GPUs and driver, load average now, Python, package versions."""
    cpu_model, physical = _cpuinfo()
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable,
        "memory_total_mib": _memory_total_mib(),
        "gpus": gpu_facts(),
        "load_average": _load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
    }


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


def engine_facts(model: Path, runner: Any) -> dict[str, Any]:
    """The engine file a TensorRT runner loaded, when it is not the model file itself."""
    engine = getattr(runner, "engine_path", None)
    if engine is None or Path(engine) == model or not Path(engine).is_file():
        return {}
    return {"engine_path": str(engine), "engine_sha256": file_sha256(engine)}


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


# ---------------------------------------------------------------------------------------------- pipelines

@dataclass
class _Timings:
    stages: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in STAGE_KEYS})
    end_to_end: list[float] = field(default_factory=list)
    detail: dict[str, list[float]] = field(default_factory=dict)
    findings: list[int] = field(default_factory=list)
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
    """One way of running the model on a canvas, timed stage by stage."""

    def __init__(self, name: str, label: str, metadata: ModelMetadata, canvas_dtype: str,
                 engine: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], reporter: Any,
                 facts: dict[str, Any], close: Callable[[], None]) -> None:
        self.name, self.label, self.metadata = name, label, metadata
        self.canvas = CanvasBuilder(metadata.graph_spec.geometry, canvas_dtype)
        self.engine, self.reporter, self.facts, self.close = engine, reporter, facts, close
        self.timings = _Timings()
        self.cuda_memory: _CudaMemory | None = None
        self.device_memory_note = "no GPU in use"

    def process(self, path: Path, out_dir: Path, spacing_default: float | None, record: bool) -> list[int]:
        """One mammogram from file to JSON result; returns the image's [H, W]."""
        spec = self.metadata.graph_spec
        if self.cuda_memory is not None:
            self.cuda_memory.before_call()  # bookkeeping outside the timed region
        started = time.perf_counter()
        mammogram = read_image(path)
        read_done = time.perf_counter()
        letterbox = self.canvas.fill(mammogram.pixels, str(path))
        canvas_done = time.perf_counter()
        boxes, scores = self.engine(self.canvas.canvas)
        engine_done = time.perf_counter()
        spacing = mammogram.pixel_spacing_mm
        if spacing is None and spacing_default is not None:
            spacing = (spacing_default, spacing_default)
        findings = findings_from_canvas(boxes, scores, letterbox, pixel_spacing_mm=spacing,
                                        min_area_mm2=spec.min_area_mm2, min_area_canvas_px=spec.min_area_canvas_px)
        result = {
            "image": mammogram.describe(),
            "coordinates": "original pixels, xyxy",
            "findings": [f.to_dict() for f in findings],
            "model": {"model_id": self.metadata.model_id, "weights_sha256": self.metadata.weights_sha256,
                      "precision": self.metadata.precision, "pipeline": self.label},
        }
        write_json(out_dir / f"{self.name}-{Path(path).stem}.json", result)
        done = time.perf_counter()
        if self.cuda_memory is not None:
            self.cuda_memory.after_call()
        if record:
            self._record((started, read_done, canvas_done, engine_done, done), len(findings))
        return [int(v) for v in mammogram.pixels.shape]

    def _record(self, marks: tuple[float, float, float, float, float], findings: int) -> None:
        started, read_done, canvas_done, engine_done, done = marks
        reported: dict[str, float] = dict(getattr(self.reporter, "last_stage_ms", None) or {})
        h2d, d2h = reported.get("h2d"), reported.get("d2h")
        # The runner's own copy times are carved out of its wall time, so the stages partition the total.
        parts = {
            "read_decode": 1000 * (read_done - started),
            "canvas": 1000 * (canvas_done - read_done),
            "h2d": h2d,
            "inference": 1000 * (engine_done - canvas_done) - (h2d or 0.0) - (d2h or 0.0),
            "d2h": d2h,
            "postprocess_write": 1000 * (done - engine_done),
        }
        for key, value in parts.items():
            self.timings.applicable.setdefault(key, value is not None)
            if value is not None:
                self.timings.stages[key].append(value)
        self.timings.end_to_end.append(1000 * (done - started))
        detail = dict(getattr(self.reporter, "last_detail_ms", None) or {})
        if self.name == "ours" and "inference" in reported and h2d is not None:
            detail["device_inference"] = reported["inference"]  # the runner's device time alone (CUDA events)
        for key, value in detail.items():
            self.timings.detail.setdefault(key, []).append(value)
        self.timings.findings.append(findings)

    def summary(self) -> dict[str, Any]:
        timings = self.timings
        geometry = self.metadata.graph_spec.geometry
        stages = {}
        for key in STAGE_KEYS:
            applicable = timings.applicable.get(key, key not in ("h2d", "d2h"))
            samples = timings.stages[key]
            stages[key] = {
                "applicable": applicable,
                "note": None if applicable else _not_applicable_note(self.facts),
                "stats": stats(samples) if applicable and samples else None,
                "samples_ms": [round(v, 3) for v in samples] if applicable else None,
            }
        end_to_end = stats(timings.end_to_end)
        per_second = 1000.0 / end_to_end["mean"] if end_to_end["mean"] > 0 else 0.0
        memory: dict[str, Any] = {"device_peak_mib": None, "device_note": self.device_memory_note}
        if self.cuda_memory is not None:
            memory["device_peak_mib"] = round(self.cuda_memory.peak / 2**20, 1)
        elif getattr(self.reporter, "device_memory_bytes", None) is not None:
            memory["device_peak_mib"] = round(float(self.reporter.device_memory_bytes) / 2**20, 1)
        return {
            "label": self.label,
            **self.facts,
            "precision": self.metadata.precision,
            "samples": len(timings.end_to_end),
            "stages": stages,
            "end_to_end": {"stats": end_to_end, "samples_ms": [round(v, 3) for v in timings.end_to_end]},
            "detail": {key: {"stats": stats(values), "samples_ms": [round(v, 3) for v in values]}
                       for key, values in timings.detail.items()},
            "throughput": {"mammograms_per_s": per_second, "views_per_s": per_second * geometry.num_views,
                           "views_per_mammogram": geometry.num_views,
                           "basis": "1000 / mean end-to-end ms, one mammogram at a time"},
            "memory": memory,
            "findings_per_mammogram": list(timings.findings),
        }


def _not_applicable_note(facts: dict[str, Any]) -> str:
    return (f"no separate host/device copy on {facts.get('backend')} ({facts.get('device')}): the input is read "
            "where it lies; any copy is inside 'inference'")


def _open_ours(config: BenchConfig) -> _Pipeline:
    from trt_mass.runners import make_runner

    options: dict[str, Any] = {}
    if config.backend in ("ort", "auto") and config.threads is not None:
        options["threads"] = config.threads
    if config.backend == "torch":
        options.update(threads=config.threads, device=config.device, checkpoint=config.checkpoint)
    runner = make_runner(config.backend, config.model, **options)
    runner.activate()
    metadata = runner.metadata
    if metadata.kind != "engine_graph":
        runner.deactivate()
        raise ConfigError(f"{config.model}: a {metadata.kind} export; bench needs the engine graph")
    facts: dict[str, Any] = {"backend": runner.backend}
    describe = getattr(runner, "describe", None)
    if callable(describe):
        facts.update(describe())
    facts.setdefault("device", "cuda" if runner.backend == "trt" else "cpu")
    if runner.backend == "ort":
        facts["threads"] = config.threads if config.threads is not None else "ONNX Runtime default (physical cores)"
        facts["providers"] = list(getattr(runner, "providers", ()))
    output_names = [t.name for t in metadata.outputs]

    def engine(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = runner.infer({"canvas": canvas})
        return outputs[output_names[0]], outputs[output_names[1]]

    label = f"trt_mass engine graph ({runner.backend}, {metadata.precision})"
    pipeline = _Pipeline("ours", label, metadata, metadata.graph_spec.canvas_dtype, engine, runner, facts,
                         runner.deactivate)
    if str(facts["device"]).startswith("cuda") and runner.backend == "torch":
        pipeline.cuda_memory = _CudaMemory(facts["device"], base=0)  # ours is loaded first: all is its own
        pipeline.cuda_memory.loaded()
        pipeline.device_memory_note = "torch.cuda.max_memory_allocated during its own calls"
    elif runner.backend == "trt":
        pipeline.device_memory_note = ("the runner's device_memory_bytes" if
                                       getattr(runner, "device_memory_bytes", None) is not None else
                                       "not reported by the runner; see memory.gpu_process_used_mib")
    return pipeline


def _open_baseline(config: BenchConfig, ours: _Pipeline) -> _Pipeline:
    try:
        from trt_mass.bench.baseline import EagerBaseline
        from trt_mass.runners.torch_ref import read_metadata, resolve_device
    except ImportError as error:
        raise BackendUnavailableError(f"--baseline needs torch and torchvision ({error}); "
                                      "pip install 'trt_mass[train]'") from error
    source = config.baseline_model or config.model
    metadata = read_metadata(config.baseline_model) if config.baseline_model else ours.metadata
    ours_spec, baseline_spec = ours.metadata.graph_spec.to_dict(), metadata.graph_spec.to_dict()
    ours_spec.pop("canvas_dtype")
    baseline_spec.pop("canvas_dtype")
    if ours_spec != baseline_spec:
        raise ConfigError(f"{source} has other tiles or thresholds than {config.model}: the baseline must compute "
                          "the same views and findings")
    if metadata.weights_sha256 != ours.metadata.weights_sha256:
        raise ConfigError(f"{source} has other weights (sha256 {metadata.weights_sha256[:12]}…) than {config.model} "
                          f"({ours.metadata.weights_sha256[:12]}…): the baseline must run the same weights")
    device = config.baseline_device
    if device == "auto":
        device = "cuda" if str(ours.facts.get("device", "cpu")).startswith("cuda") else "cpu"
    torch_device = resolve_device(device)
    probe = _CudaMemory(torch_device) if torch_device.type == "cuda" else None
    baseline = EagerBaseline.from_metadata(metadata, config.checkpoint, str(torch_device), config.threads,
                                           str(source))
    facts = {"backend": "torch-eager", **baseline.describe(),
             "weights_from": str(source), "weights_sha256": metadata.weights_sha256}
    label = "paper's way: PyTorch eager, 26 views one after another, per-view decode/NMS, merge in Python"
    pipeline = _Pipeline("baseline", label, metadata, "uint16", baseline.infer, baseline, facts, lambda: None)
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
    from trt_mass.datasets.labelled.synth import write_phantoms

    assert config.synthetic is not None
    # In a child process, so that making full-size phantoms does not count in this process's peak memory.
    import multiprocessing

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        files = pool.submit(write_phantoms, folder, config.synthetic, config.seed,
                            scale=config.synthetic_scale).result()
    return list(files), {"source": "synthetic", "count": config.synthetic, "scale": config.synthetic_scale,
                         "seed": config.seed, "files": [p.name for p in files]}


def run_bench(config: BenchConfig, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Benchmark the pipeline (and, with config.baseline, the paper's way) and return the report (schema above)."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_at_start = _load_average()
    per_pipeline = (config.warmup + config.runs)
    total = per_pipeline * (2 if config.baseline else 1)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, what)

    with tempfile.TemporaryDirectory(prefix="trtmass-bench-") as tmp:
        files, inputs_info = _prepare_inputs(config, Path(tmp) / "inputs")
        out_dir = Path(tmp) / "results"
        out_dir.mkdir()
        pipelines: list[_Pipeline] = []
        try:
            ours = _open_ours(config)
            pipelines.append(ours)
            for index in range(config.warmup):
                ours.process(files[index % len(files)], out_dir, config.pixel_spacing_mm, record=False)
                step("warm-up (ours)")
            rss_before_baseline = None
            if config.baseline:
                rss_before_baseline = _peak_rss_mib()
                baseline = _open_baseline(config, ours)
                pipelines.append(baseline)
                for index in range(config.warmup):
                    baseline.process(files[index % len(files)], out_dir, config.pixel_spacing_mm, record=False)
                    step("warm-up (baseline)")
            images_hw: dict[str, list[int]] = {}
            for index in range(config.runs):
                path = files[index % len(files)]
                order = pipelines if index % 2 == 0 else pipelines[::-1]
                for position, pipeline in enumerate(order):
                    if position:
                        time.sleep(SETTLE_S)
                    images_hw[path.name] = pipeline.process(path, out_dir, config.pixel_spacing_mm, record=True)
                    step(f"{pipeline.name} {index + 1}/{config.runs}")
            summaries = {pipeline.name: pipeline.summary() for pipeline in pipelines}
        finally:
            for pipeline in pipelines:
                pipeline.close()
    inputs_info["images_hw"] = images_hw
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": created,
        "command": config.command,
        "machine": {**machine_facts(), "load_average_at_start": load_at_start},
        "model": {**model_facts(config.model, ours.metadata), **engine_facts(config.model, ours.reporter)},
        "settings": {
            "backend": config.backend, "runs": config.runs, "warmup": config.warmup, "threads": config.threads,
            "device": config.device, "baseline": config.baseline,
            "baseline_model": None if config.baseline_model is None else str(config.baseline_model),
            "baseline_device": config.baseline_device, "cov_threshold": config.cov_threshold,
            "pixel_spacing_mm": config.pixel_spacing_mm, "inputs": inputs_info,
        },
        "stage_definitions": {key: definition for key, _, definition in STAGES},
        "pipelines": summaries,
        "memory": {"peak_rss_mib": _peak_rss_mib(), "peak_rss_mib_before_baseline": rss_before_baseline,
                   "gpu_process_used_mib": _gpu_process_used_mib()},
        "ratios": baseline_ratios(summaries["ours"], summaries["baseline"]) if config.baseline else None,
    }
    report["warnings"] = warnings_of(report)
    return report


def baseline_ratios(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """ours median / baseline median, for every stage both pipelines have and for the end-to-end time."""
    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        if a is None or b is None or b["median"] <= 0:
            return None
        return float(a["median"] / b["median"])

    return {
        "definition": "ours median / baseline median (below 1: ours is faster)",
        "stages": {key: ratio(ours["stages"][key]["stats"], baseline["stages"][key]["stats"]) for key in STAGE_KEYS},
        "end_to_end": ratio(ours["end_to_end"]["stats"], baseline["end_to_end"]["stats"]),
    }


def warnings_of(report: dict[str, Any]) -> list[str]:
    """Noisy-machine (coefficient of variation) and consistency warnings, as trtexec gives them."""
    threshold = report["settings"]["cov_threshold"]
    warnings = []
    machine = report["machine"]
    load, cores = machine.get("load_average_at_start"), machine.get("usable_cores") or 1
    if load is not None and load[0] >= cores:
        warnings.append(f"the machine was busy when the benchmark started (1-minute load average {load[0]} on "
                        f"{cores} usable cores): other work competes for the CPU")
    for name, pipeline in report["pipelines"].items():
        measured = [("end-to-end", pipeline["end_to_end"]["stats"]),
                    ("inference", pipeline["stages"]["inference"]["stats"])]
        for what, figures in measured:
            if figures is not None and figures["count"] > 1 and figures["cov"] > threshold:
                hint = (" (differing input files add to this: codec, size)" if what == "end-to-end" else "")
                warnings.append(
                    f"{name}: {what} time is unstable, coefficient of variation {100 * figures['cov']:.1f} % > "
                    f"{100 * threshold:.0f} %{hint}: the machine is noisy (other processes, CPU frequency scaling, "
                    "thermal throttling); close other work, pin clocks or use more --runs")
    if "baseline" in report["pipelines"]:
        ours = report["pipelines"]["ours"]["findings_per_mammogram"]
        theirs = report["pipelines"]["baseline"]["findings_per_mammogram"]
        differing = sum(a != b for a, b in zip(ours, theirs, strict=True))
        if differing:
            why = ("expected: the baseline runs the fp32 weights" if report["pipelines"]["ours"]["precision"] != "fp32"
                   else "ties or rounding near a threshold")
            warnings.append(f"ours and the baseline found different numbers of masses on {differing} of {len(ours)} "
                            f"timed mammograms ({why})")
    if report["settings"]["runs"] < 20:
        warnings.append(f"only {report['settings']['runs']} timed runs: p90/p95/p99 are interpolated from few "
                        "samples (use --runs 100 or more for tail latencies)")
    return warnings


# ---------------------------------------------------------------------------------------------- output

def write_report_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 1000 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _machine_line(machine: dict[str, Any]) -> str:
    gpus = ", ".join(f"{g['name']} (driver {g['driver']})" for g in machine["gpus"]) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return (f"{machine['cpu_model']}, {machine['logical_cores']} logical / {machine['physical_cores'] or '?'} physical "
            f"cores ({machine['usable_cores']} usable), {machine['memory_total_mib']} MiB; {gpus}; "
            f"Python {machine['python']}; {versions}")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short plain-text summary (stage medians, ratio, throughput, memory, warnings) for the terminal."""
    model, pipelines = report["model"], report["pipelines"]
    ours, baseline = pipelines["ours"], pipelines.get("baseline")
    geometry = model["geometry"]
    lines = [
        f"model {model['model_id']} ({model['precision']}, target {model['target']}), tile "
        f"{geometry['tile_hw'][0]}x{geometry['tile_hw'][1]}, grid {geometry['grid']}, {geometry['views']} views; "
        f"{ours['backend']} on {ours['device']}; {ours['samples']} timed mammograms",
        f"machine: {_machine_line(report['machine'])}",
    ]
    header = f"{'stage (median ms)':<28}{'ours':>12}"
    if baseline is not None:
        header += f"{'baseline':>12}{'ratio':>9}"
    lines.append(header)
    rows = [(STAGE_LABELS[key], ours["stages"][key]["stats"], baseline and baseline["stages"][key]["stats"],
             report["ratios"] and report["ratios"]["stages"][key]) for key in STAGE_KEYS]
    rows.append(("end to end", ours["end_to_end"]["stats"], baseline and baseline["end_to_end"]["stats"],
                 report["ratios"] and report["ratios"]["end_to_end"]))
    for label, mine, theirs, ratio in rows:
        line = f"{label:<28}{_ms(mine and mine['median']):>12}"
        if baseline is not None:
            line += f"{_ms(theirs and theirs['median']):>12}{'n/a' if ratio is None else f'{ratio:.3f}':>9}"
        lines.append(line)
    e2e = ours["end_to_end"]["stats"]
    lines.append(f"ours end to end: min {_ms(e2e['min'])}, mean {_ms(e2e['mean'])}, p90 {_ms(e2e['p90'])}, p99 "
                 f"{_ms(e2e['p99'])}, max {_ms(e2e['max'])} ms; {ours['throughput']['mammograms_per_s']:.3f} "
                 f"mammograms/s, {ours['throughput']['views_per_s']:.2f} views/s")
    memory = report["memory"]
    device = ours["memory"]["device_peak_mib"]
    lines.append(f"peak RSS {memory['peak_rss_mib']} MiB" +
                 (f" (ours alone: {memory['peak_rss_mib_before_baseline']} MiB)" if baseline is not None else "") +
                 (f"; device memory (ours) {device} MiB" if device is not None else ""))
    lines.extend(f"warning: {w}" for w in report["warnings"])
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, model, inputs, per-stage statistics, ratios, throughput, warnings."""
    model, machine, settings = report["model"], report["machine"], report["settings"]
    geometry, pipelines = model["geometry"], report["pipelines"]
    inputs = settings["inputs"]
    source = (f"{inputs['count']} synthetic phantoms (scale {inputs['scale']}, seed {inputs['seed']})"
              if inputs["source"] == "synthetic" else f"{len(inputs['files'])} files from {inputs['path']}")
    thresholds = {k: v for k, v in model["graph_spec"].items() if k != "geometry"}
    gpus = "; ".join(f"{g['name']}, driver {g['driver']}, {g['memory_total_mib']} MiB, compute capability "
                     f"{g['compute_capability']}" for g in machine["gpus"]) or "none"
    out = [
        f"# trtmass bench: {model['model_id']}",
        "",
        f"Created {report['created']}" + (f" by `{report['command']}`" if report["command"] else "") + ".",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}; {machine['logical_cores']} logical, {machine['physical_cores'] or '?'} "
        f"physical, {machine['usable_cores']} usable cores; {machine['memory_total_mib']} MiB memory",
        f"- GPU: {gpus}",
        f"- Python {machine['python']} on {machine['platform']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        "",
        "## Model",
        "",
        f"- `{model['path']}`: {model['model_id']}, precision {model['precision']}, target {model['target']}, "
        f"init `{model['init']}`",
        f"- weights sha256 `{model['weights_sha256']}`; file sha256 `{model['file_sha256']}`",
        f"- {model['model_spec']['arch']}, head width {model['model_spec']['head_width']}; tile "
        f"{geometry['tile_hw'][0]} x {geometry['tile_hw'][1]}, grid {geometry['grid']}, canvas "
        f"{geometry['canvas_hw'][0]} x {geometry['canvas_hw'][1]}, {geometry['views']} views",
        "- thresholds: " + ", ".join(f"{k} {v}" for k, v in thresholds.items()),
        "",
        "## Run",
        "",
        f"- inputs: {source}; {settings['warmup']} warm-up (excluded) and {settings['runs']} timed mammograms per "
        "pipeline" + (", interleaved, order alternating" if "baseline" in pipelines else ""),
    ]
    for pipeline in pipelines.values():
        extra = ", ".join(f"{k} {v}" for k, v in pipeline.items()
                          if k in ("device", "threads", "torch_threads", "providers", "weights_from"))
        out.append(f"- {pipeline['label']}: {extra}")
    out += ["", "## Latency (ms)", "",
            "| pipeline | stage | min | median | mean | p90 | p95 | p99 | max | CoV |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, pipeline in pipelines.items():
        rows = [(STAGE_LABELS[key], pipeline["stages"][key]["stats"]) for key in STAGE_KEYS]
        rows.append(("**end to end**", pipeline["end_to_end"]["stats"]))
        rows += [(f"(inference: {key})", value["stats"]) for key, value in pipeline["detail"].items()]
        for label, figures in rows:
            if figures is None:
                out.append(f"| {name} | {label} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | |")
                continue
            cells = " | ".join(_ms(figures[k]) for k in ("min", "median", "mean", "p90", "p95", "p99", "max"))
            out.append(f"| {name} | {label} | {cells} | {100 * figures['cov']:.1f} % |")
    out.append("")
    out.append("n/a: the stage does not exist on that backend (no separate host/device copy on the CPU).")
    if report["ratios"] is not None:
        ratios = report["ratios"]
        out += ["", "## Against the baseline (ours median / baseline median)", "",
                "| stage | ours | baseline | ratio |", "| --- | --- | --- | --- |"]
        for key in (*STAGE_KEYS, "end_to_end"):
            mine = (pipelines["ours"]["end_to_end"] if key == "end_to_end" else pipelines["ours"]["stages"][key])
            theirs = (pipelines["baseline"]["end_to_end"] if key == "end_to_end"
                      else pipelines["baseline"]["stages"][key])
            ratio = ratios["end_to_end"] if key == "end_to_end" else ratios["stages"][key]
            label = "**end to end**" if key == "end_to_end" else STAGE_LABELS[key]
            out.append(f"| {label} | {_ms(mine['stats'] and mine['stats']['median'])} | "
                       f"{_ms(theirs['stats'] and theirs['stats']['median'])} | "
                       f"{'n/a' if ratio is None else f'**{ratio:.3f}**' if key == 'end_to_end' else f'{ratio:.3f}'} |")
    out += ["", "## Throughput and memory", ""]
    for name, pipeline in pipelines.items():
        throughput, memory = pipeline["throughput"], pipeline["memory"]
        device = "" if memory["device_peak_mib"] is None else f"; device memory peak {memory['device_peak_mib']} MiB"
        out.append(f"- {name}: {throughput['mammograms_per_s']:.3f} mammograms/s, {throughput['views_per_s']:.2f} "
                   f"views/s ({throughput['basis']}){device}")
    memory = report["memory"]
    out.append(f"- peak resident memory of the process: {memory['peak_rss_mib']} MiB"
               + (f" ({memory['peak_rss_mib_before_baseline']} MiB with ours alone, before the baseline was loaded)"
                  if memory["peak_rss_mib_before_baseline"] is not None else ""))
    if memory["gpu_process_used_mib"] is not None:
        out.append(f"- GPU memory used by the process (nvidia-smi, end of run): {memory['gpu_process_used_mib']} MiB")
    if report["warnings"]:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    out += ["", "## Stages", ""] + [f"- {STAGE_LABELS[k]}: {d}" for k, d in report["stage_definitions"].items()]
    out.append("- end to end: from opening the file to the JSON result on disk; the stages partition it, so per "
               "mammogram they add up exactly (medians only approximately)")
    return "\n".join(out) + "\n"


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Histogram of end-to-end latencies (the baseline's overlaid when measured), medians marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:
        raise BackendUnavailableError(f"--plot needs matplotlib ({error}); pip install 'trt_mass[eval]'") from error
    series = [(name, pipeline["end_to_end"]["samples_ms"], pipeline["end_to_end"]["stats"]["median"])
              for name, pipeline in report["pipelines"].items()]
    everything = np.concatenate([np.asarray(samples) for _, samples, _ in series])
    low, high = float(everything.min()), float(everything.max())
    logarithmic = low > 0 and high / low > 5
    if high <= low:
        high = low + 1.0
    bins = np.geomspace(low, high, 31) if logarithmic else np.linspace(low, high, 31)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    colours = {"ours": "tab:blue", "baseline": "tab:orange"}
    for name, samples, median in series:
        colour = colours.get(name, "tab:gray")
        axes.hist(samples, bins=bins.tolist(), alpha=0.6, color=colour, label=f"{name}: median {_ms(median)} ms")
        axes.axvline(median, color=colour, linestyle="--", linewidth=1)
    if logarithmic:
        axes.set_xscale("log")
    model = report["model"]
    title = f"{model['model_id']} on {report['pipelines']['ours']['backend']}"
    if report["ratios"] is not None and report["ratios"]["end_to_end"] is not None:
        title += f" — ours / baseline {report['ratios']['end_to_end']:.3f}"
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("end-to-end latency per mammogram (ms)")
    axes.set_ylabel("mammograms")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
