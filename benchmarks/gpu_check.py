"""The GPU check: what only a machine with an NVIDIA GPU can show, in one run of under 8 minutes.

    python -m benchmarks.gpu_check [--cycles 100] [--runs 10] [--arch resnet50 --tile 768x640]

For a session that is lent a GPU machine (PyTorch with CUDA, cuda-python, no TensorRT, no network):

1. the machine: nvidia-smi's GPU, driver and memory; whether `import tensorrt` works here;
2. the TensorRT runner's CUDA plumbing (trt_mass.runners.trt) without TensorRT: a stand-in `tensorrt`
   package, written to a temporary folder and put on PYTHONPATH of a child process only, whose "engine"
   runs one real device-to-device copy per output.  The runner's pinned host buffers, its one stream
   (H2D, the engine's copy, D2H, in order), its CUDA events and its release are then real: the outputs
   must be the input's bytes, and `--cycles` load / infer / unload cycles must not grow device memory;
3. the engine graph as a PyTorch module on the GPU, in fp32 and with the network in fp16 (decode, NMS
   and merge in fp32, as the fp16 ONNX variant), against the paper's way on the same GPU (26 views one
   after another, per-view decode + NMS, merge in Python; trt_mass.bench.baseline), as ratios;
4. JPEG 2000 / HTJ2K decoding: nvImageCodec on the GPU against OpenJPEG on the machine's cores, the whole
   read + decode stage on full-size lossless phantoms, bit-exact against pydicom (needs the
   nvidia-nvimgcodec-cu13 and nvidia-nvjpeg2k-cu13 wheels; skipped with the reason without them);
5. the watch daemon with a tiny model on full-size J2K files: nvImageCodec against OpenJPEG on the cores,
   each against its decode-only limit.

Writes benchmarks/results/gpu_check.json and its section of benchmarks/RESULTS.md, with the GPU named.
`--device cpu` runs part 3 on the CPU (a smoke test of the script where there is no GPU).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_pipeline_vs_eager import update_results_md
from trt_mass.bench.machine import machine_facts

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- gpu_check:begin -->", "<!-- gpu_check:end -->"
STANDIN_VERSION = "11.4.0.106"  # what the stand-in says it is; the engine's sidecar says the same

# The stand-in `tensorrt`: only what trt_mass.runners.trt and trt_mass.engine.gpu call.  The engine's
# description (its tensors) is the first line of the "plan"; executing it copies, on the stream it is
# given, the leading bytes of the input into every output, one after another.
STANDIN_TENSORRT = '''"""Stand-in for TensorRT (benchmarks/gpu_check.py): an engine whose execution is a device copy."""
import json

import numpy as np
from cuda.bindings import runtime as cudart

__version__ = "{version}"


class TensorIOMode:
    INPUT = "input"
    OUTPUT = "output"


class EngineStat:
    TOTAL_WEIGHTS_SIZE = "total_weights_size"


def nptype(dtype):
    return np.dtype(dtype).type


class Logger:
    WARNING = 2
    VERBOSE = 4

    def __init__(self, min_severity=2):
        self.min_severity = min_severity


class Runtime:
    def __init__(self, logger):
        self.logger = logger
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, blob):
        return _Engine(json.loads(bytes(blob).split(b"\\n", 1)[0]))


class _Engine:
    def __init__(self, tensors):
        self.tensors = tensors  # [[name, mode, dtype, shape], ...]
        self.device_memory_size_v2 = 0

    @property
    def num_io_tensors(self):
        return len(self.tensors)

    def _tensor(self, name):
        return next(t for t in self.tensors if t[0] == name)

    def get_tensor_name(self, index):
        return self.tensors[index][0]

    def get_tensor_mode(self, name):
        return self._tensor(name)[1]

    def get_tensor_shape(self, name):
        return tuple(self._tensor(name)[3])

    def get_tensor_dtype(self, name):
        return self._tensor(name)[2]

    def get_engine_stat(self, stat):
        return 0

    def create_execution_context(self):
        return _Context(self)


class _Context:
    def __init__(self, engine):
        self.engine = engine
        self.addresses = {{}}

    def set_tensor_address(self, name, address):
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream):
        stream = cudart.cudaStream_t(stream) if isinstance(stream, int) else stream
        tensors = self.engine.tensors
        source = self.addresses[next(t[0] for t in tensors if t[1] == TensorIOMode.INPUT)]
        offset = 0
        for name, mode, dtype, shape in tensors:
            if mode != TensorIOMode.OUTPUT:
                continue
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            error, = cudart.cudaMemcpyAsync(self.addresses[name], source + offset, nbytes,
                                            cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream)
            if error != cudart.cudaError_t.cudaSuccess:
                return False
            offset += nbytes
        return True
'''


# ------------------------------------------------------------------------------------------- 1. the machine
def tensorrt_probe() -> dict[str, Any]:
    from trt_mass.engine.gpu import probe_gpu, tensorrt_version

    version, problem = tensorrt_version()
    gpu, why = probe_gpu()
    return {"tensorrt_version": version, "tensorrt_problem": problem or None,
            "gpu": None if gpu is None else gpu.to_dict(), "gpu_problem": why or None}


# ------------------------------------------------------------------------------------------- 2. the runner
def plumbing_check(cycles: int) -> dict[str, Any]:
    """Run the plumbing check in a child process that imports the stand-in as `tensorrt`."""
    if tensorrt_probe()["tensorrt_version"] is not None:
        return {"ran": False, "why": "tensorrt is installed here: the stand-in would shadow the real one"}
    with tempfile.TemporaryDirectory(prefix="trtmass-gpu-check-") as folder:
        (Path(folder) / "tensorrt").mkdir()
        (Path(folder) / "tensorrt" / "__init__.py").write_text(STANDIN_TENSORRT.format(version=STANDIN_VERSION))
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([folder, str(REPO)])}
        run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--plumbing-child", folder,
                              "--cycles", str(cycles)], env=environment, capture_output=True, text=True,
                             timeout=300, cwd=REPO)
    if run.returncode != 0:
        return {"ran": True, "passed": False, "error": (run.stderr or run.stdout)[-4000:]}
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def _standin_engine(folder: Path) -> Path:
    """An engine (its tensors on the first line) and a real sidecar for this GPU, in `folder`."""
    from trt_mass.engine.gpu import probe_gpu
    from trt_mass.engine.sidecar import BuildOptions, EngineSidecar, write_sidecar
    from trt_mass.metadata import ModelMetadata, TensorSpec
    from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry

    spec = GraphSpec(geometry=TileGeometry(256, 224, 5), canvas_dtype="int32", max_candidates=128)
    canvas_hw = spec.geometry.canvas_hw
    inputs = (TensorSpec("canvas", "int32", (1, 1, *canvas_hw)),)
    # A third, 1 MiB output: a leaked output buffer then shows in the device-memory check (2 MiB granularity).
    outputs = (TensorSpec("boxes", "float32", (128, 4)), TensorSpec("scores", "float32", (128,)),
               TensorSpec("padding", "float32", (262144,)))
    tensors = [[t.name, "input", t.dtype, list(t.shape)] for t in inputs]
    tensors += [[t.name, "output", t.dtype, list(t.shape)] for t in outputs]
    blob = json.dumps(tensors).encode() + b"\n" + os.urandom(4096)
    engine = folder / "standin.plan"
    engine.write_bytes(blob)
    gpu, why = probe_gpu()
    if gpu is None:
        raise RuntimeError(f"no GPU: {why}")
    metadata = ModelMetadata(kind="engine_graph", model_spec=ModelSpec("resnet18", 32), graph_spec=spec,
                             weights_sha256="00" * 32, init="random:seed=0,prior=0.01", precision="fp32",
                             inputs=inputs, outputs=outputs)
    write_sidecar(engine, EngineSidecar(
        engine_sha256=hashlib.sha256(blob).hexdigest(), source_onnx="standin.onnx", source_onnx_sha256="11" * 32,
        model_metadata=metadata, tensorrt_version=STANDIN_VERSION, gpu_name=gpu.name,
        compute_capability=gpu.compute_capability, build=BuildOptions("standin", {})))
    return engine


def plumbing_child(folder: Path, cycles: int) -> dict[str, Any]:
    """In the child: correctness of one runner, then `cycles` load / infer / unload cycles."""
    from trt_mass.engine.gpu import cuda_call, import_cudart
    from trt_mass.runners.trt import TensorRTRunner

    cudart = import_cudart()
    engine = _standin_engine(folder)
    rng = np.random.default_rng(0)

    def one_cycle(check: bool) -> dict[str, Any]:
        runner = TensorRTRunner(engine)
        with runner:
            shape = runner.metadata.inputs[0].shape
            facts: dict[str, Any] = {}
            for _ in range(3 if check else 1):
                canvas = rng.integers(0, 65535, size=shape, dtype=np.int32)
                out = runner.infer({"canvas": canvas})
                raw = canvas.tobytes()
                boxes = np.frombuffer(raw[: out["boxes"].nbytes], np.float32).reshape(out["boxes"].shape)
                scores = np.frombuffer(raw[out["boxes"].nbytes: out["boxes"].nbytes + out["scores"].nbytes],
                                       np.float32)
                if check and not (np.array_equal(out["boxes"].view(np.int32), boxes.view(np.int32))
                                  and np.array_equal(out["scores"].view(np.int32), scores.view(np.int32))):
                    raise AssertionError("the outputs are not the input's bytes: H2D, the engine's copy and D2H "
                                         "did not run in order on one stream")
                facts = {"stage_ms": runner.last_stage_ms, "device_memory_bytes": runner.device_memory_bytes}
        # Released: every device and pinned buffer, event and stream (a leak of any would grow per cycle).
        if runner._bindings or runner._events or runner._stream is not None or runner._cudart is not None:
            raise AssertionError("the runner kept CUDA resources after deactivate()")
        return facts

    first = one_cycle(check=True)
    if set(first["stage_ms"]) != {"h2d", "inference", "d2h"} or min(first["stage_ms"].values()) < 0:
        raise AssertionError(f"CUDA event times: {first['stage_ms']}")
    free_before, total = cuda_call(cudart, cudart.cudaMemGetInfo(), "cudaMemGetInfo")
    started = time.perf_counter()
    for _ in range(cycles):
        one_cycle(check=False)
    seconds = time.perf_counter() - started
    free_after, _ = cuda_call(cudart, cudart.cudaMemGetInfo(), "cudaMemGetInfo")
    growth_mib = (int(free_before) - int(free_after)) / 2**20
    return {"ran": True, "passed": growth_mib < 1.0, "cycles": cycles, "device_memory_growth_mib": growth_mib,
            "seconds_per_cycle": seconds / max(1, cycles), "first_stage_ms": first["stage_ms"],
            "device_memory_bytes": first["device_memory_bytes"], "total_device_memory_mib": int(total) / 2**20}


# ------------------------------------------------------------------------------------------- 3. the graph
def torch_timings(arch: str, tile: str, runs: int, device_name: str) -> dict[str, Any]:
    """Median ms of the engine graph (fp32; network fp16) in one batched call, and of the paper's way."""
    import torch

    from trt_mass.bench.baseline import EagerBaseline
    from trt_mass.metadata import ModelMetadata, TensorSpec
    from trt_mass.model.checkpoint import random_network, weights_sha256
    from trt_mass.model.graph import EngineGraph
    from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry, parse_hw

    device = torch.device(device_name)
    spec = GraphSpec(geometry=TileGeometry(*parse_hw(tile), 5))
    network = random_network(ModelSpec(arch=arch, head_width=256 if arch == "resnet50" else 64), 0, 0.01)
    canvas = _phantom_canvas(spec)
    metadata = ModelMetadata(kind="engine_graph", model_spec=network.spec, graph_spec=spec,
                             weights_sha256=weights_sha256(network), init="random:seed=0,prior=0.01",
                             inputs=(TensorSpec("canvas", "uint16", canvas.shape),))
    graph = EngineGraph(copy.deepcopy(network), spec).eval().to(device)
    half = _HalfNetwork(graph).eval().to(device)
    baseline = EagerBaseline(copy.deepcopy(network), metadata, device)
    host_canvas = canvas.astype(np.int32)

    def from_host(module: Any) -> Any:
        # From the host canvas to findings on the host, as the baseline's run_views does.
        return lambda: [t.cpu() for t in module(torch.from_numpy(host_canvas).to(device))]

    timings = {
        "graph_fp32": _median_ms(from_host(graph), runs, device),
        "graph_fp16_network": _median_ms(from_host(half), runs, device),
        "paper_eager_fp32": _median_ms(lambda: baseline.run_views(canvas), runs, device),
    }
    return {"arch": arch, "tile": tile, "views": spec.geometry.num_views, "runs": runs, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "median_ms": timings,
            "ratio_fp32": timings["graph_fp32"] / timings["paper_eager_fp32"],
            "ratio_fp16_network": timings["graph_fp16_network"] / timings["paper_eager_fp32"]}


class _HalfNetwork:
    """The engine graph with its network in fp16; views, decode, NMS and merge in fp32 (the fp16 variant)."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.network = copy.deepcopy(graph.network).half()

    def eval(self) -> _HalfNetwork:
        self.network.eval()
        return self

    def to(self, device: Any) -> _HalfNetwork:
        self.network.to(device)
        return self

    def __call__(self, canvas: Any) -> Any:
        import torch

        with torch.inference_mode():
            views = self.graph.views(canvas)
            cls_logits, box_regression = self.network(views.half())
            return self.graph.postprocess(cls_logits.float(), box_regression.float())


def _phantom_canvas(spec: Any) -> np.ndarray:
    """A full-size synthetic mammogram letterboxed into the canvas, uint16 [1, 1, CH, CW]."""
    from trt_mass.datasets.synth import write_phantoms
    from trt_mass.geometry import CanvasBuilder
    from trt_mass.inputs.files import read_image

    with tempfile.TemporaryDirectory() as folder:
        path = write_phantoms(Path(folder), 1, seed=5, scale=1.0, normal_fraction=0.0)[0]
        builder = CanvasBuilder(spec.geometry, "uint16")
        builder.fill(read_image(path).pixels)
    return builder.canvas.copy()


def _median_ms(call: Any, runs: int, device: Any) -> float:
    import torch

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        for _ in range(3):
            call()
        synchronize()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            synchronize()
            times.append(1000 * (time.perf_counter() - started))
    return float(np.median(times))


# ------------------------------------------------------------------------------------------- 4. decoding
def decode_check(runs: int) -> dict[str, Any]:
    """nvImageCodec on the GPU against OpenJPEG on this machine's cores: full-size lossless J2K / HTJ2K
    phantoms, the whole read + decode stage (read_image) and the frame decode alone, bit-exact against
    pydicom's decode."""
    from trt_mass.inputs.decoders import DecoderUnavailable, default_threads, open_decoder

    try:
        gpu_decoder = open_decoder("nvimgcodec")
    except DecoderUnavailable as error:
        return {"ran": False, "why": str(error)}
    from benchmarks.bench_decode import write_cases
    from trt_mass.inputs.files import read_image

    cores = default_threads()
    decoders = {"nvimgcodec (GPU)": gpu_decoder, "OpenJPEG 1 thread": open_decoder("openjpeg", 1),
                f"OpenJPEG {cores} threads": open_decoder("openjpeg", cores), "pydicom": open_decoder("pydicom")}
    cases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="trtmass-gpu-decode-") as folder:
        for case, path in write_cases(Path(folder)).items():
            reference = read_image(path, decoder=decoders["pydicom"]).pixels
            row: dict[str, Any] = {"file_mb": round(path.stat().st_size / 2**20, 1), "median_ms": {},
                                   "bit_exact": {}}
            for label, decoder in decoders.items():
                times = []
                for run in range(runs + 1):  # the first call warms up (CUDA context, allocations)
                    started = time.perf_counter()
                    mammogram = read_image(path, decoder=decoder)
                    if run:
                        times.append(1000 * (time.perf_counter() - started))
                row["median_ms"][label] = round(float(np.median(times)), 1)
                fast_path_taken = decoder.name == "pydicom" or mammogram.pixel_decoder != "pydicom"
                row["bit_exact"][label] = bool(np.array_equal(mammogram.pixels, reference) and fast_path_taken)
                row.setdefault("decoded_by", {})[label] = mammogram.pixel_decoder
            cases[case] = row
            print(case, json.dumps(row), flush=True)
    return {"ran": True, "cores": cores, "runs": runs, "cases": cases,
            "definition": "read_image: file read, decode, modality/VOI/inversion lookup, median ms"}


# ------------------------------------------------------------------------------------------- 5. the daemon
def daemon_check(files: int) -> dict[str, Any]:
    """`trtmass watch` with a tiny model (so decoding dominates) on `files` copies of a full-size 4096 x 3328
    lossless J2K phantom: mammograms per second with nvImageCodec against OpenJPEG on the machine's cores,
    each against its decode-only limit (benchmarks/bench_decode.py).  Polling mode, no DICOM outputs."""
    from trt_mass.inputs.decoders import DecoderUnavailable, default_threads, open_decoder

    try:
        open_decoder("nvimgcodec")
    except DecoderUnavailable as error:
        return {"ran": False, "why": str(error)}
    from benchmarks.bench_decode import (
        copies,
        daemon_throughput,
        decode_bound,
        export_tiny,
        main_thread_ms,
        write_cases,
    )

    cores = default_threads()
    # (decoder, workers, threads, canvas made by the decode workers): from 2 workers both ways, the daemon's
    # default (workers) against the engine thread making it
    # default, then with the model whose engine is nearly free (2 views merging 64 candidates: this
    # machine runs the engine graph on its CPU through ONNX Runtime, which a GPU PC's TensorRT does not)
    plans = [("nvimgcodec", 1, 1, False, "tiny"), ("nvimgcodec", 2, 1, False, "tiny"),
             ("nvimgcodec", 2, 1, True, "tiny"), ("nvimgcodec", 4, 1, True, "tiny"),
             ("nvimgcodec", 2, 1, True, "tiny-n64"), ("nvimgcodec", 4, 1, True, "tiny-n64"),
             ("openjpeg", 1, cores, False, "tiny"), ("openjpeg", 4, max(1, cores // 4), False, "tiny"),
             ("openjpeg", 4, max(1, cores // 4), True, "tiny")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="trtmass-gpu-daemon-") as folder:
        tmp = Path(folder)
        source = write_cases(tmp, ("4096x3328",))["4096x3328 J2K"]
        paths = copies(source, tmp / "copies", files)
        models = {"tiny": tmp / "tiny.onnx", "tiny-n64": tmp / "tiny-n64.onnx"}
        export_tiny(models["tiny"], REPO, simplify=False)  # onnxsim is not on the lent machines
        export_tiny(models["tiny-n64"], REPO, simplify=False, grid=1, max_candidates=64)
        limits: dict[tuple[str, int, int], float] = {}
        for decoder, workers, threads, in_workers, model_name in plans:
            model = models[model_name]
            root = tmp / f"root-{decoder}-{workers}x{threads}-{'w' if in_workers else 'e'}-{model_name}"
            settings = {"TRTMASS_WATCH_DECODER": decoder, "TRTMASS_WATCH_DECODE_WORKERS": str(workers),
                        "TRTMASS_WATCH_DECODE_THREADS": str(threads), "TRTMASS_WATCH_POLLING": "1",
                        "TRTMASS_WATCH_CANVAS_IN_WORKERS": "1" if in_workers else "0"}
            rate = daemon_throughput(paths, model, root, REPO, settings)
            if (decoder, workers, threads) not in limits:
                limits[decoder, workers, threads] = decode_bound(paths, workers, threads, decoder)
            limit = limits[decoder, workers, threads]
            rows.append({"decoder": decoder, "model": model_name, "decode_workers": workers,
                         "decode_threads": threads,
                         "canvas_in_workers": in_workers,
                         "mammograms_per_s": round(rate, 3), "decode_bound_per_s": round(limit, 3),
                         "share_of_decode_bound": round(rate / limit, 3),
                         "main_thread_ms_per_file": main_thread_ms(root.parent / f"{root.name}.log")})
            print(rows[-1], flush=True)
    return {"ran": True, "files": files, "cores": cores, "rows": rows}


def _daemon_part(args: argparse.Namespace) -> dict[str, Any]:
    if args.device != "cuda" or not args.daemon_files:
        return {"ran": False, "why": "--device cpu or --daemon-files 0"}
    try:
        return daemon_check(args.daemon_files)
    except Exception as error:  # the parts before it are recorded all the same
        return {"ran": False, "why": f"failed: {type(error).__name__}: {error}"}


# ------------------------------------------------------------------------------------------- the report
def _daemon_lines(daemon: dict[str, Any] | None) -> list[str]:
    if not daemon:
        return []
    if not daemon.get("ran"):
        return ["", f"Watch daemon with the GPU decoder: not run ({daemon.get('why')})."]
    lines = ["", f"`trtmass watch` (polling, no DICOM outputs) on {daemon['files']} copies of the 4096 x 3328 J2K "
                 "phantom arriving at once; decode-only limit = the same workers decoding with nothing else. Models "
                 "(random, engine graph on this machine's CPU through ONNX Runtime): tiny = 26 views merging 512 "
                 "candidates, tiny-n64 = 2 views merging 64 (an engine that is nearly free, as TensorRT's on a GPU "
                 "PC is for the cores):", "",
             "| decoder | model | workers x threads | canvas made by | mammograms/s | decode-only limit | share | "
             "main thread ms/file |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['decoder']} | {r.get('model', 'tiny')} | {r['decode_workers']} x {r['decode_threads']} | "
              f"{'decode workers' if r.get('canvas_in_workers') else 'engine thread'} | {r['mammograms_per_s']} | "
              f"{r['decode_bound_per_s']} | {r['share_of_decode_bound']:.3f} | {r['main_thread_ms_per_file']} |"
              for r in daemon["rows"]]
    return lines


def _decode_lines(decode: dict[str, Any] | None) -> list[str]:
    if not decode:
        return []
    if not decode.get("ran"):
        return ["", f"JPEG 2000 decoding on the GPU: not run ({decode.get('why')})."]
    labels = list(next(iter(decode["cases"].values()))["median_ms"])
    lines = ["", f"Read + decode stage of full-size lossless phantoms (MONOCHROME1, 12 bits), median of "
                 f"{decode['runs']} runs, ms; the GPU decoder against OpenJPEG on this machine's {decode['cores']} "
                 "cores (bit-exact against pydicom's decode: all must say yes). Below 8 threads the OpenJPEG "
                 "decoder reads HTJ2K with OpenJPH (`decoded_by` in the JSON):", "",
             "| file | MB | " + " | ".join(labels) + " | bit-exact |",
             "| --- | --- | " + "--- | " * len(labels) + "--- |"]
    for case, row in decode["cases"].items():
        exact = "yes" if all(row["bit_exact"].values()) else f"NO {row['bit_exact']}"
        lines.append(f"| {case} | {row['file_mb']} | " + " | ".join(f"{row['median_ms'][k]:.0f}" for k in labels)
                     + f" | {exact} |")
    return lines


def results_section(result: dict[str, Any]) -> str:
    gpus = result["machine"]["gpus"]
    gpu = (f"{gpus[0]['name']} ({gpus[0]['memory_total_mib']} MiB, driver {gpus[0]['driver']}, compute capability "
           f"{gpus[0]['compute_capability']})" if gpus else "no GPU found by nvidia-smi")
    lines = [BEGIN, "## GPU check (benchmarks/gpu_check.py)", "",
             f"`{result['command']}` — {result['date']}, {gpu}.", ""]
    probe = result["tensorrt"]
    lines.append(f"- TensorRT: {probe['tensorrt_version'] or 'not installed'}"
                 + (f" ({probe['tensorrt_problem']})" if probe["tensorrt_problem"] else ""))
    plumbing = result["plumbing"]
    if plumbing.get("ran") and "cycles" in plumbing:
        lines.append(f"- TensorRT runner's CUDA plumbing (stand-in engine, real device copies): outputs equal the "
                     f"input's bytes; {plumbing['cycles']} load/infer/unload cycles changed free device memory by "
                     f"{plumbing['device_memory_growth_mib']:.2f} MiB ({'passed' if plumbing['passed'] else 'FAILED'})"
                     f"; stage times of the first call {plumbing['first_stage_ms']}")
    else:
        lines.append(f"- TensorRT runner's CUDA plumbing: {plumbing.get('why') or plumbing.get('error', 'not run')}")
    torch_part = result.get("torch")
    if torch_part:
        ms = torch_part["median_ms"]
        lines += ["", f"Engine graph in PyTorch on {torch_part['device_name']} ({torch_part['arch']}, tile "
                      f"{torch_part['tile']}, {torch_part['views']} views, random weights, median of "
                      f"{torch_part['runs']} runs, torch {torch_part['torch']}); both ways from the host canvas to "
                      "findings on the host. Random weights at the paper's prior give few candidates, so NMS and "
                      "the merge weigh less here than with a trained model:", "",
                  "| way | ms per mammogram | ratio to the paper's way |", "| --- | --- | --- |",
                  f"| paper's way: 26 eager passes, fp32 | {ms['paper_eager_fp32']:.1f} | 1 |",
                  f"| engine graph, one batched call, fp32 | {ms['graph_fp32']:.1f} | "
                  f"**{torch_part['ratio_fp32']:.3f}** |",
                  f"| engine graph, network fp16 | {ms['graph_fp16_network']:.1f} | "
                  f"**{torch_part['ratio_fp16_network']:.3f}** |"]
    lines += _decode_lines(result.get("decode"))
    lines += _daemon_lines(result.get("daemon"))
    lines += ["", "No TensorRT figure: TensorRT is not installed on the lent GPU machines.", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--tile", default="768x640")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test of part 3")
    parser.add_argument("--decode-runs", type=int, default=5, help="timed reads per file and decoder (part 4)")
    parser.add_argument("--daemon-files", type=int, default=24, help="files through the daemon per setting (part 5)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_check.json")
    parser.add_argument("--results-md", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--plumbing-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plumbing_child is not None:
        print(json.dumps(plumbing_child(args.plumbing_child, args.cycles)))
        return
    started = time.perf_counter()
    result: dict[str, Any] = {"command": shlex.join(["python", "-m", "benchmarks.gpu_check", *sys.argv[1:]]),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_facts(),
                              "tensorrt": tensorrt_probe()}
    result["plumbing"] = plumbing_check(args.cycles) if args.device == "cuda" else {"ran": False, "why": "--device cpu"}
    print(json.dumps(result["plumbing"], indent=1), flush=True)
    result["torch"] = torch_timings(args.arch, args.tile, args.runs, args.device)
    result["decode"] = decode_check(args.decode_runs) if args.device == "cuda" else {"ran": False,
                                                                                      "why": "--device cpu"}
    print(json.dumps(result["decode"], indent=1), flush=True)
    result["daemon"] = _daemon_part(args)
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result["torch"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.device == "cuda":
        update_results_md(args.results_md, results_section(result), BEGIN, END)
    print(results_section(result))


if __name__ == "__main__":
    main()
