"""`trtmass detect` and `trtmass synth`: mammograms in, results out; phantoms to try it on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from trt_mass.cli.errors import maps_errors
from trt_mass.cli.options import decoder_options, triton_options
from trt_mass.errors import ConfigError, InputError
from trt_mass.runners.select import DEPLOYABLE_CHOICES


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Engine-graph ONNX (default: the bundled demo model).")
@click.option("--backend", type=click.Choice(DEPLOYABLE_CHOICES), default="ort", show_default=True,
              help="ort: ONNX Runtime; trt: the model's TensorRT engine (same folder) or an engine file; auto: "
                   "TensorRT when an engine for this GPU exists, else ONNX Runtime; triton: a Triton server "
                   "(--triton-url) runs the model, checked against --model.")
@triton_options()
@click.option("--all-views", is_flag=True,
              help="Run every view even when the model selects the views with tissue (the paper's behaviour).")
@click.option("--allow-engine-host-code", is_flag=True,
              help="Allow version-compatible TensorRT engines (their embedded runtime runs as host code).")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The only folder TensorRT engines are looked up in and loaded from [default: the model's folder].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder for <sop uid or name>.json results.")
@click.option("--overlay", is_flag=True, help="Also write a downscaled PNG with the boxes and scores.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="truth.csv (trtmass synth's format): ground truth drawn on the overlays in green.")
@click.option("--threads", type=int, default=None, help="ONNX Runtime intra-op threads.")
@click.option("--pixel-spacing", type=float, default=None,
              help="Pixel spacing in mm for inputs that carry none (PNG/TIFF).")
@click.option("--raster-bits", type=click.IntRange(8, 16), default=None,
              help="Significant bits of 16-bit PNG/TIFF inputs [default: the file's sBIT / MaxSampleValue, else "
                   "the smallest of 10, 12, 14, 16 bits holding the image's maximum].")
@click.option("--dicom-out", default="",
              help="DICOM results for DICOM inputs: any of sr,gsps,sc (comma-separated), or 'none'.")
@click.option("--operating-point", default=None, metavar="NAME|SCORE|all",
              help="Findings shown on overlays and DICOM results: the model's 1fppi (0.25fppi, 0.5fppi, 2fppi) "
                   "point, a score, or all [default: the model's 1fppi point, else all]. The JSON lists every "
                   "candidate with `shown`.")
@decoder_options()
@click.option("-v", "--verbose", is_flag=True, help="One line per file.")
@maps_errors
def detect(inputs: tuple[Path, ...], model: Path | None, backend: str, triton_url: str | None, triton_model: str,
           triton_timeout_s: float, all_views: bool, allow_engine_host_code: bool,
           model_dir: Path | None, out_dir: Path,
           overlay: bool, truth: Path | None, threads: int | None, pixel_spacing: float | None,
           raster_bits: int | None, dicom_out: str, operating_point: str | None, decoder: str,
           decode_threads: int | None, verbose: bool) -> None:
    """Detect masses in mammograms: DICOM, PNG or TIFF files, or folders of them."""
    from trt_mass.detect import DetectConfig, FileOutcome, run_detect
    from trt_mass.inputs.files import collect_inputs
    from trt_mass.outputs.dicom import parse_kinds

    if model is None:
        from trt_mass.bundled import default_model

        model = default_model()
    config = DetectConfig(model=model, out_dir=out_dir, backend=backend, threads=threads, overlay=overlay,
                          truth=truth, pixel_spacing_mm=pixel_spacing, raster_bits=raster_bits,
                          dicom_out=parse_kinds(dicom_out), operating_point=operating_point,
                          allow_engine_host_code=allow_engine_host_code, model_dir=model_dir, decoder=decoder,
                          decode_threads=decode_threads, triton_url=triton_url, triton_model=triton_model,
                          triton_timeout_s=triton_timeout_s, all_views=all_views)
    files = collect_inputs(inputs, out_dir)  # after the options are checked
    if not files:
        raise ConfigError(f"no DICOM, PNG or TIFF files found in {', '.join(map(str, inputs))}")
    pixel_decoder = config.pixel_decoder()
    click.echo(f"decoder: {pixel_decoder.name} ({pixel_decoder.reason})", err=True)
    detector = config.detector()

    def report(outcome: FileOutcome) -> None:
        if outcome.error is not None:
            click.echo(f"\ntrtmass: refused {outcome.error}", err=True)
        elif verbose:
            click.echo(f"{outcome.path}: {outcome.findings} finding(s) shown of {outcome.candidates} candidate(s) -> "
                       f"{outcome.result_path}")

    with detector:  # opening may fall back from an engine that will not load (auto): say the backend after it
        click.echo(f"backend: {detector.backend} ({detector.backend_reason})", err=True)
        point = config.point_for(detector)
        if point.warning:
            click.echo(f"trtmass: warning: {point.warning}", err=True)
        click.echo(f"operating point: {point.name}"
                   + ("" if point.score is None else f" (score >= {point.score:.3f}; {point.origin})"), err=True)
        with click.progressbar(files, label="detect", file=sys.stderr) as bar:
            summary = run_detect(bar, config, report, detector=detector, decoder=pixel_decoder)
    click.echo(summary.line())
    click.echo(f"results in {out_dir}" + (" (with .overlay.png pictures)" if overlay else ""))
    if summary.refused:
        sys.exit(InputError.exit_code)


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=int, default=8, show_default=True, help="How many phantoms.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Fraction of the vendors' native sizes (e.g. 0.125 for fast tests); spacing grows to match.")
@click.option("--normal-fraction", type=float, default=0.3, show_default=True, help="Share of images without masses.")
@click.option("--anatomy", type=click.Choice(["realistic", "fill"]), default="realistic", show_default=True,
              help="realistic: breast size, shape and position vary as real ones do, on an 18x24 or 24x30 cm "
                   "detector that fits; fill: the original breast filling the detector (reproduces phantoms made "
                   "before, e.g. the demo model's held-out fill test set).")
@click.option("--distortion-fraction", type=float, default=0.0, show_default=True,
              help="Share of masses drawn as faint stellate distortions (thin radiating lines, faint or no core, "
                   "boxed by their whole extent); 0 keeps the phantoms of a seed as they were.")
@maps_errors
def synth(out_dir: Path, count: int, seed: int, scale: float, normal_fraction: float, anatomy: str,
          distortion_fraction: float) -> None:
    """Write synthetic MG DICOM phantoms and OUT_DIR/truth.csv (boxes in original pixels)."""
    from trt_mass.datasets.synth import write_phantoms

    started = time.perf_counter()
    paths = write_phantoms(out_dir, count, seed, scale=scale, normal_fraction=normal_fraction, anatomy=anatomy,
                           distortion_fraction=distortion_fraction, progress=True)
    click.echo(f"wrote {len(paths)} phantom(s) and truth.csv to {out_dir} in {time.perf_counter() - started:.1f} s")
