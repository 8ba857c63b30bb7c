"""Direct against Winograd F(4x4,3x3) for single 3x3 convolutions on ONNX Runtime: the figures behind
trt_mass.precision.winograd.WinogradRule (which convolutions the fp32 cpu variant rewrites).

    python -m benchmarks.bench_winograd [--batch 8] [--repeats 5]

Shapes are those of the RetinaNet at the default tile 768x640 (P3 96x80 ... P6 12x10 outputs, the
backbone's stages, the prediction layers).  Each convolution follows a 1x1 convolution (ONNX Runtime's
blocked layout flows into it as in the network) and is timed from ONNX Runtime's per-node profile:
the Conv node direct, the nodes of its rewrite by trt_mass.precision.winograd, best of --repeats after a warm-up.
Writes benchmarks/results/winograd.json and the section between the markers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.precision.winograd import WinogradRule, rewrite_model

HERE = Path(__file__).parent
BEGIN, END = "<!-- bench_winograd:begin -->", "<!-- bench_winograd:end -->"
# (label, in channels, out channels, output height, output width)
SHAPES = [
    ("head / FPN at P3", 256, 256, 96, 80),
    ("head / FPN at P4, layer3", 256, 256, 48, 40),
    ("head / FPN at P5", 256, 256, 24, 20),
    ("head at P6", 256, 256, 12, 10),
    ("layer4", 512, 512, 24, 20),
    ("layer2", 128, 128, 96, 80),
    ("layer1", 64, 64, 192, 160),
    ("box predictor at P3", 256, 36, 96, 80),
    ("class predictor at P3", 256, 9, 96, 80),
]


def conv_model(batch: int, channels: int, out_channels: int, height: int, width: int) -> Any:
    """x -> 1x1 conv -> ReLU -> the measured 3x3 conv -> ReLU -> y (the 1x1 conv is never rewritten)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, out: int, inp: int, kernel: int) -> Any:
        values = rng.standard_normal((out, inp, kernel, kernel)) / np.sqrt(kernel * kernel * inp)
        return numpy_helper.from_array(values.astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["x", "pre"], ["a"], name="pre"), helper.make_node("Relu", ["a"], ["a_r"]),
             helper.make_node("Conv", ["a_r", "w", "b"], ["m"], name="measured", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["m"], ["y"], name="relu")]
    initializers = [weight("pre", channels, channels, 1), weight("w", out_channels, channels, 3),
                    numpy_helper.from_array(rng.standard_normal(out_channels).astype(np.float32), "b")]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, out_channels, height, width])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _measured_ms(profile: Path, runs: int) -> float:
    """Best per-run kernel time of the measured convolution's nodes (ONNX Runtime's profile; run 0 is warm-up).

    Every node but the 1x1 conv in front (fused with its ReLU: "a_r...") and the layout reorders at the
    model's edges, which inside the network do not exist (the blocked layout flows through); the measured
    conv's ReLU is counted on both sides (fused into the direct Conv).
    """
    events = [e for e in json.loads(profile.read_text())
              if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
              and not e["name"].startswith(("a_r", "pre", "Reorder"))]
    per_run: dict[int, float] = {}
    names = sorted({e["name"] for e in events})
    for name in names:
        durations = [e["dur"] for e in events if e["name"] == name]
        assert len(durations) == runs, (name, len(durations))
        for index, duration in enumerate(durations):
            per_run[index] = per_run.get(index, 0.0) + duration / 1000
    return min(v for k, v in per_run.items() if k > 0)


def measure(shape: tuple[str, int, int, int, int], batch: int, repeats: int, workdir: Path) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    label, channels, out_channels, height, width = shape
    direct = conv_model(batch, channels, out_channels, height, width)
    winograd = onnx.ModelProto()
    winograd.CopyFrom(direct)
    assert rewrite_model(winograd, WinogradRule(1, 1, 1))["rewritten_convs"] == 1
    x = np.random.default_rng(1).standard_normal((batch, channels, height, width)).astype(np.float32)
    figures, outputs = {}, {}
    for name, model in (("direct", direct), ("winograd", winograd)):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(workdir / name)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for _ in range(repeats + 1):
            outputs[name] = session.run(None, {"x": x})[0]
        profile = Path(session.end_profiling())
        figures[name] = _measured_ms(profile, repeats + 1) / batch
        profile.unlink()
    scale = float(np.abs(outputs["direct"]).max())
    rule = WinogradRule()
    return {
        "shape": label, "in_channels": channels, "out_channels": out_channels, "output_hw": [height, width],
        "direct_ms_per_view": figures["direct"], "winograd_ms_per_view": figures["winograd"],
        "ratio": figures["winograd"] / figures["direct"],
        "max_abs_diff_over_range": float(np.abs(outputs["winograd"] - outputs["direct"]).max()) / scale,
        "rule_rewrites": channels >= rule.min_in_channels and out_channels >= rule.min_out_channels
        and height * width >= rule.min_output_pixels,
    }


def results_section(result: dict[str, Any]) -> str:
    rule = result["rule"]
    lines = [
        BEGIN,
        "## Winograd F(4x4,3x3) against direct 3x3 convolutions (the fp32 cpu variant's rule)",
        "",
        f"`{result['command']}` — {result['machine']['cpu']}, {result['machine']['cores']} cores, onnxruntime "
        f"{result['machine']['onnxruntime']}, batch {result['batch']}, best of {result['repeats']}, "
        f"{result['date']}. Default rule: >= {rule['min_in_channels']} in and {rule['min_out_channels']} out "
        f"channels, >= {rule['min_output_pixels']} output pixels.",
        "",
        "Per view, the convolution's own nodes (ONNX Runtime profile), layout reorders at the model's edges "
        "not counted.",
        "",
        "| convolution | channels | output | direct ms/view | Winograd ms/view | ratio | max diff / range | "
        "rule rewrites |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['shape']} | {row['in_channels']} -> {row['out_channels']} | "
                     f"{row['output_hw'][0]}x{row['output_hw'][1]} | {row['direct_ms_per_view']:.2f} | "
                     f"{row['winograd_ms_per_view']:.2f} | {row['ratio']:.2f} | "
                     f"{row['max_abs_diff_over_range']:.1e} | {'yes' if row['rule_rewrites'] else 'no'} |")
    lines += ["", "Raw figures: `results/winograd.json`.", END]
    return "\n".join(lines)


def main() -> None:
    import onnxruntime as ort

    from benchmarks.bench_pipeline_vs_eager import update_results_md

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="views per call (the engine graph runs 26)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for shape in SHAPES:
            rows.append(measure(shape, args.batch, args.repeats, Path(workdir)))
            row = rows[-1]
            print(f"{row['shape']:28s} direct {row['direct_ms_per_view']:7.2f} ms  winograd "
                  f"{row['winograd_ms_per_view']:7.2f} ms  ratio {row['ratio']:.2f}", file=sys.stderr)
    from trt_mass.bench.machine import machine_facts

    facts = machine_facts()
    result = {
        "benchmark": "winograd",
        "command": "python -m benchmarks.bench_winograd " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": facts.get("cpu_model") or platform.processor(), "cores": facts.get("logical_cores"),
                    "onnxruntime": ort.__version__},
        "batch": args.batch, "repeats": args.repeats, "rule": WinogradRule().to_dict(), "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "winograd.json").write_text(json.dumps(result, indent=2) + "\n")
    update_results_md(args.results_md, results_section(result), BEGIN, END)
    print(f"wrote {args.out / 'winograd.json'} and the section in {args.results_md}", file=sys.stderr)


if __name__ == "__main__":
    main()
