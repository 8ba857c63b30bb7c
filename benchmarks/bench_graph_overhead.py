"""Full engine graph vs network-only graph on the same 26-view batch (ONNX Runtime, this machine).

Measures what the in-graph tiling, decode, per-view NMS and merge cost on top of the network.
Both graphs come from the same weights and run interleaved in one process, so the ratio holds up on
a noisy machine.  Writes benchmarks/results/graph_overhead-<arch>-<tile>.json and prints a summary.

    python benchmarks/bench_graph_overhead.py --arch resnet50 --tile 768x640 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from trt_mass.model.checkpoint import random_network
from trt_mass.model.export import ExportOptions, export_onnx
from trt_mass.model.graph import Postprocess, ViewBatch
from trt_mass.spec import GraphSpec, ModelSpec, TileGeometry, parse_hw
from trt_mass.version import package_versions


def machine_facts() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": package_versions()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--head-width", type=int, default=256)
    parser.add_argument("--tile", default="768x640")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--prior", type=float, default=0.01,
                        help="class prior of the random weights (0.3 floods NMS with candidates)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    tile_h, tile_w = parse_hw(args.tile)
    spec = GraphSpec(geometry=TileGeometry(tile_h, tile_w, 5))
    network = random_network(ModelSpec(arch=args.arch, head_width=args.head_width), 0, args.prior)
    with tempfile.TemporaryDirectory() as tmp:
        full_path, net_path = Path(tmp) / "full.onnx", Path(tmp) / "net.onnx"
        started = time.perf_counter()
        export_onnx(network, "random", ExportOptions(spec), full_path)
        export_onnx(network, "random", ExportOptions(spec, network_only=True), net_path)
        print(f"exported both graphs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        options = ort.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
        post_path = Path(tmp) / "post.onnx"
        export_postprocess(spec, post_path)
        full = ort.InferenceSession(str(full_path), options, providers=["CPUExecutionProvider"])
        net = ort.InferenceSession(str(net_path), options, providers=["CPUExecutionProvider"])
        post = ort.InferenceSession(str(post_path), options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 65535, size=(1, 1, *spec.geometry.canvas_hw), dtype=np.uint16)
    import torch

    views = ViewBatch(spec.geometry)(torch.from_numpy(canvas.astype(np.int32)).to(torch.uint16)).numpy()
    timings: dict[str, list[float]] = {"full": [], "network_only": [], "postprocess_only": []}
    network_outputs: dict[str, np.ndarray] = {}

    def run_full() -> None:
        full.run(None, {"canvas": canvas})

    def run_net() -> None:
        logits, deltas = net.run(None, {"views": views})
        network_outputs.update(cls_logits=logits, box_regression=deltas)

    def run_post() -> None:
        post.run(None, network_outputs)

    for _ in range(args.warmup):
        run_full()
        run_net()
        run_post()
    for index in range(args.runs):
        # Alternate the order so drift on the machine hits both sides alike.
        pairs = [("full", run_full), ("network_only", run_net)]
        for name, function in pairs if index % 2 == 0 else pairs[::-1]:
            started = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        run_post()  # decode + NMS + merge alone, on this run's real network outputs
        timings["postprocess_only"].append(time.perf_counter() - started)
        print(f"run {index + 1}/{args.runs}: full {timings['full'][-1]:.2f} s, network-only "
              f"{timings['network_only'][-1]:.2f} s, postprocess-only {timings['postprocess_only'][-1]:.3f} s",
              file=sys.stderr)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    result = {
        "benchmark": "graph_overhead",
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_facts(),
        "model": {"arch": args.arch, "head_width": args.head_width, "tile": args.tile, "views": 26,
                  "weights": f"random seed 0 prior {args.prior}"},
        "graph_spec": spec.to_dict(),
        "onnxruntime_threads": args.threads or "default",
        "seconds": timings,
        "median_s": medians,
        "ratio_full_over_network": medians["full"] / medians["network_only"],
        # Less noisy: the in-graph steps timed alone, relative to the network.
        "ratio_network_plus_postprocess_over_network":
            (medians["network_only"] + medians["postprocess_only"]) / medians["network_only"],
        "candidates_per_view_above_threshold": candidates_per_view(network_outputs, spec),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"graph_overhead-{args.arch}-{args.tile}-prior{args.prior}.json"
    target.write_text(json.dumps(result, indent=2))
    print(json.dumps({"median_s": medians, "ratio": result["ratio_full_over_network"],
                      "ratio_post": result["ratio_network_plus_postprocess_over_network"], "written": str(target)}))


def export_postprocess(spec: GraphSpec, path: Path) -> None:
    """The graph's steps after the network (decode, per-view NMS, merge) as their own ONNX."""
    import torch

    from trt_mass.model.network import view_anchors
    from trt_mass.model.nms_op import custom_translation_table

    anchors = view_anchors((spec.geometry.tile_h, spec.geometry.tile_w)).shape[0]
    example = (torch.zeros(spec.geometry.num_views, anchors, 1), torch.zeros(spec.geometry.num_views, anchors, 4))
    program = torch.onnx.export(Postprocess(spec).eval(), example, dynamo=True, opset_version=19,
                                input_names=["cls_logits", "box_regression"], output_names=["boxes", "scores"],
                                custom_translation_table=custom_translation_table())
    assert program is not None
    program.save(str(path))


def candidates_per_view(outputs: dict[str, np.ndarray], spec: GraphSpec) -> float:
    logits = outputs["cls_logits"]
    threshold = np.log(spec.score_threshold / (1 - spec.score_threshold))
    return float((logits > threshold).sum() / logits.shape[0])


if __name__ == "__main__":
    main()
