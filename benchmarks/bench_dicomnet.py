"""A DICOM node (issue #15): mammograms received over C-STORE against the folder path, and results delivered.

All figures come from one run on one machine, on the same --files phantoms (write_phantoms, scale --scale,
some lossless JPEG 2000, distinct SOP Instance UIDs), with the tiny random model of bench_decode and its
daemon settings (poll 0.05 s, settle 0.05 s, JSON log):

1. the folder path: every file copied into incoming/ at once (bench_decode.daemon_throughput, no DICOM
   outputs); mammograms per second from the first arrival to the last file in done/;
2. the C-STORE path: a fresh daemon with `--listen TRTMASS@PORT --listen-address 127.0.0.1` that allows
   its caller (no DICOM outputs), every file sent over one association by a pynetdicom SCU in this
   process; mammograms per second from the start of sending to the last file in done/, and the receive
   rate alone (instances acknowledged per second).  The two paths alternate over --rounds and the medians
   are reported (the ratio C-STORE / folder has the target >= 0.95);
3. delivery: a daemon with `--to ORTHANC@127.0.0.1:PORT` and every DICOM output (sr,gsps,sc) processes the
   files while Orthanc is down, so the outbox fills (3 results per file); then Orthanc starts
   (tests.dicomnet.conftest.Orthanc) and results delivered per second are measured until its REST
   /instances holds them all.  Skipped, with a note, when the Orthanc program is missing.

    python -m benchmarks.bench_dicomnet [--files 24] [--rounds 2] [--scale 0.25]

Writes benchmarks/results/dicomnet.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_decode import REPO, _python_path, daemon_throughput, export_tiny
from benchmarks.bench_pipeline_vs_eager import save_report
from tests.daemon_process import Daemon
from tests.dicomnet.conftest import Orthanc, free_port
from tests.dicomnet.test_outbox import CALLER, send_with_pynetdicom
from trt_mass.bench.machine import machine_facts

BEGIN, END = "<!-- bench_dicomnet:begin -->", "<!-- bench_dicomnet:end -->"
KINDS = ("sr", "gsps", "sc")
# bench_decode.daemon_throughput's settings, so that the three daemons differ only in how files arrive
SETTINGS = {"TRTMASS_WATCH_LOG_FORMAT": "json", "TRTMASS_WATCH_POLL_INTERVAL_S": "0.05",
            "TRTMASS_WATCH_SETTLE_S": "0.05"}


def start_daemon(root: Path, model: Path, flags: list[str], settings: dict[str, str]) -> Daemon:
    daemon = Daemon(root, model)
    daemon.env = {**os.environ, "PYTHONPATH": _python_path(REPO), **SETTINGS, **settings}  # not the tests' FAST
    return daemon.start(*flags)


def status(root: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((root / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def wait_until(condition: Callable[[], bool], daemon: Daemon, what: str, timeout: float = 300) -> float:
    """The perf_counter() at which `condition` held (checked every 0.05 s, as daemon_throughput does)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon.process is not None and daemon.process.poll() is not None:
            raise SystemExit(f"the daemon stopped while waiting for {what}; see {daemon.log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}; see {daemon.log}")
        time.sleep(0.05)
    return time.perf_counter()


def files_in(folder: Path) -> int:
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def stopped(daemon: Daemon) -> None:
    if daemon.process is not None and daemon.process.poll() is None and daemon.terminate() != 0:
        print(f"the daemon exited with an error; see {daemon.log}", file=sys.stderr)


# ------------------------------------------------------------------------------------ folder and C-STORE

def children_cpu_s() -> float:
    """CPU seconds of this process's children that ended (each daemon is waited for when it stops)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def folder_run(files: list[Path], model: Path, root: Path) -> dict[str, float]:
    cpu = children_cpu_s()
    rate = daemon_throughput(files, model, root, REPO, {})
    return {"folder": rate, "folder_daemon_cpu_s": children_cpu_s() - cpu}


def cstore_run(files: list[Path], model: Path, root: Path) -> dict[str, float]:
    """Mammograms per second received and processed, instances acknowledged per second, the CPU seconds of
    the SCU (this process, while sending) and of the daemon (its whole life, as for folder_run)."""
    import pynetdicom.sop_class  # noqa: F401  imported before the clock starts

    port, cpu = free_port(), children_cpu_s()
    flags = ["--listen", f"TRTMASS@{port}", "--listen-address", "127.0.0.1", "--allow-caller", CALLER]
    daemon = start_daemon(root, model, flags, {"TRTMASS_WATCH_DICOM_OUT": "none"})
    try:
        wait_until(lambda: status(root).get("state") == "running", daemon, "the model")
        acknowledged: list[str] = []
        started, scu_cpu = time.perf_counter(), time.process_time()
        send_with_pynetdicom(port, files, acknowledged)
        received, scu_cpu = time.perf_counter(), time.process_time() - scu_cpu
        if len(acknowledged) != len(files):
            raise SystemExit(f"{len(acknowledged)} of {len(files)} instances acknowledged; see {daemon.log}")
        finished = wait_until(lambda: files_in(root / "done") >= len(files), daemon, "every file in done/")
        if files_in(root / "failed"):
            raise SystemExit(f"files failed; see {root / 'failed'}")
    finally:
        stopped(daemon)
    return {"cstore": len(files) / (finished - started), "received": len(files) / (received - started),
            "scu_cpu_s": scu_cpu, "cstore_daemon_cpu_s": children_cpu_s() - cpu}


def compare_paths(files: list[Path], model: Path, tmp: Path, rounds: int) -> dict[str, Any]:
    """Folder and C-STORE alternately (the first path of a round alternates too), medians over the rounds."""
    runs: dict[str, list[float]] = {}
    for index in range(rounds):
        for path in (("folder", "cstore") if index % 2 == 0 else ("cstore", "folder")):
            run = (folder_run if path == "folder" else cstore_run)(files, model, tmp / f"root-{path}-{index}")
            for name, value in run.items():
                runs.setdefault(name, []).append(value)
            print(f"round {index + 1} {path}: {run[path]:.3f} mammograms/s", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    return {"median": {name: round(value, 3) for name, value in medians.items()},
            "ratio": round(medians["cstore"] / medians["folder"], 3),
            "ratio_per_round": [round(c / f, 3) for c, f in zip(runs["cstore"], runs["folder"], strict=True)],
            "rounds": {name: [round(value, 3) for value in values] for name, values in runs.items()}}


# ------------------------------------------------------------------------------------------- delivery

def arrive(files: list[Path], incoming: Path) -> None:
    """Each file whole into `incoming` (copied beside it under a dot name, then renamed)."""
    incoming.mkdir(parents=True, exist_ok=True)
    for source in files:
        hidden = incoming.parent / f".{source.name}"
        shutil.copyfile(source, hidden)
        hidden.rename(incoming / source.name)


def instances_in(orthanc: Orthanc) -> int:
    return len(orthanc.get("/instances"))


def delivery(files: list[Path], model: Path, tmp: Path) -> dict[str, Any]:
    """Results delivered per second to an Orthanc that starts once every result waits in the outbox."""
    if shutil.which("Orthanc") is None:
        return {"ran": False, "why": "the Orthanc program is not installed (`make dicom-tools` as root)"}
    orthanc, root, results = Orthanc(tmp / "orthanc"), tmp / "root-orthanc", len(KINDS) * len(files)
    daemon = start_daemon(root, model, ["--to", orthanc.destination],
                          {"TRTMASS_WATCH_DICOM_OUT": ",".join(KINDS), "TRTMASS_WATCH_RETRY_INITIAL_S": "0.1",
                           "TRTMASS_WATCH_RETRY_MAX_S": "0.5"})
    try:
        wait_until(lambda: status(root).get("state") == "running", daemon, "the model")
        started = time.perf_counter()
        arrive(files, root / "incoming")
        processed = wait_until(lambda: status(root).get("outbox", {}).get("depth") == results, daemon,
                               f"{results} results in the outbox")
        orthanc.start()
        up = time.perf_counter()
        first = wait_until(lambda: instances_in(orthanc) > 0, daemon, "the first result in Orthanc")
        last = wait_until(lambda: instances_in(orthanc) >= results, daemon, f"{results} results in Orthanc")
        emptied = wait_until(lambda: status(root).get("outbox", {}).get("depth") == 0, daemon, "an empty outbox")
    finally:
        stopped(daemon)
        orthanc.stop()
    return {"ran": True, "results": results, "kinds": list(KINDS),
            "processed_per_s_with_outputs": round(len(files) / (processed - started), 3),
            "first_result_after_s": round(first - up, 2), "delivered_per_s": round(results / (last - up), 2),
            "delivered_per_s_after_first": round((results - 1) / max(last - first, 1e-6), 2),
            "outbox_empty_after_s": round(emptied - up, 2)}


# ---------------------------------------------------------------------------------------------- report

def results_section(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [BEGIN, "## A DICOM node: C-STORE against the folder path, delivery to Orthanc (issue #15)", "",
             f"`{report['command']}` — {report['date']}, {machine['cpu_model']}, {machine['usable_cores']} usable "
             f"cores, {report['wall_s']:.0f} s. `trtmass watch` with the tiny model of bench_decode (resnet18, head "
             f"width 16, tile 64x64, random weights) on {report['files']} phantoms (scale {report['scale']}, "
             f"{report['j2k_files']} of them lossless JPEG 2000, {report['megabytes']} MB in all), one fresh daemon "
             f"per run, {len(report['paths']['rounds']['folder'])} rounds alternating the two paths (medians):", "",
             *_paths_lines(report["paths"]), "", *_delivery_lines(report["delivery"]), "",
             "Each instance is written, fsynced and renamed into incoming/ before it is acknowledged, and the SCU "
             "runs in the benchmark's own process on the same cores as the daemon (a modality is another machine). "
             "On a GPU PC the engine leaves the cores to the listener, the decoders and the outbox, so receiving "
             "overlaps processing at no cost to it and the ratio should stay near 1 at a higher rate; delivery does "
             "not touch the GPU: it is bound by the PACS and one association per batch of 32."]
    return "\n".join([*lines, END])


def _paths_lines(paths: dict[str, Any]) -> list[str]:
    median, rounds = paths["median"], paths["rounds"]
    return ["| path | mammograms/s (median) | per round | CPU s (median) |", "| --- | --- | --- | --- |",
            f"| folder: all files copied into incoming/ at once | {median['folder']} | {_joined(rounds['folder'])} "
            f"| daemon {median['folder_daemon_cpu_s']:.2f} |",
            f"| C-STORE: one association (pynetdicom SCU), received and processed | {median['cstore']} | "
            f"{_joined(rounds['cstore'])} | daemon {median['cstore_daemon_cpu_s']:.2f} |",
            f"| C-STORE: received alone (instances acknowledged per s) | {median['received']} | "
            f"{_joined(rounds['received'])} | SCU {median['scu_cpu_s']:.2f} |",
            f"| **ratio C-STORE / folder** (target >= 0.95) | **{paths['ratio']}** | "
            f"{_joined(paths['ratio_per_round'])} | |", "",
            "CPU s: the daemon's over its whole life (its start and model load included, the same in both paths), "
            "the SCU's while sending."]


def _joined(values: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in values)


def _delivery_lines(sent: dict[str, Any]) -> list[str]:
    if not sent["ran"]:
        return [f"Delivery to Orthanc: not measured ({sent['why']})."]
    return [f"Delivery (`--to ORTHANC@127.0.0.1:PORT`, DICOM outputs {','.join(sent['kinds'])}): the files were "
            f"processed while Orthanc was down ({sent['processed_per_s_with_outputs']} mammograms/s with the three "
            f"outputs written), until {sent['results']} results waited in the outbox; then Orthanc started:", "",
            "| results | first in Orthanc after | results delivered/s | after the first | outbox empty after |",
            "| --- | --- | --- | --- | --- |",
            f"| {sent['results']} | {sent['first_result_after_s']} s | {sent['delivered_per_s']} | "
            f"{sent['delivered_per_s_after_first']} | {sent['outbox_empty_after_s']} s |"]


def phantoms(folder: Path, count: int, scale: float, seed: int) -> tuple[list[Path], dict[str, Any]]:
    import pydicom

    from trt_mass.datasets.synth import write_phantoms

    files = write_phantoms(folder, count, seed=seed, scale=scale, normal_fraction=0.3)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    if len({str(h.SOPInstanceUID) for h in headers}) != count:
        raise SystemExit("the phantoms do not have distinct SOP Instance UIDs")
    return files, {"j2k_files": sum(h.file_meta.TransferSyntaxUID.is_compressed for h in headers),
                   "megabytes": round(sum(path.stat().st_size for path in files) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.25, help="phantom size, a fraction of 4096 x 3328")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "dicomnet.json")
    parser.add_argument("--results-md", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()
    command = " ".join(["python -m benchmarks.bench_dicomnet", *sys.argv[1:]])
    report: dict[str, Any] = {"benchmark": "dicomnet", "command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "machine": machine_facts(), "files": args.files, "scale": args.scale}
    with tempfile.TemporaryDirectory(prefix="trtmass-dicomnet-") as tmp_name:
        tmp = Path(tmp_name)
        files, facts = phantoms(tmp / "phantoms", args.files, args.scale, args.seed)
        report.update(facts)
        model = tmp / "tiny.onnx"
        export_tiny(model, REPO)
        report["paths"] = compare_paths(files, model, tmp, args.rounds)
        report["delivery"] = delivery(files, model, tmp)
        if not report["delivery"]["ran"]:
            print(f"delivery to Orthanc skipped: {report['delivery']['why']}", file=sys.stderr)
    report["wall_s"] = round(time.perf_counter() - began, 1)
    save_report(report, args.out, args.results_md, results_section(report), BEGIN, END)


if __name__ == "__main__":
    main()
