"""`trtmass`: a thin click layer that builds typed configs and calls the library.

Heavy packages (torch, onnx, onnxruntime, tensorrt) are imported inside the commands that need them,
so `trtmass --help` stays fast.  Library errors (TrtMassError) become a one-line message and the
error's exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from trt_mass.errors import ConfigError, InputError, TrtMassError

F = TypeVar("F", bound=Callable[..., Any])


def _maps_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TrtMassError as error:
            click.echo(f"trtmass: error: {error}", err=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trt_mass")
def main() -> None:
    """Mammogram mass detection with a RetinaNet: export the engine graph, inspect it, detect."""


def _graph_spec(tile: str, grid: int, **thresholds: Any) -> Any:
    from trt_mass.spec import GraphSpec, TileGeometry, parse_hw

    tile_h, tile_w = parse_hw(tile)
    return GraphSpec(geometry=TileGeometry(tile_h, tile_w, grid), **thresholds)


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the .onnx file.")
@click.option("--init", "init_mode", type=click.Choice(["checkpoint", "random"]), default="checkpoint",
              show_default=True, help="Weights from CHECKPOINT, or random (said so in the metadata).")
@click.option("--arch", type=click.Choice(["resnet18", "resnet34", "resnet50"]), default="resnet50",
              show_default=True, help="Backbone, with --init random.")
@click.option("--head-width", type=int, default=256, show_default=True, help="FPN/head channels, with --init random.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--random-prior", type=float, default=0.01, show_default=True,
              help="Initial class probability of random weights (the paper: 0.01).")
@click.option("--tile", default="768x640", show_default=True, help="View size HEIGHTxWIDTH (canvas pixels).")
@click.option("--grid", type=int, default=5, show_default=True, help="Tiles per side (odd; 50 %% overlap).")
@click.option("--pre-nms-top-k", type=int, default=1000, show_default=True)
@click.option("--nms-iou", type=float, default=0.1, show_default=True)
@click.option("--max-per-view", type=int, default=300, show_default=True)
@click.option("--score-threshold", type=float, default=0.1, show_default=True)
@click.option("--merge-iou", type=float, default=0.2, show_default=True)
@click.option("--max-candidates", type=int, default=512, show_default=True, help="N: merged candidates/outputs.")
@click.option("--min-area-mm2", type=float, default=24.5, show_default=True)
@click.option("--min-area-canvas-px", type=float, default=1600.0, show_default=True)
@click.option("--canvas-dtype", type=click.Choice(["uint16", "int32"]), default="uint16", show_default=True,
              help="Canvas input type; int32 for TensorRT (it has no uint16 tensors).")
@click.option("--network-only", is_flag=True, help="Export only backbone + heads on the view batch.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@_maps_errors
def export(checkpoint: Path | None, output: Path, init_mode: str, arch: str, head_width: int, seed: int,
           random_prior: float, tile: str, grid: int, network_only: bool, no_simplify: bool,
           **thresholds: Any) -> None:
    """Export CHECKPOINT (or random weights) as the engine-graph ONNX."""
    spec = _graph_spec(tile, grid, **thresholds)
    if init_mode == "checkpoint" and checkpoint is None:
        raise ConfigError("give a CHECKPOINT, or --init random for random weights")
    if init_mode == "random" and checkpoint is not None:
        raise ConfigError("--init random takes no CHECKPOINT")
    from trt_mass.export import ExportOptions, export_onnx
    from trt_mass.model.checkpoint import load_checkpoint, random_network
    from trt_mass.spec import ModelSpec

    if checkpoint is not None:
        network, _ = load_checkpoint(checkpoint)
        init = f"checkpoint:{checkpoint.name}"
    else:
        network = random_network(ModelSpec(arch=arch, head_width=head_width), seed, random_prior)
        init = f"random:seed={seed},prior={random_prior}"
    started = time.perf_counter()
    metadata = export_onnx(network, init, ExportOptions(spec, network_only, not no_simplify), output)
    click.echo(
        f"wrote {output} ({metadata.kind}, {metadata.model_id}, init {init}, "
        f"inputs {[(t.name, t.dtype, t.shape) for t in metadata.inputs]}) in "
        f"{time.perf_counter() - started:.1f} s"
    )


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@_maps_errors
def info(model: Path) -> None:
    """Print a model's trt_mass metadata as JSON."""
    from trt_mass.metadata import read_onnx_metadata

    click.echo(json.dumps(json.loads(read_onnx_metadata(model).to_json()), indent=2))


def _collect_inputs(inputs: tuple[Path, ...]) -> list[Path]:
    from trt_mass.raster import RASTER_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES))
        else:
            files.append(item)
    return files


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Engine-graph ONNX.")
@click.option("--backend", type=click.Choice(["ort", "auto"]), default="ort", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder for <name>.json results.")
@click.option("--threads", type=int, default=None, help="ONNX Runtime intra-op threads.")
@click.option("--pixel-spacing", type=float, default=None, help="Pixel spacing in mm (rasters carry none).")
@_maps_errors
def detect(inputs: tuple[Path, ...], model: Path, backend: str, out_dir: Path, threads: int | None,
           pixel_spacing: float | None) -> None:
    """Detect masses in PNG/TIFF mammograms (files or folders); writes one JSON per image."""
    from trt_mass.pipeline import Detector
    from trt_mass.raster import read_raster

    files = _collect_inputs(inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    refused = 0
    total_findings = 0
    started = time.perf_counter()
    spacing = None if pixel_spacing is None else (pixel_spacing, pixel_spacing)
    with Detector(model, backend=backend, threads=threads) as detector:
        metadata = detector.metadata
        for path in files:
            try:
                result = detector.detect(read_raster(path), pixel_spacing_mm=spacing, source=str(path))
            except InputError as error:
                refused += 1
                click.echo(f"trtmass: refused {error}", err=True)
                continue
            total_findings += len(result.findings)
            record = {
                "source": path.name,
                "model_id": metadata.model_id,
                "weights_sha256": metadata.weights_sha256,
                "backend": detector.runner.backend,
                "precision": metadata.precision,
                "image_hw": list(result.letterbox.original_hw),
                "findings": [f.to_dict() for f in result.findings],
                "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
            }
            target = out_dir / f"{path.stem}.json"
            temporary = target.with_suffix(".json.tmp")
            temporary.write_text(json.dumps(record, indent=2))
            temporary.replace(target)
            click.echo(f"{path}: {len(result.findings)} finding(s) -> {target}")
    click.echo(
        f"summary: {len(files)} file(s), {total_findings} finding(s), {refused} refused, "
        f"{time.perf_counter() - started:.1f} s"
    )
    if refused:
        sys.exit(InputError.exit_code)


if __name__ == "__main__":
    main()
