"""The watch daemon against `trtmass detect` on the same files: sustained throughput and memory.

Writes benchmarks/results/watch.json.  Small model on purpose (resnet18, head 64, tile 256x224,
random weights): the figures compare the two drivers of one pipeline, not the network.

    python -m benchmarks.bench_watch --files 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_graph_overhead import machine_facts


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _feed_and_sample(root: Path, files: list[Path], daemon: subprocess.Popen) -> tuple[float, list[tuple[int, int]]]:
    while not (root / "status.json").exists():
        time.sleep(0.1)
    rss_samples: list[tuple[int, int]] = []  # (inputs done so far, RSS KiB)
    started = time.perf_counter()
    staging = root / "staging"
    staging.mkdir()
    for path in files:  # arrive as renames into incoming/, as a PACS export with temp names does
        shutil.copyfile(path, staging / path.name)
        os.replace(staging / path.name, root / "incoming" / path.name)
    while True:
        done = len(list((root / "done").iterdir()))
        rss_samples.append((done, rss_kib(daemon.pid)))
        if done >= len(files):
            return time.perf_counter() - started, rss_samples
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "trt_mass.cli"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "model.onnx"
        subprocess.run([*cli, "export", "--init", "random", "--arch", "resnet18", "--head-width", "64",
                        "--tile", "256x224", "-o", str(model)], check=True, capture_output=True)
        images = tmp / "images"
        subprocess.run([*cli, "synth", str(images), "--count", str(args.files), "--seed", "0",
                        "--scale", str(args.scale)], check=True)
        files = sorted(images.glob("*.dcm"))

        started = time.perf_counter()
        detect = subprocess.run([*cli, "detect", str(images), "--model", str(model), "--out", str(tmp / "detect")],
                                capture_output=True, text=True)
        detect_s = time.perf_counter() - started
        print(detect.stdout.strip(), file=sys.stderr)

        root = tmp / "root"
        with open(tmp / "watch.log", "w") as log:
            daemon = subprocess.Popen([*cli, "watch", str(root), "--model", str(model), "--dicom-out", "none"],
                                      stdout=log,
                                      stderr=subprocess.STDOUT,
                                      env={**os.environ, "TRTMASS_WATCH_LOG_FORMAT": "json"})
            watch_s, rss_samples = _feed_and_sample(root, files, daemon)
            daemon.terminate()
            daemon.wait(timeout=60)

    early = [rss for done, rss in rss_samples if 40 <= done <= 60] or [rss_samples[0][1]]
    late = [rss for done, rss in rss_samples if done >= len(files) - 20] or [rss_samples[-1][1]]
    report = {
        "benchmark": "watch_vs_detect",
        "command": "python -m benchmarks.bench_watch " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_facts(),
        "files": len(files),
        "model": "resnet18 head 64, tile 256x224, random weights, ONNX Runtime CPU",
        "detect_s": round(detect_s, 2),
        "watch_s": round(watch_s, 2),
        "detect_files_per_s": round(len(files) / detect_s, 3),
        "watch_files_per_s": round(len(files) / watch_s, 3),
        "throughput_ratio_watch_over_detect": round(detect_s / watch_s, 3),
        "rss_kib_after_50_files": max(early),
        "rss_kib_at_end": max(late),
        "rss_growth_percent": round(100 * (max(late) - max(early)) / max(early), 2),
        "rss_samples": rss_samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "watch.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("rss_samples", "machine")}, indent=2))


if __name__ == "__main__":
    main()
