"""`trtmass bench`: the click command (the library is trt_mass.bench).  Imports nothing heavy at load time."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from trt_mass.atomic import refuse_overwriting
from trt_mass.cli.errors import maps_errors
from trt_mass.cli.options import decoder_options, triton_options
from trt_mass.errors import ConfigError, ModelError
from trt_mass.runners.select import ALL_CHOICES


@click.command()
@click.option("--model", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Engine-graph model (.onnx; for --backend trt what the TensorRT runner loads).")
@click.option("--backend", type=click.Choice(ALL_CHOICES), default="ort", show_default=True,
              help="ort: ONNX Runtime; trt: TensorRT; torch: the same graph's PyTorch modules, one batched call; "
                   "triton: a Triton server (--triton-url), its round trip reported as the 'network' stage.")
@triton_options()
@click.option("--all-views", is_flag=True,
              help="Run every view even when the model selects the views with tissue (the paper's behaviour).")
@click.option("--input", "input_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of DICOM/PNG/TIFF mammograms (read from disk every run).")
@click.option("--synthetic", type=int, default=None,
              help="Write N synthetic phantoms to a temporary folder and read them from there [default: 4].")
@click.option("--synthetic-scale", type=float, default=1.0, show_default=True,
              help="Phantom size as a fraction of the vendors' native sizes (1.0: full-size mammograms).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the phantoms.")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed mammograms per pipeline first.")
@click.option("--runs", type=int, default=10, show_default=True,
              help="Timed mammograms per pipeline, cycling through the inputs.")
@click.option("--threads", type=int, default=None,
              help="ONNX Runtime intra-op threads (and torch's, for --backend torch and the baseline).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Device of --backend torch (auto: cuda when available).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The checkpoint the model was exported from (torch backend / baseline of trained models).")
@click.option("--baseline", is_flag=True,
              help="Also time the paper's way (PyTorch eager, 26 views one by one, merge in Python) on the same "
                   "inputs, interleaved, and print ours / baseline per stage.")
@click.option("--baseline-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the baseline's weights from this model (e.g. the fp32 model an int8 one was made from).")
@click.option("--baseline-device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Device of the baseline (auto: the GPU when ours runs on one, else the CPU).")
@click.option("--pixel-spacing", type=float, default=None, help="Pixel spacing in mm for PNG/TIFF inputs.")
@click.option("--raster-bits", type=click.IntRange(8, 16), default=None,
              help="Significant bits of 16-bit PNG/TIFF inputs [default: the file's own, else its maximum].")
@click.option("--cov-threshold", type=float, default=10.0, show_default=True,
              help="Warn when a coefficient of variation exceeds this many percent (a noisy machine).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the full report (schema trt_mass.bench/1) here.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report as Markdown here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a histogram of end-to-end latencies (PNG; needs matplotlib).")
@decoder_options()
@click.option("--compare-decoders", is_flag=True,
              help="Also time read + decode alone with every pixel decoder available here (pydicom, OpenJPEG with 1 "
                   "and N threads, nvImageCodec on a GPU), on the same files, and check they give the same images.")
@maps_errors
def bench(model: Path, backend: str, triton_url: str | None, triton_model: str, triton_timeout_s: float,
          all_views: bool,
          input_dir: Path | None, synthetic: int | None, synthetic_scale: float, seed: int,
          warmup: int, runs: int, threads: int | None, device: str, checkpoint: Path | None, baseline: bool,
          baseline_model: Path | None, baseline_device: str, pixel_spacing: float | None, raster_bits: int | None,
          cov_threshold: float,
          json_path: Path | None, markdown_path: Path | None, plot_path: Path | None, decoder: str,
          decode_threads: int | None, compare_decoders: bool) -> None:
    """Latency of the whole pipeline per stage (read+decode, canvas, copies, inference, post-processing+writing)
    and end to end, with the machine, the model and, with --baseline, the ratio to the paper's way of running it.

    Stages that do not exist on a backend (host/device copies on the CPU) are reported as n/a.
    """
    from trt_mass.bench.report import summary_lines, write_markdown, write_plot, write_report_json
    from trt_mass.bench.run import BenchConfig, run_bench

    if input_dir is not None and synthetic is not None:
        raise ConfigError("give --input or --synthetic, not both")
    if input_dir is None and synthetic is None:
        synthetic = 4
    config = BenchConfig(
        model=model, backend=backend, inputs=input_dir, synthetic=synthetic, synthetic_scale=synthetic_scale,
        seed=seed, warmup=warmup, runs=runs, threads=threads, device=device, checkpoint=checkpoint,
        baseline=baseline, baseline_model=baseline_model, baseline_device=baseline_device,
        pixel_spacing_mm=pixel_spacing, raster_bits=raster_bits, cov_threshold=cov_threshold / 100.0,
        command=shlex.join(["trtmass", *sys.argv[1:]]), decoder=decoder, decode_threads=decode_threads,
        compare_decoders=compare_decoders, triton_url=triton_url, triton_model=triton_model,
        triton_timeout_s=triton_timeout_s, all_views=all_views,
    )
    if not model.is_file():
        raise ModelError(f"{model}: no such model file")
    refuse_overwriting({"--json": json_path, "--markdown": markdown_path, "--plot": plot_path},
                       {"the --model": model, "the --baseline-model": baseline_model, "the --checkpoint": checkpoint,
                        "an --input image": sorted(input_dir.rglob("*")) if input_dir is not None else []})
    with click.progressbar(length=(warmup + runs) * (2 if baseline else 1), label="bench",
                           file=sys.stderr) as bar:
        report = run_bench(config, progress=lambda done, total, what: bar.update(1))
    for line in summary_lines(report):
        click.echo(line)
    if json_path is not None:
        write_report_json(report, json_path)
        click.echo(f"report: {json_path}")
    if markdown_path is not None:
        write_markdown(report, markdown_path)
        click.echo(f"markdown: {markdown_path}")
    if plot_path is not None:
        write_plot(report, plot_path)
        click.echo(f"plot: {plot_path}")
