"""The report of `trtmass bench`: statistics, ratios to the baseline, warnings, and the report as a
terminal summary, JSON, Markdown and a latency histogram.

Report schema ("trt_mass.bench/1"; JSON, every time in ms):

    schema, created (UTC ISO), command
    machine     cpu_model, logical_cores, physical_cores, usable_cores, memory_total_mib, gpus [{name,
                driver, memory_total_mib, compute_capability}] (nvidia-smi; [] without), load_average_at_start
                and load_average (end) [1, 5, 15 min], python, platform,
                versions {package: version} (onnxruntime, tensorrt, torch, numpy, ...; absent = not installed)
    model       path, file_sha256, size_bytes, kind, model_id, weights_sha256, init, precision, target,
                quantization, calibration_sha256, model_spec, graph_spec (geometry + thresholds),
                geometry {tile_hw, grid, canvas_hw, views}; engine_path, engine_sha256 (TensorRT, when the
                runner loaded an engine other than the model file)
    settings    backend (asked), runs, warmup, threads, device, baseline, cov_threshold,
                inputs {source: "dir"|"synthetic", path | count+scale+seed, files, images_hw}
    stage_definitions  {stage: what it times}
    pipelines   {"ours": P, "baseline": P (only with --baseline)}, P =
                label, backend, device, precision, threads, samples (timed mammograms),
                stages {stage: {applicable: bool, note: str | null, stats: S | null, samples_ms: [..] | null}}
                    -- a stage that does not exist on a backend (no host/device copy on ONNX Runtime's CPU
                       provider or torch on the CPU) is "applicable": false with null stats, never a fake 0
                end_to_end {stats: S, samples_ms}, detail {name: {stats: S, samples_ms}} (parts of the
                inference a pipeline reports: the baseline's network / decode_nms / merge; a GPU runner's
                device_inference, the device time alone, without host-side overhead),
                throughput {mammograms_per_s, views_per_s, views_per_mammogram, basis},
                memory {device_peak_mib | null, device_note}, findings_per_mammogram [..]
                S = {count, min, median, mean, p90, p95, p99, max, std, cov} (percentiles: linear
                interpolation between samples; cov = sample std / mean)
    memory      peak_rss_mib (process, whole run), peak_rss_mib_before_baseline (ours loaded and warmed
                up, before anything of the baseline was loaded; null without --baseline),
                gpu_process_used_mib (nvidia-smi, this process, end of run; null without a GPU)
    ratios      null without --baseline, else {definition, stages {stage: ratio | null}, end_to_end}
                ratio = ours median / baseline median (below 1: ours is faster)
    warnings    [str] (coefficient of variation above the threshold, findings that differ, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.atomic import atomic_path, write_json_atomic, write_text_atomic
from trt_mass.errors import BackendUnavailableError

SCHEMA = "trt_mass.bench/1"
STAGES: tuple[tuple[str, str, str], ...] = (
    ("read_decode", "read + decode", "read the file and decode it to the uint16 image (DICOM: modality/VOI/inversion)"),
    ("canvas", "canvas", "letterbox the image into the model's preallocated canvas"),
    ("network", "network round trip", "request serialised, sent to the inference server, answer received and "
                                      "parsed, less the server's own time (triton backend only)"),
    ("h2d", "host to device", "copy the canvas to the GPU (GPU backends only)"),
    ("inference", "inference", "the engine graph: 26 views, network, fp32 decode, per-view NMS, cross-view merge "
                               "(and the runner's host-side overhead)"),
    ("d2h", "device to host", "copy the outputs back from the GPU (GPU backends only)"),
    ("postprocess_write", "post-processing + writing", "canvas boxes to findings in original pixels, area filter, "
                                                       "JSON result written and fsync'd"),
)
STAGE_KEYS = tuple(key for key, _, _ in STAGES)
OPTIONAL_STAGES = ("network", "h2d", "d2h")  # stages only some backends have (n/a elsewhere)
STAGE_LABELS = {key: label for key, label, _ in STAGES}


def stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """min/median/mean/p90/p95/p99/max/std/cov of a list of times (ms); percentiles interpolate linearly."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no samples")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    p90, p95, p99 = (float(v) for v in np.percentile(values, [90, 95, 99]))
    return {
        "count": int(values.size), "min": float(values.min()), "median": float(np.median(values)), "mean": mean,
        "p90": p90, "p95": p95, "p99": p99, "max": float(values.max()), "std": std,
        "cov": std / mean if mean > 0 else 0.0,
    }


def baseline_ratios(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """ours median / baseline median, for every stage both pipelines have and for the end-to-end time."""
    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        if a is None or b is None or b["median"] <= 0:
            return None
        return float(a["median"] / b["median"])

    return {
        "definition": "ours median / baseline median (below 1: ours is faster)",
        "stages": {key: ratio(ours["stages"][key]["stats"], baseline["stages"][key]["stats"]) for key in STAGE_KEYS},
        "end_to_end": ratio(ours["end_to_end"]["stats"], baseline["end_to_end"]["stats"]),
    }


def warnings_of(report: dict[str, Any]) -> list[str]:
    """Noisy-machine (coefficient of variation) and consistency warnings, as trtexec gives them."""
    threshold = report["settings"]["cov_threshold"]
    warnings = []
    machine = report["machine"]
    load, cores = machine.get("load_average_at_start"), machine.get("usable_cores") or 1
    if load is not None and load[0] >= cores:
        warnings.append(f"the machine was busy when the benchmark started (1-minute load average {load[0]} on "
                        f"{cores} usable cores): other work competes for the CPU")
    for name, pipeline in report["pipelines"].items():
        measured = [("end-to-end", pipeline["end_to_end"]["stats"]),
                    ("inference", pipeline["stages"]["inference"]["stats"])]
        for what, figures in measured:
            if figures is not None and figures["count"] > 1 and figures["cov"] > threshold:
                hint = (" (differing input files add to this: codec, size)" if what == "end-to-end" else "")
                warnings.append(
                    f"{name}: {what} time is unstable, coefficient of variation {100 * figures['cov']:.1f} % > "
                    f"{100 * threshold:.0f} %{hint}: the machine is noisy (other processes, CPU frequency scaling, "
                    "thermal throttling); close other work, pin clocks or use more --runs")
    if "baseline" in report["pipelines"]:
        ours = report["pipelines"]["ours"]["findings_per_mammogram"]
        theirs = report["pipelines"]["baseline"]["findings_per_mammogram"]
        differing = sum(a != b for a, b in zip(ours, theirs, strict=True))
        if differing:
            why = ("expected: the baseline runs the fp32 weights" if report["pipelines"]["ours"]["precision"] != "fp32"
                   else "ties or rounding near a threshold")
            warnings.append(f"ours and the baseline found different numbers of masses on {differing} of {len(ours)} "
                            f"timed mammograms ({why})")
    if report["settings"]["runs"] < 20:
        warnings.append(f"only {report['settings']['runs']} timed runs: p90/p95/p99 are interpolated from few "
                        "samples (use --runs 100 or more for tail latencies)")
    return warnings


def write_report_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, report)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 1000 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _machine_line(machine: dict[str, Any]) -> str:
    gpus = ", ".join(f"{g['name']} (driver {g['driver']})" for g in machine["gpus"]) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return (f"{machine['cpu_model']}, {machine['logical_cores']} logical / {machine['physical_cores'] or '?'} physical "
            f"cores ({machine['usable_cores']} usable), {machine['memory_total_mib']} MiB; {gpus}; "
            f"Python {machine['python']}; {versions}")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short plain-text summary (stage medians, ratio, throughput, memory, warnings) for the terminal."""
    model, pipelines = report["model"], report["pipelines"]
    ours, baseline = pipelines["ours"], pipelines.get("baseline")
    geometry = model["geometry"]
    lines = [
        f"model {model['model_id']} ({model['precision']}, target {model['target']}), tile "
        f"{geometry['tile_hw'][0]}x{geometry['tile_hw'][1]}, grid {geometry['grid']}, {geometry['views']} views; "
        f"{ours['backend']} on {ours['device']}; {ours['samples']} timed mammograms",
        f"machine: {_machine_line(report['machine'])}",
    ]
    header = f"{'stage (median ms)':<28}{'ours':>12}"
    if baseline is not None:
        header += f"{'baseline':>12}{'ratio':>9}"
    lines.append(header)
    rows = [(STAGE_LABELS[key], ours["stages"][key]["stats"], baseline and baseline["stages"][key]["stats"],
             report["ratios"] and report["ratios"]["stages"][key]) for key in STAGE_KEYS]
    rows.append(("end to end", ours["end_to_end"]["stats"], baseline and baseline["end_to_end"]["stats"],
                 report["ratios"] and report["ratios"]["end_to_end"]))
    for label, mine, theirs, ratio in rows:
        line = f"{label:<28}{_ms(mine and mine['median']):>12}"
        if baseline is not None:
            line += f"{_ms(theirs and theirs['median']):>12}{'n/a' if ratio is None else f'{ratio:.3f}':>9}"
        lines.append(line)
    e2e = ours["end_to_end"]["stats"]
    lines.append(f"ours end to end: min {_ms(e2e['min'])}, mean {_ms(e2e['mean'])}, p90 {_ms(e2e['p90'])}, p99 "
                 f"{_ms(e2e['p99'])}, max {_ms(e2e['max'])} ms; {ours['throughput']['mammograms_per_s']:.3f} "
                 f"mammograms/s, {ours['throughput']['views_per_s']:.2f} views/s")
    memory = report["memory"]
    device = ours["memory"]["device_peak_mib"]
    lines.append(f"peak RSS {memory['peak_rss_mib']} MiB" +
                 (f" (ours alone: {memory['peak_rss_mib_before_baseline']} MiB)" if baseline is not None else "") +
                 (f"; device memory (ours) {device} MiB" if device is not None else ""))
    lines.extend(decoder_lines(report.get("decoders")))
    lines.extend(f"warning: {w}" for w in report["warnings"])
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, model, inputs, per-stage statistics, ratios, throughput, warnings."""
    out = [f"# trtmass bench: {report['model']['model_id']}", "",
           f"Created {report['created']}" + (f" by `{report['command']}`" if report["command"] else "") + "."]
    for section in (_md_machine, _md_model, _md_run, _md_latency, _md_ratios, _md_throughput, _md_decoders,
                    _md_warnings, _md_stages):
        out += section(report)
    return "\n".join(out) + "\n"


def _md_machine(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    gpus = "; ".join(f"{g['name']}, driver {g['driver']}, {g['memory_total_mib']} MiB, compute capability "
                     f"{g['compute_capability']}" for g in machine["gpus"]) or "none"
    return ["", "## Machine", "",
            f"- CPU: {machine['cpu_model']}; {machine['logical_cores']} logical, {machine['physical_cores'] or '?'} "
            f"physical, {machine['usable_cores']} usable cores; {machine['memory_total_mib']} MiB memory",
            f"- GPU: {gpus}",
            f"- Python {machine['python']} on {machine['platform']}",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())]


def _md_model(report: dict[str, Any]) -> list[str]:
    model = report["model"]
    geometry = model["geometry"]
    thresholds = {k: v for k, v in model["graph_spec"].items() if k != "geometry"}
    return ["", "## Model", "",
            f"- `{model['path']}`: {model['model_id']}, precision {model['precision']}, target {model['target']}, "
            f"init `{model['init']}`",
            f"- weights sha256 `{model['weights_sha256']}`; file sha256 `{model['file_sha256']}`",
            f"- {model['model_spec']['arch']}, head width {model['model_spec']['head_width']}; tile "
            f"{geometry['tile_hw'][0]} x {geometry['tile_hw'][1]}, grid {geometry['grid']}, canvas "
            f"{geometry['canvas_hw'][0]} x {geometry['canvas_hw'][1]}, {geometry['views']} views",
            "- thresholds: " + ", ".join(f"{k} {v}" for k, v in thresholds.items())]


def _md_run(report: dict[str, Any]) -> list[str]:
    settings, pipelines = report["settings"], report["pipelines"]
    inputs = settings["inputs"]
    source = (f"{inputs['count']} synthetic phantoms (scale {inputs['scale']}, seed {inputs['seed']})"
              if inputs["source"] == "synthetic" else f"{len(inputs['files'])} files from {inputs['path']}")
    out = ["", "## Run", "",
           f"- inputs: {source}; {settings['warmup']} warm-up (excluded) and {settings['runs']} timed mammograms per "
           "pipeline" + (", interleaved, order alternating" if "baseline" in pipelines else "")]
    for pipeline in pipelines.values():
        extra = ", ".join(f"{k} {v}" for k, v in pipeline.items()
                          if k in ("device", "threads", "torch_threads", "providers", "weights_from", "pixel_decoder",
                                   "decode_threads"))
        out.append(f"- {pipeline['label']}: {extra}")
    return out


def _md_latency(report: dict[str, Any]) -> list[str]:
    out = ["", "## Latency (ms)", "",
           "| pipeline | stage | min | median | mean | p90 | p95 | p99 | max | CoV |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, pipeline in report["pipelines"].items():
        rows = [(STAGE_LABELS[key], pipeline["stages"][key]["stats"]) for key in STAGE_KEYS]
        rows.append(("**end to end**", pipeline["end_to_end"]["stats"]))
        rows += [(f"(inference: {key})", value["stats"]) for key, value in pipeline["detail"].items()]
        for label, figures in rows:
            if figures is None:
                out.append(f"| {name} | {label} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | |")
                continue
            cells = " | ".join(_ms(figures[k]) for k in ("min", "median", "mean", "p90", "p95", "p99", "max"))
            out.append(f"| {name} | {label} | {cells} | {100 * figures['cov']:.1f} % |")
    return [*out, "", "n/a: the stage does not exist on that backend (no separate host/device copy on the CPU)."]


def _md_ratios(report: dict[str, Any]) -> list[str]:
    ratios, pipelines = report["ratios"], report["pipelines"]
    if ratios is None:
        return []
    out = ["", "## Against the baseline (ours median / baseline median)", "",
           "| stage | ours | baseline | ratio |", "| --- | --- | --- | --- |"]
    for key in (*STAGE_KEYS, "end_to_end"):
        mine = (pipelines["ours"]["end_to_end"] if key == "end_to_end" else pipelines["ours"]["stages"][key])
        theirs = (pipelines["baseline"]["end_to_end"] if key == "end_to_end"
                  else pipelines["baseline"]["stages"][key])
        ratio = ratios["end_to_end"] if key == "end_to_end" else ratios["stages"][key]
        label = "**end to end**" if key == "end_to_end" else STAGE_LABELS[key]
        out.append(f"| {label} | {_ms(mine['stats'] and mine['stats']['median'])} | "
                   f"{_ms(theirs['stats'] and theirs['stats']['median'])} | "
                   f"{'n/a' if ratio is None else f'**{ratio:.3f}**' if key == 'end_to_end' else f'{ratio:.3f}'} |")
    return out


def _md_throughput(report: dict[str, Any]) -> list[str]:
    out = ["", "## Throughput and memory", ""]
    for name, pipeline in report["pipelines"].items():
        throughput, memory = pipeline["throughput"], pipeline["memory"]
        device = "" if memory["device_peak_mib"] is None else f"; device memory peak {memory['device_peak_mib']} MiB"
        out.append(f"- {name}: {throughput['mammograms_per_s']:.3f} mammograms/s, {throughput['views_per_s']:.2f} "
                   f"views/s ({throughput['basis']}){device}")
    memory = report["memory"]
    out.append(f"- peak resident memory of the process: {memory['peak_rss_mib']} MiB"
               + (f" ({memory['peak_rss_mib_before_baseline']} MiB with ours alone, before the baseline was loaded)"
                  if memory["peak_rss_mib_before_baseline"] is not None else ""))
    if memory["gpu_process_used_mib"] is not None:
        out.append(f"- GPU memory used by the process (nvidia-smi, end of run): {memory['gpu_process_used_mib']} MiB")
    return out


def decoder_lines(section: dict[str, Any] | None) -> list[str]:
    """Terminal / Markdown lines of the comparison (none when it was not run)."""
    if not section:
        return []
    lines = [f"read + decode by decoder (median ms of {section['runs']} reads each; ratio to pydicom):"]
    for label, entry in section["decoders"].items():
        ratio = entry["ratio_to_pydicom"]
        lines.append(f"  {label:<16}{entry['stats']['median']:>10.1f} ms"
                     + ("" if ratio is None else f"   x{ratio:.3f}")
                     + f"   decoded by {', '.join(entry.get('decoded_by', [])) or '?'}")
    lines += [f"  {label}: not here ({why})" for label, why in section["unavailable"].items()]
    lines += [f"  MISMATCH {what}" for what in section["mismatches"]]
    return lines


def _md_decoders(report: dict[str, Any]) -> list[str]:
    lines = decoder_lines(report.get("decoders"))
    return ["", "## Read + decode by decoder", "", "```", *lines, "```"] if lines else []


def _md_warnings(report: dict[str, Any]) -> list[str]:
    return ["", "## Warnings", "", *(f"- {w}" for w in report["warnings"])] if report["warnings"] else []


def _md_stages(report: dict[str, Any]) -> list[str]:
    return ["", "## Stages", "", *(f"- {STAGE_LABELS[k]}: {d}" for k, d in report["stage_definitions"].items()),
            "- end to end: from opening the file to the JSON result on disk; the stages partition it, so per "
            "mammogram they add up exactly (medians only approximately)"]


def write_markdown(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, markdown(report))


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Histogram of end-to-end latencies (the baseline's overlaid when measured), medians marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:
        raise BackendUnavailableError(f"--plot needs matplotlib ({error}); pip install 'trt_mass[eval]'") from error
    series = [(name, pipeline["end_to_end"]["samples_ms"], pipeline["end_to_end"]["stats"]["median"])
              for name, pipeline in report["pipelines"].items()]
    everything = np.concatenate([np.asarray(samples) for _, samples, _ in series])
    low, high = float(everything.min()), float(everything.max())
    logarithmic = low > 0 and high / low > 5
    if high <= low:
        high = low + 1.0
    bins = np.geomspace(low, high, 31) if logarithmic else np.linspace(low, high, 31)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    colours = {"ours": "tab:blue", "baseline": "tab:orange"}
    for name, samples, median in series:
        colour = colours.get(name, "tab:gray")
        axes.hist(samples, bins=bins.tolist(), alpha=0.6, color=colour, label=f"{name}: median {_ms(median)} ms")
        axes.axvline(median, color=colour, linestyle="--", linewidth=1)
    if logarithmic:
        axes.set_xscale("log")
    model = report["model"]
    title = f"{model['model_id']} on {report['pipelines']['ours']['backend']}"
    if report["ratios"] is not None and report["ratios"]["end_to_end"] is not None:
        title += f" — ours / baseline {report['ratios']['end_to_end']:.3f}"
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("end-to-end latency per mammogram (ms)")
    axes.set_ylabel("mammograms")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=path.suffix) as temporary:  # the suffix picks the format, as in savefig
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
