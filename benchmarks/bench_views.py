"""Tissue-aware view selection (issue #17): views run per mammogram, and what skipping air saves.

All figures come from one run on one machine:

1. views per mammogram (trt_mass.tissue.views_with_tissue on the canvas detect builds) on every
   mini-MIAS image in ../shared/data/mini-mias-train (when present) and on --phantoms phantoms
   (`trtmass synth`, scale 0.25), at the demo model's tiles (256 x 224) and the paper's (768 x 640);
   with the selection's own time;
2. end to end (read + decode, canvas, selection, engine graph, findings) of one model exported with view
   selection (random weights, --arch/--head-width/--tile; the demo model's network by default), on
   --images mini-MIAS images (phantoms when MIAS is absent), with its selection and with --all-views,
   interleaved image by image, --rounds times; the ratio selection / all views of the mean times, and
   the selection's share of the total.

    python -m benchmarks.bench_views [--images 12] [--rounds 2] [--arch resnet18 --head-width 64 --tile 256x224]

Writes benchmarks/results/views.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_pipeline_vs_eager import save_report
from trt_mass.bench.machine import machine_facts

HERE = Path(__file__).resolve().parent
MIAS = HERE.parent.parent / "shared" / "data" / "mini-mias-train"
BEGIN, END = "<!-- bench_views:begin -->", "<!-- bench_views:end -->"
TILES = ((256, 224), (768, 640))


def mias_images() -> list[Path]:
    folder = MIAS / "images"
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def views_per_mammogram(paths: list[Path]) -> dict[str, Any]:
    """Views with tissue per image at each tile size and cover rule, and the selection's time."""
    from trt_mass.geometry import CanvasBuilder
    from trt_mass.inputs.files import read_image
    from trt_mass.spec import TileGeometry
    from trt_mass.tissue import TissueSpec, views_with_tissue

    images = [read_image(path).pixels for path in paths]
    out = {}
    for (tile_h, tile_w), cover in ((tiles, cover) for tiles in TILES for cover in ("every", "central")):
        geometry = TileGeometry(tile_h, tile_w, 5)
        builder = CanvasBuilder(geometry, "uint16")
        counts, times = [], []
        for image in images:
            letterbox = builder.fill(image, "bench")
            started = time.perf_counter()
            views = views_with_tissue(builder.canvas, letterbox.resized_hw, geometry, TissueSpec(cover=cover))
            times.append(1000 * (time.perf_counter() - started))
            counts.append(len(views))
        key = f"{tile_h}x{tile_w}" + ("" if cover == "every" else f", cover {cover}")
        out[key] = {"images": len(counts), "mean": statistics.fmean(counts), "min": min(counts),
                    "max": max(counts), "histogram": np.bincount(counts, minlength=27)[1:].tolist(),
                    "select_ms_median": statistics.median(times), "select_ms_max": max(times)}
    return out


def end_to_end(model: Path, paths: list[Path], rounds: int) -> dict[str, Any]:
    """Mean per-image times with the model's selection and with all views, interleaved image by image."""
    from trt_mass.inputs.files import read_image
    from trt_mass.pipeline import Detector

    runs: dict[str, dict[str, list[float]]] = {name: {"total": [], "select": [], "infer": [], "views": []}
                                               for name in ("selection", "all_views")}
    with Detector(model) as selecting, Detector(model, all_views=True) as every:
        for detector in (selecting, every):  # warm both sessions
            detector.detect_mammogram(read_image(paths[0]))
        for round_index in range(rounds):
            for index, path in enumerate(paths):
                order = [("selection", selecting), ("all_views", every)]
                if (index + round_index) % 2:
                    order.reverse()
                for name, detector in order:
                    started = time.perf_counter()
                    result = detector.detect_mammogram(read_image(path), source=str(path))
                    runs[name]["total"].append(1000 * (time.perf_counter() - started))
                    runs[name]["select"].append(result.timings_ms["select_ms"])
                    runs[name]["infer"].append(result.timings_ms["infer_ms"])
                    runs[name]["views"].append(len(result.views))
    summary = {name: {key: statistics.fmean(values) for key, values in data.items()} for name, data in runs.items()}
    return {"per_image": summary, "ratio_total": summary["selection"]["total"] / summary["all_views"]["total"],
            "ratio_infer": summary["selection"]["infer"] / summary["all_views"]["infer"],
            "selection_share": summary["selection"]["select"] / summary["selection"]["total"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from trt_mass.datasets.synth import write_phantoms
    from trt_mass.model.checkpoint import random_network
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry, parse_hw

    started = time.time()
    mias = mias_images()
    with tempfile.TemporaryDirectory(prefix="bench-views-") as scratch:
        work = Path(scratch)
        phantoms = write_phantoms(work / "phantoms", args.phantoms, seed=200, scale=0.25)
        distribution = {"mini-MIAS": views_per_mammogram(mias) if mias else None,
                        "phantoms": views_per_mammogram(phantoms)}
        tile_h, tile_w = parse_hw(args.tile)
        model = work / "model.onnx"
        network = random_network(ModelSpec(arch=args.arch, head_width=args.head_width), 0, 0.01)
        export_onnx(network, "random:seed=0,prior=0.01", ExportOptions(GraphSpec(
            geometry=TileGeometry(tile_h, tile_w, 5), view_selection="tissue")), model)
        images = (mias or phantoms)[: args.images]
        timing = end_to_end(model, images, args.rounds)
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
            "machine": machine_facts(), "distribution": distribution,
            "timing": {**timing, "model": f"{args.arch} head {args.head_width}, tile {args.tile}, random weights",
                       "images": f"{len(images)} {'mini-MIAS' if mias else 'phantom'} images",
                       "rounds": args.rounds}}


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [BEGIN, "## Tissue-aware view selection: views per mammogram and the time saved (issue #17)", "",
             f"`python -m benchmarks.bench_views` — {report['created']}, {machine.get('cpu_model')}, "
             f"{machine.get('usable_cores')} usable cores, {report['seconds']:.0f} s.", "",
             "Views run per mammogram (of 26: the full view always, and the tiles at least 1 % tissue; with "
             "`--tissue-cover central` only those of them that some tissue lies most centrally in), on the "
             "canvas `detect` builds:", "",
             "| images | tiles | mean | min | max | selection ms (median / max) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for source, entry in report["distribution"].items():
        if entry is None:
            lines.append(f"| {source} | not present here | | | | |")
            continue
        for tiles, figures in entry.items():
            lines.append(f"| {source} ({figures['images']}) | {tiles} | {figures['mean']:.2f} | {figures['min']} | "
                         f"{figures['max']} | {figures['select_ms_median']:.2f} / {figures['select_ms_max']:.2f} |")
    timing = report["timing"]
    per_image = timing["per_image"]
    lines += ["", f"End to end per image ({timing['model']}; {timing['images']}, {timing['rounds']} rounds, "
                  "interleaved; ONNX Runtime, fp32):", "",
              "| run | views (mean) | engine graph ms | selection ms | read to findings ms |",
              "| --- | --- | --- | --- | --- |"]
    for name, label in (("all_views", "--all-views (the paper's 26)"), ("selection", "view selection")):
        entry = per_image[name]
        lines.append(f"| {label} | {entry['views']:.2f} | {entry['infer']:.1f} | {entry['select']:.2f} | "
                     f"{entry['total']:.1f} |")
    lines += ["", f"**Ratio selection / all views: {timing['ratio_total']:.3f} end to end, "
                  f"{timing['ratio_infer']:.3f} for the engine graph**; the selection itself is "
                  f"{100 * timing['selection_share']:.2f} % of the end-to-end time.", "",
              "Random weights: the times are the graph's, not a trained model's findings.  Phantoms: "
              "`trtmass synth --seed 200 --scale 0.25` with the realistic anatomy (breast size in cm, the "
              "18x24 or 24x30 cm detector that fits, CC/MLO outline, pectoral muscle; "
              "trt_mass/datasets/anatomy.py).  Real digital mammograms have tissue in 15-23 of the 25 tiles "
              "(issue #17's measurement on vendor files); mini-MIAS film keeps more views because the film "
              "base and labels around the breast are not air.", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--phantoms", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--head-width", type=int, default=64)
    parser.add_argument("--tile", default="256x224")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "views.json")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    report = run(args)
    save_report(report, args.out, args.results_md, markdown(report), BEGIN, END)


if __name__ == "__main__":
    main()
