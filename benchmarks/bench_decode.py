"""Decode at engine speed (issue #19): the read + decode stage and the daemon's pace on full-size JPEG 2000.

Full-size phantoms as vendors write them (MONOCHROME1 with a window, 12 bits stored), 4096 x 3328 and
5355 x 4915, each as lossless JPEG 2000 and lossless HTJ2K.  All figures come from one run on one machine:

1. per file, interleaved round by round: the decode alone with OpenJPEG on one thread (pydicom's
   pylibjpeg-openjpeg plugin) and with pydicom's default plugin (GDCM, which main used and which
   decodes JPEG 2000 in threads), main's whole read + decode stage (GDCM, then the per-pixel float
   pipeline, trt_mass.inputs.pixels.presentation_values, which is main's code), and the new stage
   (read_image: OpenJPEG through imagecodecs with 1 and with all cores' threads, HTJ2K through
   OpenJPH below 8 threads, then the lookup table);
2. the watch daemon with tiny models (decode dominates; no DICOM outputs, no overlays; --tiny-grids 5,1,1:64:
   26 views, then 2 views, whose engine takes a few percent of the cores the decoder needs, then 2 views
   merging 64 candidates instead of 512, whose engine is nearly free: the merge's 9 squarings of a
   512 x 512 matrix are most of a tiny model's CPU time) on --files copies
   of the 4096 x 3328 J2K file with distinct SOP Instance UIDs: mammograms per second for main (a git
   worktree at --before-rev) and for this tree with 1..N decode workers, against the decode-bound limit
   (the same files decoded by the same workers and threads with no model at all).

    python -m benchmarks.bench_decode [--runs 5] [--files 12] [--before-rev 85638f1] [--tiny-grids 5,1,1:64]
        [--rounds 3] [--daemon-only] [--extend]

Writes benchmarks/results/decode.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_pipeline_vs_eager import save_report
from trt_mass.bench.machine import machine_facts
from trt_mass.daemon.config import default_canvas_in_workers
from trt_mass.inputs.decoders import decode_plan, default_threads, open_decoder
from trt_mass.inputs.files import read_image
from trt_mass.inputs.pixels import presentation_values

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_decode:begin -->", "<!-- bench_decode:end -->"
SHAPES = {"4096x3328": (4096, 3328), "5355x4915": (5355, 4915)}
DEFAULT_CANDIDATES = 512  # trtmass export's --max-candidates


def write_cases(folder: Path, shapes: tuple[str, ...] = tuple(SHAPES)) -> dict[str, Path]:
    """{"<shape> <syntax>": path} of the full-size phantoms of `shapes` (keys of SHAPES)."""
    import imagecodecs
    from pydicom.encaps import encapsulate
    from pydicom.uid import HTJ2KLossless, JPEG2000Lossless

    from trt_mass.datasets.synth import make_phantom, phantom_dataset

    cases = {}
    for index, (name, shape) in enumerate(SHAPES.items()):
        if name not in shapes:
            continue
        phantom = make_phantom(np.random.default_rng(index), 1.0, False, vendor_index=0, shape_hw=shape, anatomy="fill")
        ds: Any = phantom_dataset(phantom, seed=0, index=index, photometric="MONOCHROME1")
        stored = ds.pixel_array
        j2k = ds.copy()
        j2k.compress(JPEG2000Lossless, generate_instance_uid=False)
        cases[f"{name} J2K"] = folder / f"{name}_j2k.dcm"
        j2k.save_as(cases[f"{name} J2K"], enforce_file_format=True)
        htj2k = ds.copy()
        htj2k.PixelData = encapsulate([bytes(imagecodecs.htj2k_encode(stored, reversible=True))])
        htj2k["PixelData"].VR = "OB"
        htj2k.file_meta.TransferSyntaxUID = HTJ2KLossless
        cases[f"{name} HTJ2K"] = folder / f"{name}_htj2k.dcm"
        htj2k.save_as(cases[f"{name} HTJ2K"], enforce_file_format=True)
    return cases


Way = Callable[[Path], tuple[np.ndarray | None, float]]


def _decode_alone(plugin: str | None) -> Way:
    """pydicom's decode of the pixel data alone (the file is read before the clock starts), with `plugin`
    (None: pydicom's default order, which takes GDCM first, and GDCM decodes JPEG 2000 in threads)."""
    import pydicom
    from pydicom.pixels import pixel_array

    def way(path: Path) -> tuple[np.ndarray | None, float]:
        dataset = pydicom.dcmread(path)
        started = time.perf_counter()
        pixel_array(dataset, **({"decoding_plugin": plugin} if plugin else {}))
        return None, time.perf_counter() - started

    return way


def _main_stage(path: Path) -> tuple[np.ndarray | None, float]:
    """main's read + decode: dcmread, pydicom's decode, the per-pixel float pipeline."""
    import pydicom
    from pydicom.pixels import pixel_array

    started = time.perf_counter()
    dataset = pydicom.dcmread(path)
    pixels = np.ascontiguousarray(presentation_values(pixel_array(dataset), dataset))
    return pixels, time.perf_counter() - started


def _new_stage(threads: int) -> Way:
    decoder = open_decoder("openjpeg", threads)

    def way(path: Path) -> tuple[np.ndarray | None, float]:
        started = time.perf_counter()
        pixels = read_image(path, decoder=decoder).pixels
        return pixels, time.perf_counter() - started

    return way


def stage_timings(cases: dict[str, Path], runs: int) -> dict[str, Any]:
    cores = default_threads()
    ways: dict[str, Way] = {"decode alone, OpenJPEG 1 thread": _decode_alone("pylibjpeg"),
                            "decode alone, pydicom default (GDCM)": _decode_alone(None),
                            "main: read + decode stage": _main_stage,
                            "new stage, 1 thread": _new_stage(1),
                            f"new stage, {cores} threads": _new_stage(cores)}
    names = list(ways)
    results: dict[str, Any] = {}
    for case, path in cases.items():
        samples: dict[str, list[float]] = {way: [] for way in ways}
        reference, _ = _main_stage(path)
        assert reference is not None
        cpu: dict[str, list[float]] = {way: [] for way in ways}
        for run in range(runs + 1):  # the first round warms caches and is dropped; the order rotates
            for way in names[run % len(names):] + names[:run % len(names)]:
                cpu_started = time.process_time()
                pixels, seconds = ways[way](path)
                cpu_seconds = time.process_time() - cpu_started  # includes the untimed file read: an upper bound
                if pixels is not None and not np.array_equal(pixels, reference):
                    raise SystemExit(f"{case}: {way} gives another image than main's path")
                if run:
                    samples[way].append(1000 * seconds)
                    cpu[way].append(1000 * cpu_seconds)
        medians = {way: statistics.median(values) for way, values in samples.items()}
        alone = medians[names[0]]
        results[case] = {"file_mb": round(path.stat().st_size / 2**20, 1),
                         "median_ms": {way: round(v, 1) for way, v in medians.items()},
                         "ratio_to_decode_alone": {way: round(v / alone, 3) for way, v in medians.items()},
                         "cpu_median_ms": {way: round(statistics.median(v), 1) for way, v in cpu.items()},
                         "samples_ms": {way: [round(v, 1) for v in values] for way, values in samples.items()}}
        print(case, json.dumps(results[case]["median_ms"]), file=sys.stderr, flush=True)
    return results


# ---------------------------------------------------------------------------------------------- daemon

def copies(source: Path, folder: Path, count: int) -> list[Path]:
    import pydicom
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        dataset = pydicom.dcmread(source)
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"copy{index:03d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _python_path(code: Path) -> str:
    """`code` first, then whatever PYTHONPATH already holds (wheels carried to a GPU machine)."""
    return os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)


def export_tiny(model: Path, python_path: Path, simplify: bool = True, grid: int = 5,
                max_candidates: int | None = None) -> None:
    """A random resnet18, head width 16, tile 64x64 and `grid` x `grid` tiles (+ the full view);
    `max_candidates`: the merge's N (None: export's default)."""
    subprocess.run([sys.executable, "-m", "trt_mass.cli", "export", "--init", "random", "--arch", "resnet18",
                    "--head-width", "16", "--tile", "64x64", "--grid", str(grid), "-o", str(model),
                    *([] if simplify else ["--no-simplify"]),
                    *([] if max_candidates is None else ["--max-candidates", str(max_candidates)])],
                   check=True, capture_output=True, env={**os.environ, "PYTHONPATH": _python_path(python_path)},
                   cwd=python_path)


def main_thread_ms(log: Path) -> float | None:
    """Median ms per file the daemon's main thread spent after decoding (canvas and views unless a decode
    worker made them, engine, findings, writing)."""
    spent = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"event": "processed"' in line:
            event = json.loads(line)
            elsewhere = {"read_decode_ms", *(("canvas_ms", "select_ms") if event.get("canvas_in_worker") else ())}
            spent.append(sum(v for k, v in event["ms"].items() if k not in elsewhere and isinstance(v, float)))
    return round(statistics.median(spent), 1) if spent else None


def daemon_throughput(files: list[Path], model: Path, root: Path, code: Path, settings: dict[str, str]) -> float:
    """Mammograms per second of `trtmass watch` (the tree at `code`) from the first arrival to the last result."""
    (root / "incoming").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": _python_path(code), "TRTMASS_WATCH_DICOM_OUT": "none",
           "TRTMASS_WATCH_LOG_FORMAT": "json", "TRTMASS_WATCH_POLL_INTERVAL_S": "0.05",
           "TRTMASS_WATCH_SETTLE_S": "0.05", **settings}
    log = open(root.parent / f"{root.name}.log", "wb")  # noqa: SIM115  closed below
    daemon = subprocess.Popen([sys.executable, "-m", "trt_mass.cli", "watch", str(root), "--model", str(model)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=code)
    try:
        while not (root / "status.json").exists() or json.loads((root / "status.json").read_text())["state"] \
                != "running":
            if daemon.poll() is not None or ((root / "status.json").exists() and \
                    json.loads((root / "status.json").read_text()).get("last_error")):
                raise SystemExit(f"the daemon did not start; see {log.name}")
            time.sleep(0.1)
        started = time.perf_counter()
        for path in files:  # every file arrives at once, as a PACS batch export does
            shutil.copyfile(path, root / f".{path.name}")
            os.replace(root / f".{path.name}", root / "incoming" / path.name)
        while len(list((root / "done").iterdir())) < len(files):
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon stopped; see {log.name}")
            time.sleep(0.05)
        return len(files) / (time.perf_counter() - started)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()


def engine_alone_ms(files: list[Path], model: Path, runs: int = 5) -> float:
    """Median ms per file of the daemon's main-thread work (canvas, engine, findings) alone, on a decoded file."""
    from trt_mass.pipeline import Detector

    mammogram = read_image(files[0], decoder=open_decoder("openjpeg", default_threads()))
    with Detector(model, backend="ort", cpu_spin=False) as detector:
        detector.detect_mammogram(mammogram)
        spent = []
        for _ in range(runs):
            started = time.perf_counter()
            detector.detect_mammogram(mammogram)
            spent.append(1000 * (time.perf_counter() - started))
    return statistics.median(spent)


def decode_bound(files: list[Path], workers: int, threads: int, decoder_name: str = "openjpeg") -> float:
    """Files per second that `workers` decode threads with `threads` OpenJPEG threads reach with no model."""
    decoder = open_decoder(decoder_name, threads)
    read_image(files[0], decoder=decoder)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda path: read_image(path, decoder=decoder), files))
    return len(files) / (time.perf_counter() - started)


TinyModel = tuple[int, int]  # (grid, max_candidates)


def parse_tiny_models(text: str) -> tuple[TinyModel, ...]:
    """"5,1,1:64" -> ((5, 512), (1, 512), (1, 64)): grids, each with the merge's N after a colon."""
    models = []
    for item in text.split(","):
        grid, _, candidates = item.partition(":")
        models.append((int(grid), int(candidates) if candidates else DEFAULT_CANDIDATES))
    return tuple(models)


def daemon_runs(source: Path, count: int, before_rev: str | None, tmp: Path,
                tiny_models: tuple[TinyModel, ...] = ((5, 512),), rounds: int = 1,
                previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The daemon's pace per tiny model and decode plan, against its limits.  `previous`: an earlier run's
    results whose models and rows are kept unless measured again here (its main row is kept as well)."""
    files = copies(source, tmp / "copies", count)
    cores = default_threads()
    results: dict[str, Any] = {"files": count, "source": source.name, "cores": cores, "rounds": rounds,
                               "models": [], "new": []}
    if previous is not None:
        measured = set(tiny_models)
        keep = [m for m in previous["models"] if _model_key(m) not in measured]
        results["models"] = keep
        results["new"] = [r for r in previous["new"] if _model_key(r) not in measured]
        if "main" in previous:
            results["main"] = previous["main"]
    for grid, candidates in tiny_models:
        model = tmp / f"tiny-grid{grid}-n{candidates}.onnx"
        export_tiny(model, REPO, grid=grid, max_candidates=candidates)
        engine_ms = engine_alone_ms(files, model)
        views = 1 + grid * grid
        results["models"].append({"grid": grid, "views": views, "max_candidates": candidates,
                                  "engine_alone_ms": round(engine_ms, 1), "measured": time.strftime("%Y-%m-%d %H:%M")})
        if before_rev and "main" not in results:
            results["main"] = {"rev": before_rev, "views": views,
                               "mammograms_per_s": round(_main_throughput(files, grid, tmp, before_rev), 3)}
            print("main", results["main"], file=sys.stderr, flush=True)
        for row in _plan_rows(files, model, tmp, cores, engine_ms, rounds):
            row["model_views"], row["model_max_candidates"] = views, candidates
            if results.get("main", {}).get("views") == views and candidates == DEFAULT_CANDIDATES:
                row["speedup_vs_main"] = round(row["mammograms_per_s"] / results["main"]["mammograms_per_s"], 3)
            results["new"].append(row)
            print(row, file=sys.stderr, flush=True)
    return results


def _model_key(entry: dict[str, Any]) -> TinyModel:
    """(grid, max_candidates) of a model or row of the results (older results: the default N)."""
    grid = entry["grid"] if "grid" in entry else round((entry["model_views"] - 1) ** 0.5)
    return grid, entry.get("max_candidates", entry.get("model_max_candidates", DEFAULT_CANDIDATES))


def _main_throughput(files: list[Path], grid: int, tmp: Path, before_rev: str) -> float:
    """Main's daemon on its own export of the tiny model (older trees refuse newer metadata keys)."""
    worktree = tmp / "before"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), before_rev],
                   check=True, capture_output=True)
    try:
        model = tmp / f"tiny-grid{grid}-main.onnx"
        export_tiny(model, worktree, grid=grid)
        return daemon_throughput(files, model, tmp / "root-main", worktree, {})
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False)


def _plan_rows(files: list[Path], model: Path, tmp: Path, cores: int, engine_ms: float,
               rounds: int = 1) -> list[dict[str, Any]]:
    """One row per decode plan (1 worker x all cores' threads, then 2..4 workers sharing the cores), each
    with the canvas made on the engine thread and in the decode workers.

    Each of `rounds` rounds measures the plan's decode-bound limit, then its two daemons (in alternating
    order): a row's share is the median of the rounds' shares, each daemon against the limit of its own
    round, so that the machine's drift between runs (a few percent here) does not decide the share."""
    plans = sorted({(1, cores), *((w, max(1, cores // w)) for w in range(2, min(4, cores) + 1))})
    default_plan = decode_plan()
    rows = []
    for workers, threads in plans:
        limits: list[float] = []
        rates: dict[bool, list[float]] = {False: [], True: []}
        main_ms: dict[bool, list[float]] = {False: [], True: []}
        for index in range(rounds):
            limits.append(decode_bound(files, workers, threads))
            for canvas_in_workers in ((False, True) if index % 2 == 0 else (True, False)):
                settings = {"TRTMASS_WATCH_DECODE_WORKERS": str(workers),
                            "TRTMASS_WATCH_DECODE_THREADS": str(threads), "TRTMASS_WATCH_DECODER": "openjpeg",
                            "TRTMASS_WATCH_CANVAS_IN_WORKERS": "1" if canvas_in_workers else "0"}
                root = tmp / f"root-{model.stem}-{workers}x{threads}-{'w' if canvas_in_workers else 'e'}-{index}"
                rates[canvas_in_workers].append(daemon_throughput(files, model, root, REPO, settings))
                spent = main_thread_ms(tmp / f"{root.name}.log")
                if spent is not None:
                    main_ms[canvas_in_workers].append(spent)
        limit = statistics.median(limits)
        back_to_back = 1 / (1 / limit + engine_ms / 1000)
        for canvas_in_workers in (False, True):
            rate = statistics.median(rates[canvas_in_workers])
            shares = [r / lim for r, lim in zip(rates[canvas_in_workers], limits, strict=True)]
            rows.append({"decode_workers": workers, "decode_threads": threads,
                         "canvas_in_workers": canvas_in_workers,
                         "default_plan": (workers, threads) == default_plan
                         and canvas_in_workers == default_canvas_in_workers(workers),
                         "rounds": rounds, "mammograms_per_s": round(rate, 3),
                         "mammograms_per_s_rounds": [round(r, 3) for r in rates[canvas_in_workers]],
                         "decode_bound_per_s": round(limit, 3),
                         "decode_bound_per_s_rounds": [round(r, 3) for r in limits],
                         "share_of_decode_bound": round(statistics.median(shares), 3),
                         "share_of_decode_bound_range": [round(min(shares), 3), round(max(shares), 3)],
                         "back_to_back_per_s": round(back_to_back, 3),
                         "share_of_back_to_back": round(rate / back_to_back, 3),
                         "main_thread_ms_per_file": round(statistics.median(main_ms[canvas_in_workers]), 1)
                         if main_ms[canvas_in_workers] else None})
    return rows


def results_section(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [BEGIN, "## Decode at engine speed: full-size JPEG 2000 (issue #19)", "",
             f"`{report['command']}` — {report['date']}, {machine['cpu_model']}, {machine['usable_cores']} usable "
             "cores. Phantoms as Hologic writes them (MONOCHROME1, window, 12 bits stored), lossless."
             + (f" The per-file table is from the run of {report['stages_from']} (`--daemon-only`)."
                if report.get("stages_from") else ""), "",
             "Median ms (its ratio to the single-threaded OpenJPEG decode alone). Main's stage decoded J2K through "
             "pydicom's default plugin, GDCM, which already used both cores (CPU time ~1.7x wall); the new stage "
             "decodes J2K with OpenJPEG threads (imagecodecs) and HTJ2K with OpenJPH, then one lookup table:", "",
             "| file | MB | decode alone, OpenJPEG 1 thread | decode alone, GDCM | main's stage | new, 1 thread | "
             "new, all cores |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for case, row in report["stages"].items():
        cells = [f"{v:.0f} ({row['ratio_to_decode_alone'][k]:.2f}x)" for k, v in row["median_ms"].items()]
        lines.append(f"| {case} | {row['file_mb']} | " + " | ".join(cells) + " |")
    daemon = report["daemon"]
    models = "; ".join(f"{m['views']} views ({m['grid']} x {m['grid']} tiles + the full view), merging "
                       f"{m.get('max_candidates', DEFAULT_CANDIDATES)} candidates: canvas, engine and findings take "
                       f"{m['engine_alone_ms']} ms per file alone" for m in daemon["models"])
    lines += ["", f"`trtmass watch`, tiny models (random resnet18, head width 16, tile 64x64; {models}), "
                  f"{daemon['files']} copies of {daemon['source']} arriving at once; "
                  f"{daemon.get('rounds', 1)} round(s) per plan (medians):", "",
              "| daemon | model views (merged candidates) | decode workers x threads | canvas made by | mammograms/s | "
              "decode-bound limit | share of limit | (range over rounds) | back-to-back limit | share | vs main | "
              "main thread ms/file |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if "main" in daemon:
        lines.append(f"| main ({daemon['main']['rev']}) | {daemon['main']['views']} ({DEFAULT_CANDIDATES}) | "
                     "1 (pydicom's default plugin) | "
                     f"engine thread | {daemon['main']['mammograms_per_s']} | | | | | | 1 | |")
    for row in daemon["new"]:
        low, high = row.get("share_of_decode_bound_range") or (None, None)
        lines.append(f"| this tree{' (default)' if row.get('default_plan') else ''} | {row['model_views']} "
                     f"({row.get('model_max_candidates', DEFAULT_CANDIDATES)}) | "
                     f"{row['decode_workers']} x {row['decode_threads']} | "
                     f"{'decode workers' if row.get('canvas_in_workers') else 'engine thread'} | "
                     f"{row['mammograms_per_s']} | {row['decode_bound_per_s']} | {row['share_of_decode_bound']:.3f} | "
                     f"{'' if low is None else f'{low:.3f}–{high:.3f}'} | "
                     f"{row['back_to_back_per_s']} | {row['share_of_back_to_back']} | "
                     f"{row.get('speedup_vs_main', '')} | {row['main_thread_ms_per_file']} |")
    lines += ["", "Decode-bound limit: the same files decoded by the same workers and threads with no model and "
                  "nothing else running. Back-to-back limit: that decode plus the canvas, engine and findings alone, "
                  "one after the other (what a daemon that overlapped nothing would reach). On this CPU-only machine "
                  "the engine runs on the same cores as the decoder, so the share of the decode-bound limit falls "
                  "as the engine's CPU time grows: the 26-view tiny model's engine costs about a tenth of the decode, "
                  "the 2-view one's about a twentieth (most of it the merge's 9 squarings of its 512 x 512 candidate "
                  "matrix, about 22 ms on one core), the 2-view model merging 64 candidates next to nothing, so "
                  "that its rows show the daemon's own overhead; on a GPU PC the engine leaves the cores to the "
                  "decoder. Range over rounds: each round's daemon against that round's limit. Canvas made by: "
                  "the engine thread letterboxes the image and chooses its views before the engine, or the decode "
                  "workers do it after the decode (the default with 2 or more workers), leaving the engine thread "
                  "to the engine, the findings and the writing (its ms/file then leave out canvas and views)."]
    return "\n".join([*lines, END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--before-rev", default="85638f1", help="main's commit for the daemon's 'before' ('' to skip)")
    parser.add_argument("--tiny-grids", default="5,1,1:64",
                        help="grids of the tiny models the daemon runs (5: 26 views; 1: the full view + 1 tile, "
                             "so that the engine's share on these shared cores is small), each with the merge's "
                             "candidate count after a colon (default 512)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="daemon runs per plan and canvas side, each against its own round's decode-bound limit")
    parser.add_argument("--extend", action="store_true",
                        help="with --daemon-only: keep --out's daemon rows of the models not measured again")
    parser.add_argument("--daemon-only", action="store_true",
                        help="keep the per-file stage table of --out and measure only the daemon")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "decode.json")
    parser.add_argument("--results-md", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "decode", "command": "python -m benchmarks.bench_decode " +
                              shlex.join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "machine": machine_facts()}
    if args.extend and not args.daemon_only:
        parser.error("--extend needs --daemon-only")
    with tempfile.TemporaryDirectory(prefix="trtmass-decode-") as tmp_name:
        tmp = Path(tmp_name)
        previous = None
        if args.daemon_only:
            previous = json.loads(args.out.read_text())
            report["stages"] = previous["stages"]
            report["stages_from"] = previous.get("stages_from") or previous.get("date")  # where they were measured
            cases = write_cases(tmp, ("4096x3328",))
        else:
            cases = write_cases(tmp)
            report["stages"] = stage_timings(cases, args.runs)
        report["daemon"] = daemon_runs(cases["4096x3328 J2K"], args.files, args.before_rev or None, tmp,
                                       parse_tiny_models(args.tiny_grids), args.rounds,
                                       previous["daemon"] if args.extend and previous else None)
        if args.extend and previous:
            report["command"] = f"{previous['command']} (at {previous['date']}), then {report['command']}"
    save_report(report, args.out, args.results_md, results_section(report), BEGIN, END)


if __name__ == "__main__":
    main()
