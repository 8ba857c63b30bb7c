"""INT8 at equal FROC (issue #17): the demo model's INT8 variants with and without `--keep-fp32 auto`.

For both INT8 targets (cpu: u8 activations for ONNX Runtime; tensorrt: symmetric Q/DQ) the bundled demo
model is quantized on the calibration set of bench_precision (32 phantoms, `synth --seed 300 --anatomy
fill`) plainly and with `--keep-fp32 auto`, and each variant goes through `trtmass compare` against the
fp32 model on the demo model's 50 held-out phantoms (`synth --seed 200 --anatomy fill`) with the gate at
--gate (0.01).  Also the per-mammogram time of each variant on ONNX Runtime (TensorRT-target variants
run on ONNX Runtime's CPU kernels here: their times say nothing about TensorRT).

    python -m benchmarks.bench_int8_parity           # about 10 minutes on 2 cores
    python -m benchmarks.bench_int8_parity --variants cpu:auto@head,tensorrt:auto@head --tag head

A variant is TARGET:KEEP[@AMONG]: KEEP is `-` (nothing kept) or a `--keep-fp32` value, AMONG the
`--keep-fp32-among` prefixes (joined with `+`).

Writes benchmarks/results/int8_parity.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline_vs_eager import save_report
from benchmarks.bench_precision import synth
from trt_mass.bench.machine import machine_facts

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- bench_int8_parity:begin -->", "<!-- bench_int8_parity:end -->"


DEFAULT_VARIANTS = "cpu:-,cpu:auto,tensorrt:-,tensorrt:auto"


def parse_variants(text: str) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """"cpu:auto@head+backbone.fpn,..." -> [("cpu", "auto", ("head", "backbone.fpn")), ...]."""
    variants = []
    for item in text.split(","):
        target, _, rest = item.partition(":")
        keep, _, among = rest.partition("@")
        if target not in ("cpu", "tensorrt") or not keep:
            raise SystemExit(f"--variants: {item!r} is not TARGET:KEEP[@AMONG] with TARGET cpu or tensorrt")
        variants.append((target, None if keep == "-" else keep, tuple(a for a in among.split("+") if a)))
    return variants


def make_variant(target: str, keep: str | None, work: Path, calibration: Any, images: int,
                 among: tuple[str, ...] = ()) -> tuple[Path, Any, float]:
    from trt_mass.bundled import default_model
    from trt_mass.precision.quantize import QuantizeOptions, quantize_model
    from trt_mass.precision.sensitivity import KeepFp32

    suffix = ("-keep-" + keep if keep else "") + ("-among-" + "+".join(among) if among else "")
    path = work / f"demo-int8-{target}{suffix}.onnx"
    started = time.perf_counter()
    options = QuantizeOptions("int8", target, cache_dir=work / "calib" / "cache",
                              keep_fp32=KeepFp32.parse(keep, images=images, among=among))
    metadata = quantize_model(default_model(), path, options, calibration, progress=True)
    return path, metadata, time.perf_counter() - started


def compare(variant: Path, data: str, gate: float, out: Path) -> dict[str, Any]:
    from trt_mass.bundled import default_model
    from trt_mass.eval.compare import CompareConfig, run_compare

    return run_compare(CompareConfig(default_model(), variant, data, out, max_tpr_drop=gate))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from trt_mass.precision.calib import make_manifest

    started = time.time()
    work = args.workdir
    synth(work / "test", 50, 200)
    synth(work / "calib-pool", 64, 300)
    calibration = make_manifest(str(work / "calib-pool"), 32, 0, work / "calib" / "phantoms.toml")
    rows = []
    for target, keep, among in parse_variants(args.variants):
        path, metadata, seconds = make_variant(target, keep, work, calibration, args.sensitivity_images, among)
        report = compare(path, str(work / "test"), args.gate, work / f"compare-{path.stem}")
        kept = metadata.quantization["keep_fp32"]
        label = (keep or "-") + (f" among {', '.join(among)}" if among else "")
        row = {"target": target, "keep_fp32": label, "fp32_layers": kept["groups"], "auto": kept["auto"],
               "made_in_s": round(seconds, 1), "gate": report["gate"],
               "tpr_at_fppi": report["accuracy"]["tpr_at_fppi"], "lesions": report["accuracy"]["lesions"],
               "agreement": {k: report["agreement"][k] for k in ("matched", "only_a", "only_b", "dice")},
               "ms_per_image": {name: 1000 * model["seconds_per_image"]
                                for name, model in report["models"].items()}}
        rows.append(row)
        print(f"int8 {target} keep {keep}: drop {row['gate']['drop']:+.3f} "
              f"({'passed' if row['gate']['passed'] else 'FAILED'}), fp32 layers {row['fp32_layers']}",
              file=sys.stderr, flush=True)
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
            "machine": machine_facts(), "gate": args.gate, "calibration": {
                "images": len(calibration.images), "content_sha256": calibration.content_sha256},
            "sensitivity_images": args.sensitivity_images, "command": "python -m benchmarks.bench_int8_parity "
            + " ".join(sys.argv[1:]), "rows": rows}


def markers(tag: str) -> tuple[str, str]:
    if not tag:
        return BEGIN, END
    return BEGIN.replace(":begin", f"_{tag}:begin"), END.replace(":end", f"_{tag}:end")


def markdown(report: dict[str, Any], tag: str = "") -> str:
    machine = report["machine"]
    begin, end = markers(tag)
    lines = [begin, "## INT8 at equal FROC: layers kept in fp32 (issue #17)" + (f", {tag}" if tag else ""), "",
             f"`{report.get('command', 'python -m benchmarks.bench_int8_parity')}` — {report['created']}, "
             f"{machine.get('cpu_model')}, "
             f"{report['seconds'] / 60:.0f} min.  Bundled demo model; calibration: "
             f"{report['calibration']['images']} phantoms (`synth --seed 300 --anatomy fill`, content hash "
             f"`{report['calibration']['content_sha256'][:12]}`); sensitivity pass on the first "
             f"{report['sensitivity_images']} of them; `trtmass compare` against fp32 on the 50 held-out phantoms "
             f"(`--seed 200 --anatomy fill`), gate {report['gate']} TPR at 1 FPPI.", "",
             "| target | --keep-fp32 | layers in fp32 | TPR @ 0.5 / 1 / 2 FPPI (fp32 -> int8) | drop @ 1 FPPI | gate "
             "| findings matched (Dice) | ms / mammogram (fp32 / int8, ORT CPU) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["rows"]:
        tpr = row["tpr_at_fppi"]
        points = " / ".join(f"{tpr[p]['a']:.3f} -> {tpr[p]['b']:.3f}" for p in ("0.5", "1.0", "2.0"))
        layers = ", ".join(f"`{g}`" for g in row["fp32_layers"]) or "none"
        gate = row["gate"]
        lines.append(f"| {row['target']} | {row['keep_fp32']} | {layers} | {points} | {gate['drop']:+.3f} | "
                     f"{'passed' if gate['passed'] else '**failed**'} | {row['agreement']['dice']:.3f} | "
                     f"{row['ms_per_image']['a']:.0f} / {row['ms_per_image']['b']:.0f} |")
    autos = [row for row in report["rows"] if row["auto"]]
    for row in autos:
        ranked = ", ".join(f"`{g}` {e:.4f}" for g, e in row["auto"]["most_sensitive"][:4])
        lines.append("")
        lines.append(f"{row['target']}: score error (mean |score diff| over candidate anchors) with every layer in "
                     f"INT8 {row['auto']['all_int8_score_error']:.4f}, with the kept layers "
                     f"{row['auto']['score_error_with_kept'][-1]:.4f}; most sensitive alone: {ranked}.")
    lines += ["", "1 of the 69 masses is 0.014 TPR: a 0.01 gate means no mass lost at 1 FPPI.", end]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate", type=float, default=0.01)
    parser.add_argument("--sensitivity-images", type=int, default=4)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="TARGET:KEEP[@AMONG],... (see above)")
    parser.add_argument("--tag", default="", help="a second results section and JSON file")
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "int8-parity")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "int8_parity.json")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    report = run(args)
    out = args.out if not args.tag else args.out.with_name(f"{args.out.stem}_{args.tag}.json")
    save_report(report, out, args.results_md, markdown(report, args.tag), *markers(args.tag))


if __name__ == "__main__":
    main()
