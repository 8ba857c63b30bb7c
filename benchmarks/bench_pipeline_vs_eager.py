"""The whole pipeline against the paper's way of running the same weights, end to end per mammogram.

Ours: `trtmass bench`'s pipeline (read + decode, canvas, the engine graph on ONNX Runtime, findings +
JSON) with the fp32 model as exported, its fp32 cpu-target variant (the same fp32 network with its large
3x3 convolutions by Winograd F(4x4,3x3): `trtmass quantize MODEL --precision fp32 --target cpu`) and its
int8 (cpu target) variant.  Baseline, measured in the
same process on the same files, interleaved: PyTorch eager, the 26 views one forward pass after another,
per-view decode + NMS, merge in Python (trt_mass.bench.baseline).  With a CUDA GPU also: the PyTorch
reference graph on the GPU against the same baseline on the GPU; with --trt ENGINE a real TensorRT run.

    python -m benchmarks.bench_pipeline_vs_eager [--model fp32.onnx] [--int8 int8.onnx] [--runs 5]

Without --model it exports a resnet50 (head 256) with random weights at the default tile 768x640 into
--workdir (reused on later runs).  The int8 variant is made by the quantize command, e.g.
`trtmass quantize MODEL --precision int8 --target cpu --calib calib/NAME.toml -o model-int8.onnx`.
Writes benchmarks/results/pipeline_vs_eager.json (every report in full) and the section between the
markers in benchmarks/RESULTS.md.  Targets: int8 <= 0.30 x and fp32 <= 0.75 x the baseline, end to end.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from trt_mass.bench.report import STAGE_KEYS, STAGE_LABELS
from trt_mass.bench.run import BenchConfig, run_bench

HERE = Path(__file__).parent
TARGETS = {"fp32": 0.75, "int8": 0.30}
BEGIN, END = "<!-- bench_pipeline_vs_eager:begin -->", "<!-- bench_pipeline_vs_eager:end -->"


def export_random(path: Path, arch: str, head_width: int, tile: str, prior: float,
                  view_selection: str = "all", tissue_cover: str = "every") -> Path:
    """A random-weights engine graph at `tile` (reused when the file exists with that spec)."""
    from trt_mass.model.checkpoint import random_network
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry, parse_hw

    if path.is_file():
        print(f"reusing {path}", file=sys.stderr)
        return path
    tile_h, tile_w = parse_hw(tile)
    started = time.perf_counter()
    network = random_network(ModelSpec(arch=arch, head_width=head_width), 0, prior)
    options = ExportOptions(GraphSpec(geometry=TileGeometry(tile_h, tile_w), view_selection=view_selection,
                                      tissue_cover=tissue_cover))
    export_onnx(network, f"random:seed=0,prior={prior}", options, path)
    print(f"exported {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def make_int8(model: Path, workdir: Path, count: int, scale: float) -> Path:
    """The int8 cpu-target variant of `model`, calibrated on phantoms the benchmark does not time (seed 500)."""
    from trt_mass.datasets.synth import write_phantoms
    from trt_mass.metadata import file_sha256, read_onnx_metadata
    from trt_mass.precision.calib import make_manifest
    from trt_mass.precision.quantize import QuantizeOptions, quantize_model

    output = model.with_name(model.stem + "-int8-cpu.onnx")
    if output.exists() and read_onnx_metadata(output).quantization.get("source_onnx_sha256") == file_sha256(model):
        return output
    pool = workdir / "calib-phantoms"
    write_phantoms(pool, count, seed=500, scale=scale, normal_fraction=0.25)
    calibration = make_manifest(str(pool), count, 0, workdir / "calib" / "bench-phantoms.toml")
    started = time.perf_counter()
    quantize_model(model, output, QuantizeOptions("int8", "cpu"), calibration, progress=True)
    print(f"made {output} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return output


def make_fp32_cpu(model: Path) -> Path:
    """The fp32 cpu-target variant of `model` (3x3 convolutions by Winograd), made by the quantize command's code."""
    from trt_mass.metadata import file_sha256, read_onnx_metadata
    from trt_mass.precision.quantize import QuantizeOptions, quantize_model

    output = model.with_name(model.stem + "-fp32-cpu.onnx")
    if output.exists() and read_onnx_metadata(output).quantization.get("source_onnx_sha256") == file_sha256(model):
        return output
    started = time.perf_counter()
    metadata = quantize_model(model, output, QuantizeOptions("fp32", "cpu"))
    print(f"made {output} in {time.perf_counter() - started:.0f} s ({metadata.quantization['rewritten_convs']} "
          "convolutions by Winograd)", file=sys.stderr)
    return output


def progress(label: str) -> Any:
    from trt_mass.progress import ProgressLine

    line = ProgressLine()

    def report(done: int, total: int, what: str) -> None:
        line.update(f"{label}: {done}/{total} ({what})")
        if done == total:
            line.close()

    return report


def summary_row(name: str, report: dict[str, Any]) -> dict[str, Any]:
    ours, baseline = report["pipelines"]["ours"], report["pipelines"]["baseline"]
    ratio = report["ratios"]["end_to_end"]
    target = TARGETS.get(report["model"]["precision"]) if ours["backend"] == "ort" else None
    # Round i of ours and of the baseline ran back to back on the same input: their ratio cancels slow drifts
    # of a shared machine that a ratio of two medians does not.
    paired = [a / b for a, b in zip(ours["end_to_end"]["samples_ms"], baseline["end_to_end"]["samples_ms"],
                                    strict=True)]
    return {
        "name": name,
        "backend": ours["backend"], "device": ours["device"], "precision": report["model"]["precision"],
        "model_id": report["model"]["model_id"],
        "ours_median_ms": ours["end_to_end"]["stats"]["median"],
        "baseline_median_ms": baseline["end_to_end"]["stats"]["median"],
        "ratio": ratio,
        "paired_ratios": paired,
        "paired_ratio_median": statistics.median(paired),
        "paired_ratio_range": [min(paired), max(paired)],
        "stage_ratios": report["ratios"]["stages"],
        "ours_stage_medians_ms": {k: s["stats"] and s["stats"]["median"] for k, s in ours["stages"].items()},
        "baseline_stage_medians_ms": {k: s["stats"] and s["stats"]["median"] for k, s in baseline["stages"].items()},
        "target": target,
        "target_met": None if target is None or ratio is None else (ratio <= target
                                                                    and statistics.median(paired) <= target),
        "warnings": report["warnings"],
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def results_section(result: dict[str, Any]) -> str:
    """The RESULTS.md section (between the markers) for one run of this script."""
    first = next(iter(result["reports"].values()))
    machine, model, settings = first["machine"], first["model"], first["settings"]
    inputs = settings["inputs"]
    gpus = ", ".join(f"{g['name']} (driver {g['driver']})" for g in machine["gpus"]) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if k != "trt_mass")
    geometry = model["geometry"]
    baseline = first["pipelines"]["baseline"]
    lines = [
        BEGIN,
        "## Whole pipeline against the paper's way of running it (issue #7: `trtmass bench`)",
        "",
        f"`{result['command']}`",
        "",
        f"Machine: {machine['cpu_model']}, {machine['logical_cores']} logical / {machine['physical_cores'] or '?'} "
        f"physical cores ({machine['usable_cores']} usable), {gpus}, Python {machine['python']}, {versions}. "
        f"Load average at the start: {machine.get('load_average_at_start')}.",
        f"Model: {model['model_spec']['arch']}, head width {model['model_spec']['head_width']}, init "
        f"`{model['init']}` (weights sha256 {model['weights_sha256'][:16]}…), tile {geometry['tile_hw'][0]} x "
        f"{geometry['tile_hw'][1]}, grid {geometry['grid']}, {geometry['views']} views, paper thresholds.",
        f"Inputs: {inputs['count']} synthetic phantoms (scale {inputs['scale']}, seed {inputs['seed']}; sizes "
        f"{sorted({tuple(hw) for hw in inputs['images_hw'].values()})}), DICOM read from disk for every mammogram. "
        f"{settings['warmup']} warm-up and {settings['runs']} timed mammograms per pipeline, ours and the baseline "
        "interleaved in one process, order alternating. Baseline: PyTorch eager, the 26 views one forward pass "
        f"after another, per-view decode + torchvision NMS, merge in Python ({baseline['device']}, "
        f"{baseline.get('torch_threads')} torch threads). Date: {result['date']}.",
        "",
        "End-to-end medians per mammogram (read + decode, canvas, inference, findings + JSON):",
        "",
        "| ours | ours | baseline | ratio of medians | median of paired ratios [range] | target (both ratios) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["summary"]:
        target = ("" if row["target"] is None else
                  f"<= {row['target']:.2f}: {'met' if row['target_met'] else '**not met**'}")
        ratio = "n/a" if row["ratio"] is None else f"**{row['ratio']:.3f}**"
        low, high = row["paired_ratio_range"]
        lines.append(f"| {row['name']} ({row['backend']}, {row['device']}) | {_ms(row['ours_median_ms'])} | "
                     f"{_ms(row['baseline_median_ms'])} | {ratio} | {row['paired_ratio_median']:.3f} "
                     f"[{low:.2f}, {high:.2f}] | {target} |")
    lines += ["", "Per stage (medians, ours / baseline):", "",
              "| ours | " + " | ".join(STAGE_LABELS[k] for k in STAGE_KEYS) + " |",
              "| --- |" + " --- |" * len(STAGE_KEYS)]
    for row in result["summary"]:
        cells = []
        for key in STAGE_KEYS:
            mine, theirs = row["ours_stage_medians_ms"][key], row["baseline_stage_medians_ms"][key]
            ratio = row["stage_ratios"][key]
            cells.append("n/a" if mine is None or theirs is None else
                         f"{_ms(mine)} / {_ms(theirs)} ({ratio:.2f})" if ratio is not None else f"{_ms(mine)} / ?")
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    for name, report in result["reports"].items():
        quantization = report["model"]["quantization"]
        if "rewritten_convs" in quantization:
            rule = quantization["rule"]
            lines += ["", f"{name}: the same fp32 weights with {quantization['rewritten_convs']} of "
                      f"{quantization['rewritten_convs'] + quantization['direct_convs']} convolutions (3x3, stride 1, "
                      f">= {rule['min_in_channels']} channels, >= {rule['min_output_pixels']} output pixels) computed "
                      f"by {quantization['algorithm']}: fp32 with another rounding order, not a lower precision "
                      "(`trtmass quantize MODEL --precision fp32 --target cpu`). The fp32 row is the export as it is."]
    notes = [f"{row['name']}: {w}" for row in result["summary"] for w in row["warnings"]]
    if notes:
        lines += ["", "Warnings of these runs:", ""] + [f"- {w}" for w in notes]
    if not any(row["backend"] == "trt" for row in result["summary"]):
        lines += ["", "No TensorRT figure: none without a real TensorRT run (`--trt ENGINE` on a GPU PC)."]
    findings = [n for report in result["reports"].values()
                for n in report["pipelines"]["ours"].get("findings_per_mammogram", [])]
    if findings and max(findings) == 0:
        lines += ["", "These random weights (the paper's prior 0.01) find nothing: decode, NMS and merge have no "
                  "candidates in either pipeline, so the ratios are those of the network passes."]
    lines += ["", "Raw timings, machine facts and every report in full: `results/pipeline_vs_eager.json`.", END]
    return "\n".join(lines)


def update_results_md(path: Path, section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the section between `begin` and `end` in RESULTS.md (append it when absent)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.search(text)
    text = pattern.sub(lambda _: section, text) if found else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def save_report(report: dict[str, Any], out: Path, results_md: Path, section: str, begin: str, end: str) -> None:
    """Write `report` as JSON to `out`, its `section` into RESULTS.md, and print the section."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    update_results_md(results_md, section, begin, end)
    print(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="fp32 engine-graph ONNX (default: export one)")
    parser.add_argument("--int8", type=Path, default=None,
                        help="its int8 cpu-target variant (default: made here with calib make + quantize)")
    parser.add_argument("--fp32-cpu", type=Path, default=None,
                        help="its fp32 cpu-target variant (default: made here with quantize --precision fp32)")
    parser.add_argument("--calib-count", type=int, default=4, help="phantoms that calibrate the int8 variant made here")
    parser.add_argument("--trt", type=Path, default=None, help="a TensorRT engine of the model (GPU PC only)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint of a trained --model")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--head-width", type=int, default=256)
    parser.add_argument("--tile", default="768x640")
    parser.add_argument("--prior", type=float, default=0.01, help="class prior of the random weights (paper: 0.01)")
    parser.add_argument("--synthetic", type=int, default=3, help="full-size phantoms, read from disk every run")
    parser.add_argument("--scale", type=float, default=1.0, help="phantom size (1.0: vendors' native sizes)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime and torch threads (default: theirs)")
    parser.add_argument("--workdir", type=Path, default=HERE / "out", help="where an exported model is kept")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    model = args.model or export_random(
        args.workdir / f"{args.arch}-h{args.head_width}-{args.tile}-random-prior{args.prior}.onnx",
        args.arch, args.head_width, args.tile, args.prior)
    common: dict[str, Any] = dict(synthetic=args.synthetic, synthetic_scale=args.scale, seed=0, warmup=args.warmup,
                                  runs=args.runs, threads=args.threads, baseline=True, checkpoint=args.checkpoint)
    plan: list[tuple[str, BenchConfig]] = [("fp32", BenchConfig(model=model, backend="ort", **common))]
    fp32_cpu = args.fp32_cpu or make_fp32_cpu(model)
    plan.append(("fp32 cpu (Winograd)", BenchConfig(model=fp32_cpu, backend="ort", baseline_model=model, **common)))
    int8 = args.int8 or make_int8(model, args.workdir, args.calib_count, args.scale)
    plan.append(("int8", BenchConfig(model=int8, backend="ort", baseline_model=model, **common)))
    import torch

    if torch.cuda.is_available():
        plan.append(("fp32 torch (GPU)", BenchConfig(model=model, backend="torch", device="cuda",
                                                     baseline_device="cuda", **common)))
    if args.trt is not None:
        plan.append(("TensorRT", BenchConfig(model=args.trt, backend="trt", baseline_model=model,
                                             baseline_device="cuda", **common)))
    reports: dict[str, Any] = {}
    for name, config in plan:
        reports[name] = run_bench(config, progress=progress(name))
        row = summary_row(name, reports[name])
        print(f"{name}: ours {_ms(row['ours_median_ms'])}, baseline {_ms(row['baseline_median_ms'])}, ratio "
              f"{row['ratio']:.3f}" + ("" if row["target"] is None else
                                       f" (target <= {row['target']}: {'met' if row['target_met'] else 'NOT met'})"))
    result = {
        "benchmark": "pipeline_vs_eager",
        "command": "python -m benchmarks.bench_pipeline_vs_eager " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "targets": TARGETS,
        "summary": [summary_row(name, report) for name, report in reports.items()],
        "reports": reports,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "pipeline_vs_eager.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    update_results_md(args.results_md, results_section(result))
    print(f"wrote {target} and the section in {args.results_md}")


if __name__ == "__main__":
    main()
