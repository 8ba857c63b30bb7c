"""CLI of precision variants: `trtmass calib make|show`, `trtmass quantize`, `trtmass compare`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trt_mass.atomic import refuse_overwriting
from trt_mass.cli.errors import maps_errors
from trt_mass.errors import ConfigError

if TYPE_CHECKING:
    from trt_mass.precision.winograd import WinogradRule


@click.group()
def calib() -> None:
    """Calibration sets for INT8 variants (manifests in calib/)."""


@calib.command("make")
@click.option("--from", "source", required=True,
              help="Images: DIR (with truth.csv for mass/normal strata, or any folder), mias:DIR or inbreast:DIR.")
@click.option("--count", type=int, required=True, help="How many images to choose.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest to write, e.g. calib/NAME.toml.")
@click.option("--name", default=None, help="Set name [default: the manifest's file name].")
@maps_errors
def calib_make(source: str, count: int, seed: int, output: Path, name: str | None) -> None:
    """Choose a stratified calibration set and write its manifest with a content hash."""
    from trt_mass.precision.calib import make_manifest

    calibration = make_manifest(source, count, seed, output, name, progress=True)
    strata = ", ".join(f"{k}: {v['chosen']}/{v['available']}" for k, v in sorted(calibration.strata.items()))
    click.echo(f"wrote {output}: {len(calibration.images)} images, content sha256 {calibration.content_sha256[:16]}…")
    click.echo(f"strata (finding|vendor|view: chosen/available): {strata}")


@calib.command("show")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--verify", is_flag=True, help="Also re-hash every image (exit 3 when one changed or is missing).")
@maps_errors
def calib_show(manifest: Path, verify: bool) -> None:
    """Print a calibration set and check its hash (and, with --verify, its images)."""
    from trt_mass.precision.calib import load_manifest

    calibration = load_manifest(manifest)
    if verify:
        calibration.verify()
    click.echo(json.dumps({"name": calibration.name, "root": str(calibration.root),
                           "images": len(calibration.images), "content_sha256": calibration.content_sha256,
                           "selection": calibration.selection, "strata": calibration.strata,
                           "verified_images": verify}, indent=2))


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]),
              help="fp16 or int8; fp32 with --target cpu: the same fp32 model with its large 3x3 convolutions "
                   "computed by Winograd F(4x4,3x3) (faster on ONNX Runtime CPUs).")
@click.option("--target", type=click.Choice(["tensorrt", "cpu"]),
              help="Who runs it: TensorRT (symmetric Q/DQ) or ONNX Runtime on a CPU (fastest INT8 there).")
@click.option("--calib", "manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibration manifest (INT8 only), from `trtmass calib make`.")
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]), default=None,
              help="INT8 activation calibration [default: minmax].")
@click.option("--reduce-range", is_flag=True, help="INT8 for CPUs without VNNI (7-bit weights); cpu target only.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Calibration-range cache [default: cache/ beside the manifest; git-ignored].")
@click.option("--no-cache", is_flag=True, help="Recalibrate and write no cache.")
@click.option("--winograd-min-channels", type=click.IntRange(1), default=None,
              help="fp32 cpu: rewrite 3x3 convolutions with at least this many input and output channels "
                   "[default: 256, measured on a 2-core AVX-512 CPU; see benchmarks/RESULTS.md].")
@click.option("--winograd-min-pixels", type=click.IntRange(1), default=None,
              help="fp32 cpu: ... and at least this many output pixels per view [default: 400].")
@click.option("--keep-fp32", "keep_fp32", default=None, metavar="auto|NAMES",
              help="INT8: network layer groups left in fp32: comma-separated names or prefixes (see --list-layers), "
                   "and/or 'auto' (a sensitivity pass on the calibration set keeps the layers INT8 hurts most).")
@click.option("--keep-fp32-max", type=click.IntRange(1), default=4, show_default=True,
              help="auto keeps at most this many layer groups.")
@click.option("--keep-fp32-ratio", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.25, show_default=True,
              help="auto stops once the mixed model's score error is at most this fraction of the all-INT8 error.")
@click.option("--keep-fp32-among", default=None, metavar="NAMES",
              help="auto considers only these layer groups (comma-separated names or prefixes, e.g. 'head').")
@click.option("--sensitivity-images", type=click.IntRange(1), default=4, show_default=True,
              help="auto measures on the first this-many calibration images.")
@click.option("--list-layers", is_flag=True, help="Print the model's layer groups (what --keep-fp32 names) and exit.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@maps_errors
def quantize(model: Path, precision: str | None, target: str | None, manifest: Path | None, method: str | None,
             reduce_range: bool, cache_dir: Path | None, no_cache: bool, winograd_min_channels: int | None,
             winograd_min_pixels: int | None, keep_fp32: str | None, keep_fp32_max: int, keep_fp32_ratio: float,
             keep_fp32_among: str | None, sensitivity_images: int, list_layers: bool, output: Path | None) -> None:
    """Write the FP16, INT8 or CPU-FP32 variant of an fp32 engine-graph MODEL."""
    from trt_mass.precision.calib import load_manifest
    from trt_mass.precision.quantize import QuantizeOptions, describe, list_layer_groups, quantize_model
    from trt_mass.precision.sensitivity import KeepFp32

    if list_layers:
        for group, nodes in list_layer_groups(model).items():
            click.echo(f"{group}" + (f"  ({len(nodes)} pyramid levels)" if len(nodes) > 1 else ""))
        return
    missing = [flag for flag, value in (("--precision", precision), ("--target", target), ("-o/--output", output))
               if value is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    assert precision is not None and target is not None and output is not None
    refuse_overwriting({"-o/--output": output}, {"the MODEL": model, "the --calib manifest": manifest})
    if precision != "int8" and method is not None:
        raise ConfigError(f"--method applies to --precision int8 only ({precision} needs no calibration)")
    if no_cache and cache_dir is not None:
        raise ConfigError("--no-cache and --cache-dir contradict each other; give one")
    calibration = load_manifest(manifest) if manifest is not None else None
    if calibration is not None and not no_cache and cache_dir is None:
        cache_dir = manifest.parent / "cache" if manifest is not None else None
    rule = _winograd_rule(precision, winograd_min_channels, winograd_min_pixels)
    options = QuantizeOptions(precision, target, method or "minmax", reduce_range, None if no_cache else cache_dir,
                              rule, KeepFp32.parse(keep_fp32, max_groups=keep_fp32_max, images=sensitivity_images,
                                                    target_ratio=keep_fp32_ratio, among=_names(keep_fp32_among)))
    started = time.perf_counter()
    metadata = quantize_model(model, output, options, calibration, progress=True)
    cache = metadata.quantization.get("calibration_cache")
    click.echo(f"wrote {output}: {describe(metadata)} in {time.perf_counter() - started:.1f} s"
               + (f"; calibration set {calibration.name} ({calibration.content_sha256[:12]}…), cache {cache}"
                  if calibration else ""))
    _warn_without_vnni(precision, target, reduce_range)


def _warn_without_vnni(precision: str, target: str, reduce_range: bool) -> None:
    """Said, not changed: the variant may be meant for another PC than this one."""
    from trt_mass.precision.cpu import cpu_has_vnni

    if (precision, target, reduce_range) == ("int8", "cpu", False) and cpu_has_vnni() is False:
        click.echo("warning: this CPU has no VNNI: ONNX Runtime's int8 kernels can saturate here "
                   "(int16 sums) and lose findings; for a PC like this one quantize with --reduce-range", err=True)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _winograd_rule(precision: str, min_channels: int | None, min_pixels: int | None) -> WinogradRule:
    from trt_mass.precision.winograd import WinogradRule

    if precision != "fp32" and (min_channels is not None or min_pixels is not None):
        raise ConfigError("--winograd-min-channels/--winograd-min-pixels apply to --precision fp32 --target cpu only")
    default = WinogradRule()
    channels = default.min_in_channels if min_channels is None else min_channels
    return WinogradRule(channels, channels, default.min_output_pixels if min_pixels is None else min_pixels)


@click.command()
@click.argument("model_a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("model_b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", required=True, help="Labelled images: DIR with truth.csv, mias:DIR or inbreast:DIR.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for compare.json.")
@click.option("--max-tpr-drop", type=float, default=0.02, show_default=True,
              help="Fail (exit 6) when TPR at 1 FPPI drops by more than this from A to B.")
@click.option("--match-iou", type=float, default=0.5, show_default=True,
              help="Findings of A and B are the same finding at this IoU.")
@click.option("--criterion", type=click.Choice(["iou", "centre"]), default="iou", show_default=True)
@click.option("--iou", "iou_threshold", type=float, default=0.2, show_default=True, help="Hit criterion vs truth.")
@click.option("--bootstrap", type=int, default=0, show_default=True, help="Patient resamples for CIs.")
@click.option("--threads", type=int, default=None)
@maps_errors
def compare(model_a: Path, model_b: Path, data: str, out_dir: Path | None, max_tpr_drop: float, match_iou: float,
            criterion: str, iou_threshold: float, bootstrap: int, threads: int | None) -> None:
    """Agreement and FROC delta of MODEL_B (e.g. an INT8 variant) against MODEL_A on labelled data."""
    from trt_mass.eval.compare import CompareConfig, enforce_gate, run_compare

    config = CompareConfig(model_a, model_b, data, out_dir, criterion, iou_threshold, match_iou, max_tpr_drop,
                           bootstrap, threads=threads)
    report = run_compare(config, progress=True)
    agreement, accuracy = report["agreement"], report["accuracy"]
    for name in ("a", "b"):
        model = report["models"][name]
        click.echo(f"{name.upper()}: {model['model_id']} ({model['target']}), "
                   f"{1000 * model['seconds_per_image']:.0f} ms/image")
    click.echo(f"agreement: {agreement['matched']} findings matched, {agreement['only_a']} only in A, "
               f"{agreement['only_b']} only in B (Dice {agreement['dice']:.3f}); score |diff| max "
               f"{_fmt(agreement['score_abs_diff']['max'])}, box corner |diff| max "
               f"{_fmt(agreement['box_corner_max_abs_diff_px']['max'])} px")
    points = ", ".join(f"{p}: {v['a']:.3f}->{v['b']:.3f}" for p, v in accuracy["tpr_at_fppi"].items())
    click.echo(f"TPR at FPPI ({accuracy['lesions']} lesions): {points}")
    gate = report["gate"]
    click.echo(f"gate: TPR at 1 FPPI drop {gate['drop']:+.3f} (allowed {gate['max_drop']}): "
               f"{'passed' if gate['passed'] else 'FAILED'}")
    enforce_gate(report)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
