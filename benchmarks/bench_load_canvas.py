"""Load (read + decode + grayscale pipeline) and canvas time for full-size mammograms.

Two files as vendors write them: 4096 x 3328 JPEG 2000 lossless MONOCHROME1 (Hologic-like) and
3328 x 2560 uncompressed MONOCHROME2.  Synthetic phantoms, generated here (not committed).

    python benchmarks/bench_load_canvas.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_graph_overhead import machine_facts
from trt_mass.datasets.synth import make_phantom, phantom_dataset
from trt_mass.geometry import CanvasBuilder
from trt_mass.inputs.dicom import load_mammogram
from trt_mass.spec import TileGeometry

CASES = (
    ("4096x3328 JPEG 2000 lossless MONOCHROME1", (4096, 3328), "MONOCHROME1", True),
    ("3328x2560 uncompressed MONOCHROME2", (3328, 2560), "MONOCHROME2", False),
)


def write_case(folder: Path, index: int, shape: tuple[int, int], photometric: str, j2k: bool) -> Path:
    from pydicom.uid import JPEG2000Lossless

    phantom = make_phantom(np.random.default_rng(index), 1.0, False, vendor_index=0, shape_hw=shape, anatomy="fill")
    ds = phantom_dataset(phantom, seed=0, index=index, photometric=photometric)
    if j2k:
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)  # type: ignore[attr-defined]
    path = folder / f"case{index}.dcm"
    ds.save_as(path, enforce_file_format=True)  # type: ignore[attr-defined]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tile", default="768x640")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    tile_h, tile_w = (int(v) for v in args.tile.split("x"))
    builder = CanvasBuilder(TileGeometry(tile_h, tile_w, 5))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, shape, photometric, j2k) in enumerate(CASES):
            path = write_case(Path(tmp), index, shape, photometric, j2k)
            load_s, canvas_s = [], []
            for _ in range(args.runs + 1):  # the first run warms caches and is dropped
                started = time.perf_counter()
                mammogram = load_mammogram(path)
                loaded = time.perf_counter()
                builder.fill(mammogram.pixels)
                load_s.append(loaded - started)
                canvas_s.append(time.perf_counter() - loaded)
            load_s, canvas_s = load_s[1:], canvas_s[1:]
            row = {"case": name, "file_mb": round(path.stat().st_size / 2**20, 1),
                   "load_median_ms": round(1000 * statistics.median(load_s), 1),
                   "canvas_median_ms": round(1000 * statistics.median(canvas_s), 1),
                   "load_ms": [round(1000 * v, 1) for v in load_s],
                   "canvas_ms": [round(1000 * v, 1) for v in canvas_s]}
            results.append(row)
            print(f"{name}: load {row['load_median_ms']} ms, canvas {row['canvas_median_ms']} ms "
                  f"({row['file_mb']} MB)", file=sys.stderr)
    report = {"benchmark": "load_canvas", "command": "python " + " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_facts(),
              "canvas_hw": list(builder.geometry.canvas_hw), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load_canvas.json").write_text(json.dumps(report, indent=2))
    print(json.dumps([{k: r[k] for k in ("case", "load_median_ms", "canvas_median_ms")} for r in results]))


if __name__ == "__main__":
    main()
