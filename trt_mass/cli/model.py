"""`trtmass export` and `trtmass info`: the engine-graph ONNX and its metadata."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from trt_mass.atomic import refuse_overwriting
from trt_mass.cli.errors import maps_errors
from trt_mass.errors import ConfigError, ModelError


def _graph_spec(tile: str, grid: int, **thresholds: Any) -> Any:
    from trt_mass.spec import GraphSpec, TileGeometry, parse_hw

    tile_h, tile_w = parse_hw(tile)
    return GraphSpec(geometry=TileGeometry(tile_h, tile_w, grid), **thresholds)


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the .onnx file.")
@click.option("--init", "init_mode", type=click.Choice(["checkpoint", "random"]), default="checkpoint",
              show_default=True, help="Weights from CHECKPOINT, or random (said so in the metadata).")
@click.option("--arch", type=click.Choice(["resnet18", "resnet34", "resnet50"]), default=None,
              help="Backbone, with --init random [default: resnet50].")
@click.option("--head-width", type=int, default=None, help="FPN/head channels, with --init random [default: 256].")
@click.option("--seed", type=int, default=None, help="Seed of the random weights, with --init random [default: 0].")
@click.option("--random-prior", type=float, default=None,
              help="Initial class probability of random weights, with --init random (the paper: 0.01) "
                   "[default: 0.01].")
@click.option("--tile", default=None,
              help="View size HEIGHTxWIDTH (canvas pixels) [default: the checkpoint's training tile, else 768x640].")
@click.option("--grid", type=int, default=None,
              help="Tiles per side (odd; 50 % overlap) [default: as trained, else 5].")
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
@click.option("--view-selection", type=click.Choice(["tissue", "all"]), default="tissue", show_default=True,
              help="tissue: the graph also takes view_index and runs only the views the host finds breast tissue "
                   "in (the full view always); all: every view, the paper's way.")
@click.option("--tissue-floor", type=float, default=0.02, show_default=True,
              help="View selection: the background threshold is at least this fraction of full scale.")
@click.option("--tissue-min-fraction", type=float, default=0.01, show_default=True,
              help="View selection: a tile runs when at least this fraction of it is tissue.")
@click.option("--tissue-cover", type=click.Choice(["every", "central"]), default="every", show_default=True,
              help="View selection: every tile with tissue (skipped tiles are air: the same findings as all "
                   "views), or central: only the tile each tissue block lies most centrally in (fewer views; "
                   "each point of the breast is still seen a quarter tile from a tile's edge).")
@click.option("--network-only", is_flag=True, help="Export only backbone + heads on the view batch.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--operating-point", "operating_points", multiple=True, metavar="NAME=SCORE",
              help="Record a score threshold, e.g. 1fppi=0.35 (repeatable; NAME: 0.25fppi, 0.5fppi, 1fppi, 2fppi). "
                   "Usually measured instead: trtmass eval --write-operating-points.")
@maps_errors
def export(checkpoint: Path | None, output: Path, init_mode: str, arch: str | None, head_width: int | None,
           seed: int | None, random_prior: float | None, tile: str | None, grid: int | None, network_only: bool,
           no_simplify: bool,
           operating_points: tuple[str, ...], **thresholds: Any) -> None:
    """Export CHECKPOINT (or random weights) as the engine-graph ONNX."""
    if init_mode == "checkpoint" and checkpoint is None:
        raise ConfigError("give a CHECKPOINT, or --init random for random weights")
    if init_mode == "random" and checkpoint is not None:
        raise ConfigError("--init random takes no CHECKPOINT")
    random_only = {"--arch": arch, "--head-width": head_width, "--seed": seed, "--random-prior": random_prior}
    stray = [name for name, value in random_only.items() if value is not None]
    if checkpoint is not None and stray:
        raise ConfigError(f"{', '.join(stray)}: only with --init random; {checkpoint} holds its own network")
    from trt_mass.model.checkpoint import load_checkpoint, random_network
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.outputs.operating_point import given_operating_points
    from trt_mass.spec import ModelSpec, parse_hw

    points = given_operating_points(operating_points)
    refuse_overwriting({"-o/--output": output}, {"the CHECKPOINT": checkpoint})

    trained: dict[str, Any] = {}
    if checkpoint is not None:
        network, extra = load_checkpoint(checkpoint)
        trained = dict(extra.get("geometry") or {})
        if trained and not {"tile_h", "tile_w"} <= set(trained):
            raise ModelError(f"{checkpoint}: malformed trt_mass checkpoint (its geometry {trained} has no tile size)")
        init = f"checkpoint:{checkpoint.name}"
    else:
        default = ModelSpec()
        model_spec = ModelSpec(arch=default.arch if arch is None else arch,
                               head_width=default.head_width if head_width is None else head_width)
        seed, random_prior = 0 if seed is None else seed, 0.01 if random_prior is None else random_prior
        network = random_network(model_spec, seed, random_prior)
        init = f"random:seed={seed},prior={random_prior}"
    trained_tile = f"{trained['tile_h']}x{trained['tile_w']}" if trained else None
    for name, given, as_trained in (("--tile", tile, trained_tile), ("--grid", grid, trained.get("grid"))):
        if name == "--tile" and given is not None:
            given = "x".join(map(str, parse_hw(str(given))))  # 64X64 is 64x64
        if given is not None and as_trained is not None and str(given) != str(as_trained):
            raise ConfigError(f"{checkpoint} was trained with {name} {as_trained}; exporting it with {given} would "
                              "change the scale the network sees (retrain or fine-tune at that geometry)")
    spec = _graph_spec(tile or trained_tile or "768x640", grid if grid is not None else trained.get("grid") or 5,
                       **thresholds)
    started = time.perf_counter()
    metadata = export_onnx(network, init, ExportOptions(spec, network_only, not no_simplify, points), output)
    click.echo(
        f"wrote {output} ({metadata.kind}, {metadata.model_id}, init {init}, "
        f"inputs {[(t.name, t.dtype, t.shape) for t in metadata.inputs]}) in "
        f"{time.perf_counter() - started:.1f} s"
    )


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@maps_errors
def info(model: Path) -> None:
    """Print a model's trt_mass metadata as JSON."""
    from trt_mass.metadata import read_onnx_metadata

    click.echo(json.dumps(json.loads(read_onnx_metadata(model).to_json()), indent=2))
