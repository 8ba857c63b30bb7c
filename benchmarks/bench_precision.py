"""Precision variants of the bundled demo model on ONNX Runtime: time per mammogram and TPR at 1 FPPI.

fp32 (the bundled model), fp16, int8 for the CPU (u8 activations) and int8 for TensorRT (symmetric
Q/DQ), all measured in one run on the same held-out phantoms and the same machine.  The int8
variants are calibrated on a separate phantom set through `trtmass calib make`.  Writes
benchmarks/results/precision.json and the section of RESULTS.md between its markers.

    python -m benchmarks.bench_precision            # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_graph_overhead import machine_facts
from trt_mass.bundled import default_model
from trt_mass.datasets.labelled import load_dataset
from trt_mass.eval.compare import agreement
from trt_mass.eval.froc import ImageResult
from trt_mass.eval.run import summarize
from trt_mass.inputs.files import read_image
from trt_mass.metadata import read_onnx_metadata
from trt_mass.pipeline import Detector
from trt_mass.precision.calib import make_manifest
from trt_mass.precision.quantize import QuantizeOptions, quantize_model

HERE = Path(__file__).parent
BEGIN, END = "<!-- bench_precision:begin -->", "<!-- bench_precision:end -->"
VARIANTS = (("fp16", "tensorrt"), ("int8", "cpu"), ("int8", "tensorrt"))


def synth(folder: Path, count: int, seed: int) -> None:
    if not (folder / "truth.csv").is_file():
        subprocess.run([sys.executable, "-m", "trt_mass.cli", "synth", str(folder), "--count", str(count),
                        "--seed", str(seed), "--scale", "0.25", "--anatomy", "fill"], check=True, capture_output=True)


def measure(model: Path, data: str, threads: int | None) -> tuple[list[ImageResult], list[float]]:
    """Findings and per-mammogram pipeline time (canvas + graph + findings; files are read beforehand)."""
    samples = load_dataset(data)
    mammograms = [read_image(s.path) for s in samples]
    results, times_ms = [], []
    with Detector(model, threads=threads) as detector:
        detector.detect(mammograms[0].pixels)  # warm-up
        for sample, mammogram in zip(samples, mammograms, strict=True):
            started = time.perf_counter()
            findings = detector.detect(mammogram.pixels, pixel_spacing_mm=mammogram.pixel_spacing_mm).findings
            times_ms.append(1000 * (time.perf_counter() - started))
            boxes = np.array([[f.x1, f.y1, f.x2, f.y2] for f in findings], dtype=np.float64).reshape(-1, 4)
            scores = np.array([f.score for f in findings], dtype=np.float64)
            results.append(ImageResult(sample.image_id, sample.patient_id, boxes, scores, sample.boxes))
    return results, times_ms


def section(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        BEGIN,
        "## Precision variants on ONNX Runtime (issue #5)",
        "",
        f"`{result['command']}` — {result['date']}, {machine.get('cpu')} ({machine.get('logical_cores')} CPUs), "
        f"onnxruntime {machine.get('versions', {}).get('onnxruntime', '?')}. Bundled demo model (resnet18, head 64, "
        f"tile 256x224); {result['test_images']} held-out phantoms ({result['lesions']} masses, `synth --seed 200`); "
        f"int8 calibrated on {result['calibration']['images']} other phantoms (`synth --seed 300`, manifest hash "
        f"`{result['calibration']['content_sha256'][:12]}`). Time: canvas + graph + findings per mammogram "
        "(files read beforehand), median of all images after one warm-up. TensorRT-target variants run here on "
        "ONNX Runtime's CPU kernels: their times say nothing about TensorRT; their TPR does say what the engine "
        "is built from.",
        "",
        "| variant | target | median ms / mammogram | x fp32 | TPR @ 1 FPPI [95 % CI] | TPR @ 0.5 FPPI | "
        "findings matched to fp32 (Dice) | max score diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = result["variants"]["fp32"]["median_ms"]
    for name, row in result["variants"].items():
        ci = row["tpr_at_1fppi_ci95"]
        agreement_row = row.get("agreement")
        lines.append(
            f"| {name} | {row['target']} | {row['median_ms']:.0f} | {row['median_ms'] / base:.2f} | "
            f"{row['tpr_at_1fppi']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}] | {row['tpr_at_0.5fppi']:.3f} | "
            + (f"{agreement_row['dice']:.3f} | {agreement_row['score_abs_diff']['max']:.3f} |"
               if agreement_row else "— | — |"))
    lines += ["", "Findings matched: fp32's and the variant's findings paired one to one at IoU >= 0.5 (Dice of "
              "the two sets); score diff over the pairs. 1 of 69 masses = 0.014 TPR, so differences of one or two "
              "masses are within the noise of this set. fp16 has no cpu-target row: its graph does not depend on the "
              "target (the fp16 network runs on ONNX Runtime's CPU kernels through inserted casts, hence no speed-up "
              "here). Full figures: `results/precision.json`.", END]
    return "\n".join(lines)


def update_results_md(path: Path, text_section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    text = pattern.sub(lambda _: text_section, text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + text_section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-count", type=int, default=50)
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--methods", default="minmax,percentile",
                        help="int8 calibration methods, comma-separated (minmax, entropy, percentile)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "precision")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    work = args.workdir
    synth(work / "test", args.test_count, 200)
    synth(work / "calib-pool", 2 * args.calib_count, 300)
    calibration = make_manifest(str(work / "calib-pool"), args.calib_count, 0, work / "calib" / "phantoms.toml")
    methods = args.methods.split(",")
    models: dict[str, tuple[Path, str]] = {"fp32": (default_model(), "any")}
    made_s: dict[str, float] = {}
    for precision, target in VARIANTS:
        for method in methods if precision == "int8" else ["-"]:
            name = f"{precision} ({target})" if precision == "fp16" else f"{precision} ({target}, {method})"
            path = work / f"demo-{precision}-{target}{'' if method == '-' else '-' + method}.onnx"
            started = time.perf_counter()
            options = QuantizeOptions(precision, target, "minmax" if method == "-" else method,
                                      cache_dir=work / "calib" / "cache")
            quantize_model(default_model(), path, options, calibration if precision == "int8" else None,
                           progress=True)
            made_s[name] = time.perf_counter() - started
            print(f"{name}: made in {made_s[name]:.0f} s", file=sys.stderr)
            models[name] = (path, target)
    data = str(work / "test")
    normal_ids = {s.image_id for s in load_dataset(data) if s.normal}
    rows: dict[str, Any] = {}
    reference: list[ImageResult] = []
    for name, (path, target) in models.items():
        results, times_ms = measure(path, data, args.threads)
        summary = summarize(results, normal_ids, "iou", 0.2, bootstrap=1000)
        reference = reference or results
        rows[name] = {
            "model": str(path), "model_id": read_onnx_metadata(path).model_id, "target": target,
            "median_ms": statistics.median(times_ms), "mean_ms": statistics.fmean(times_ms),
            "min_ms": min(times_ms), "max_ms": max(times_ms),
            "tpr_at_1fppi": summary["tpr_at_fppi"]["1.0"]["tpr"],
            "tpr_at_1fppi_ci95": summary["tpr_at_fppi"]["1.0"]["ci95"],
            "tpr_at_0.5fppi": summary["tpr_at_fppi"]["0.5"]["tpr"],
            "tpr_at_fppi": summary["tpr_at_fppi"],
            "agreement": None if name == "fp32" else agreement(reference, results, 0.5),
            "made_in_s": made_s.get(name),
        }
        print(f"{name}: {rows[name]['median_ms']:.0f} ms, TPR@1FPPI {rows[name]['tpr_at_1fppi']:.3f}",
              file=sys.stderr)
    result = {
        "benchmark": "precision",
        "command": "python -m benchmarks.bench_precision " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(),
        "test_images": args.test_count,
        "lesions": summarize(reference, normal_ids, "iou", 0.2, 0)["lesions"],
        "calibration": {"images": len(calibration.images), "content_sha256": calibration.content_sha256,
                        "methods": methods, "strata": calibration.strata},
        "variants": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision.json").write_text(json.dumps(result, indent=2) + "\n")
    update_results_md(HERE / "RESULTS.md", section(result))
    print(section(result))


if __name__ == "__main__":
    main()
