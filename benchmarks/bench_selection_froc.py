"""FROC with and without tissue-aware view selection on the trained demo model (issue #17).

The bundled demo model was exported before view selection existed and its checkpoint is not in the
repository, so its network is rebuilt from the ONNX itself: every Conv weight is stored under its
parameter name; the exporter folded each backbone BatchNorm into the Conv before it, so the BN
becomes an identity plus the folded bias.  The rebuilt network is exported with `--view-selection
tissue` (same geometry, thresholds and operating points) and checked: with every view forced it
must find exactly what the bundled model finds.  Then `trtmass eval` logic runs on

    - the demo model's 50 held-out phantoms (`synth --seed 200 --scale 0.25 --anatomy fill`),
    - 50 realistic phantoms (`synth --seed 400 --scale 0.25`, breasts that leave air),
    - mini-MIAS fold 0 (the demo model's held-out patients), when ../shared/data is present,

each with the selection and with --all-views, and reports TPR at 0.5 / 1 / 2 FPPI and the views run.

    python -m benchmarks.bench_selection_froc           # about 10 minutes on 2 cores

Writes benchmarks/results/selection_froc.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_pipeline_vs_eager import save_report
from trt_mass.bench.machine import machine_facts

HERE = Path(__file__).resolve().parent
MIAS = HERE.parent.parent / "shared" / "data" / "mini-mias-train"
BEGIN, END = "<!-- bench_selection_froc:begin -->", "<!-- bench_selection_froc:end -->"
POINTS = ("0.5", "1.0", "2.0")


def network_from_engine_graph(path: Path) -> Any:
    """The torch RetinaNetNetwork whose weights an exported fp32 engine graph carries."""
    import onnx
    import torch
    from onnx import numpy_helper

    from trt_mass.metadata import read_onnx_metadata
    from trt_mass.model.network import RetinaNetNetwork

    metadata = read_onnx_metadata(path)
    network = RetinaNetNetwork(metadata.model_spec).eval()
    model = onnx.load(str(path))
    arrays = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    state = network.state_dict()
    loaded: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "Conv" or not node.input[1].startswith("network."):
            continue
        module = node.input[1].removeprefix("network.").removesuffix(".weight")
        state[f"{module}.weight"] = torch.from_numpy(arrays[node.input[1]].copy())
        bias = torch.from_numpy(arrays[node.input[2]].copy()) if len(node.input) > 2 else None
        if f"{module}.bias" in state:
            state[f"{module}.bias"] = bias
        else:  # a backbone conv whose BatchNorm the exporter folded in: BN = identity + the folded bias
            norm = _norm_after(module)
            eps = dict(network.named_modules())[norm].eps
            state[f"{norm}.weight"] = torch.ones_like(bias)
            state[f"{norm}.bias"] = bias
            state[f"{norm}.running_mean"] = torch.zeros_like(bias)
            state[f"{norm}.running_var"] = torch.full_like(bias, 1.0 - eps)
            loaded.add(norm)
        loaded.add(module)
    network.load_state_dict(state)
    convs = {name for name, m in network.named_modules() if isinstance(m, torch.nn.Conv2d)}
    if convs - loaded:
        raise SystemExit(f"{path}: no weights for {sorted(convs - loaded)[:3]}")
    return network.eval(), metadata


def _norm_after(conv: str) -> str:
    """backbone.body.layer1.0.conv2 -> ...bn2; ...downsample.0 -> ...downsample.1; body.conv1 -> body.bn1."""
    if conv.endswith("downsample.0"):
        return conv[: -len("0")] + "1"
    head, _, leaf = conv.rpartition(".")
    return f"{head}.bn{leaf.removeprefix('conv')}"


def export_with_selection(source: Path, output: Path, tissue_cover: str = "every") -> Path:
    from trt_mass.model.export import ExportOptions, export_onnx

    network, metadata = network_from_engine_graph(source)
    spec = dataclasses.replace(metadata.graph_spec, view_selection="tissue", tissue_cover=tissue_cover)
    export_onnx(network, f"onnx:{source.name}", ExportOptions(spec, operating_points=metadata.operating_points),
                output)
    return output


def check_same_findings(bundled: Path, selecting: Path, images: list[Path]) -> float:
    """The rebuilt model with every view forced finds what the bundled one finds: max |diff| over findings."""
    from trt_mass.inputs.files import read_image
    from trt_mass.pipeline import Detector

    worst = 0.0
    with Detector(bundled) as original, Detector(selecting, all_views=True) as rebuilt:
        for path in images:
            a = original.detect_mammogram(read_image(path))
            b = rebuilt.detect_mammogram(read_image(path))
            rows_a = sorted((f.score, f.x1, f.y1, f.x2, f.y2) for f in a.findings)
            rows_b = sorted((f.score, f.x1, f.y1, f.x2, f.y2) for f in b.findings)
            if len(rows_a) != len(rows_b):
                raise SystemExit(f"{path.name}: {len(rows_a)} findings from the bundled model, {len(rows_b)} rebuilt")
            if rows_a:
                worst = max(worst, float(np.abs(np.array(rows_a) - np.array(rows_b)).max()))
    if worst > 0.05:
        raise SystemExit(f"the rebuilt network differs from the bundled one (max |diff| {worst:.4f})")
    return worst


def evaluate(model: Path, data: str, folds: int | None, all_views: bool) -> dict[str, Any]:
    from trt_mass.datasets.labelled import load_dataset, patient_folds
    from trt_mass.eval.run import detect_samples, summarize

    samples = load_dataset(data)
    if folds:
        _, samples = patient_folds(samples, folds, 0, 0)
    started = time.perf_counter()
    images, refused = detect_samples(model, samples, all_views=all_views)
    seconds = time.perf_counter() - started
    summary = summarize(images, {s.image_id for s in samples if s.normal}, "iou", 0.2, 0)
    views = _views_run(model, samples, all_views)
    return {"images": len(images), "refused": len(refused), "lesions": summary["lesions"],
            "tpr_at_fppi": {p: summary["tpr_at_fppi"][p]["tpr"] for p in POINTS}, "views_mean": statistics.fmean(views),
            "seconds": round(seconds, 1)}


def _views_run(model: Path, samples: list[Any], all_views: bool) -> list[int]:
    from trt_mass.geometry import CanvasBuilder
    from trt_mass.inputs.files import read_image
    from trt_mass.metadata import read_onnx_metadata
    from trt_mass.tissue import TissueSpec, views_with_tissue

    spec = read_onnx_metadata(model).graph_spec
    if all_views:
        return [spec.geometry.num_views] * len(samples)
    builder = CanvasBuilder(spec.geometry, spec.canvas_dtype)
    counts = []
    for sample in samples:
        letterbox = builder.fill(read_image(sample.path).pixels, str(sample.path))
        counts.append(len(views_with_tissue(builder.canvas, letterbox.resized_hw, spec.geometry, TissueSpec.of(spec))))
    return counts


def synth(folder: Path, seed: int, anatomy: str) -> Path:
    subprocess.run([sys.executable, "-m", "trt_mass.cli", "synth", str(folder), "--count", "50", "--seed", str(seed),
                    "--scale", "0.25", "--anatomy", anatomy], check=True, capture_output=True)
    return folder


def run(args: argparse.Namespace) -> dict[str, Any]:
    from trt_mass.bundled import default_model

    started = time.time()
    bundled = args.model or default_model()
    with tempfile.TemporaryDirectory(prefix="bench-selection-froc-") as scratch:
        work = Path(scratch)
        selecting = export_with_selection(bundled, work / "demo-tissue.onnx", args.tissue_cover)
        sets: dict[str, tuple[str, int | None]] = {
            "50 held-out phantoms (fill, seed 200)": (str(synth(work / "fill", 200, "fill")), None),
            "50 realistic phantoms (seed 400)": (str(synth(work / "realistic", 400, "realistic")), None),
        }
        if (MIAS / "images").is_dir():
            sets["mini-MIAS fold 0 of 5 (held out)"] = (f"mias:{MIAS}", 5)
        check_images = sorted(Path(sets["50 realistic phantoms (seed 400)"][0]).glob("*.dcm"))[: args.check]
        worst = check_same_findings(bundled, selecting, check_images)
        results = {}
        for name, (data, folds) in sets.items():
            results[name] = {mode: evaluate(selecting, data, folds, mode == "all_views")
                             for mode in ("selection", "all_views")}
            print(name, {m: r["tpr_at_fppi"] for m, r in results[name].items()}, flush=True)
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
            "machine": machine_facts(), "model": str(bundled), "tissue_cover": args.tissue_cover,
            "command": "python -m benchmarks.bench_selection_froc " + " ".join(sys.argv[1:]),
            "rebuilt_max_abs_diff": worst, "check_images": len(check_images),
            "results": results}


def markers(tag: str) -> tuple[str, str]:
    if not tag:
        return BEGIN, END
    return f"<!-- bench_selection_froc:{tag}:begin -->", f"<!-- bench_selection_froc:{tag}:end -->"


def markdown(report: dict[str, Any], tag: str = "") -> str:
    machine = report["machine"]
    begin, end = markers(tag)
    cover = report.get("tissue_cover", "every")
    lines = [begin, "## FROC with and without view selection, trained demo model (issue #17)"
             + (f", {tag}" if tag else ""), "",
             f"`{report.get('command', 'python -m benchmarks.bench_selection_froc')}` — {report['created']}, "
             f"{machine.get('cpu_model')}, {report['seconds']:.0f} s.  The demo model's network "
             f"({Path(report.get('model', 'bundled')).name}) rebuilt from its ONNX and exported with "
             f"`--view-selection tissue --tissue-cover {cover}`; with every view forced it finds what the model "
             "finds "
             f"(max |diff| {report['rebuilt_max_abs_diff']:.2g} over the findings of {report['check_images']} "
             "phantoms).  Hit: IoU >= 0.2.", "",
             "| images | masses | run | views (mean) | TPR @ 0.5 FPPI | @ 1 FPPI | @ 2 FPPI | masses found @ 1 FPPI |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, modes in report["results"].items():
        for mode, label in (("all_views", "all 26 views"), ("selection", "view selection")):
            entry = modes[mode]
            tpr = entry["tpr_at_fppi"]
            lines.append(f"| {name} | {entry['lesions']} | {label} | {entry['views_mean']:.1f} | "
                         + " | ".join(f"{tpr[p]:.3f}" for p in POINTS)
                         + f" | {round(tpr['1.0'] * entry['lesions'])} |")
    lines += ["", "Target: with selection within one mass of the FROC without it.", end]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", type=int, default=4, help="phantoms for the rebuilt-equals-bundled check")
    parser.add_argument("--model", type=Path, default=None, help="an engine-graph ONNX [default: the bundled model]")
    parser.add_argument("--tissue-cover", choices=("every", "central"), default="every")
    parser.add_argument("--tag", default="", help="a section and JSON of its own (e.g. central)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "selection_froc.json")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    report = run(args)
    out = args.out.with_name(f"{args.out.stem}_{args.tag}{args.out.suffix}") if args.tag else args.out
    save_report(report, out, args.results_md, markdown(report, args.tag), *markers(args.tag))


if __name__ == "__main__":
    main()
