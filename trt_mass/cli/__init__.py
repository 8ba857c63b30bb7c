"""`trtmass`: a thin click layer that builds typed configs and calls the library.

Heavy packages (torch, onnx, onnxruntime, tensorrt) are imported inside the commands that need them,
so `trtmass --help` stays fast.  Library errors (TrtMassError) become a one-line message and the
error's exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from trt_mass.cli.errors import maps_errors as _maps_errors
from trt_mass.errors import ConfigError, InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trt_mass")
def main() -> None:
    """Mammogram mass detection with a RetinaNet: export the engine graph, inspect it, detect, make phantoms."""


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
@click.option("--tile", default=None,
              help="View size HEIGHTxWIDTH (canvas pixels) [default: the checkpoint's training tile, else 768x640].")
@click.option("--grid", type=int, default=None,
              help="Tiles per side (odd; 50 %% overlap) [default: as trained, else 5].")
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
           random_prior: float, tile: str | None, grid: int | None, network_only: bool, no_simplify: bool,
           **thresholds: Any) -> None:
    """Export CHECKPOINT (or random weights) as the engine-graph ONNX."""
    if init_mode == "checkpoint" and checkpoint is None:
        raise ConfigError("give a CHECKPOINT, or --init random for random weights")
    if init_mode == "random" and checkpoint is not None:
        raise ConfigError("--init random takes no CHECKPOINT")
    from trt_mass.model.checkpoint import load_checkpoint, random_network
    from trt_mass.model.export import ExportOptions, export_onnx
    from trt_mass.spec import ModelSpec

    trained: dict[str, Any] = {}
    if checkpoint is not None:
        network, extra = load_checkpoint(checkpoint)
        trained = dict(extra.get("geometry") or {})
        init = f"checkpoint:{checkpoint.name}"
    else:
        network = random_network(ModelSpec(arch=arch, head_width=head_width), seed, random_prior)
        init = f"random:seed={seed},prior={random_prior}"
    trained_tile = f"{trained['tile_h']}x{trained['tile_w']}" if trained else None
    for name, given, as_trained in (("--tile", tile, trained_tile), ("--grid", grid, trained.get("grid"))):
        if given is not None and as_trained is not None and str(given) != str(as_trained):
            raise ConfigError(f"{checkpoint} was trained with {name} {as_trained}; exporting it with {given} would "
                              "change the scale the network sees (retrain or fine-tune at that geometry)")
    spec = _graph_spec(tile or trained_tile or "768x640", grid or trained.get("grid") or 5, **thresholds)
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


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Engine-graph ONNX (default: the bundled demo model).")
@click.option("--backend", type=click.Choice(["ort", "trt", "auto"]), default="ort", show_default=True,
              help="ort: ONNX Runtime; trt: the model's TensorRT engine (same folder) or an engine file; auto: "
                   "TensorRT when an engine for this GPU exists, else ONNX Runtime.")
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
@click.option("--dicom-out", default="", help="DICOM results for DICOM inputs: any of sr,gsps,sc (comma-separated).")
@click.option("-v", "--verbose", is_flag=True, help="One line per file.")
@_maps_errors
def detect(inputs: tuple[Path, ...], model: Path | None, backend: str, allow_engine_host_code: bool,
           model_dir: Path | None, out_dir: Path,
           overlay: bool, truth: Path | None, threads: int | None, pixel_spacing: float | None, dicom_out: str,
           verbose: bool) -> None:
    """Detect masses in mammograms: DICOM, PNG or TIFF files, or folders of them."""
    from trt_mass.detect import DetectConfig, FileOutcome, run_detect
    from trt_mass.inputs.files import collect_inputs
    from trt_mass.outputs.dicom import parse_kinds

    files = collect_inputs(inputs)
    if not files:
        raise ConfigError("no DICOM, PNG or TIFF files found in the inputs")
    if model is None:
        from trt_mass.bundled import default_model

        model = default_model()
    from trt_mass.runners import resolve_backend

    backend, model, reason = resolve_backend(backend, model, model_dir=model_dir,
                                             allow_engine_host_code=allow_engine_host_code)
    click.echo(f"backend: {backend} ({reason})", err=True)
    config = DetectConfig(model=model, out_dir=out_dir, backend=backend, threads=threads, overlay=overlay,
                          truth=truth, pixel_spacing_mm=pixel_spacing, dicom_out=parse_kinds(dicom_out),
                          allow_engine_host_code=allow_engine_host_code, model_dir=model_dir)

    def report(outcome: FileOutcome) -> None:
        if outcome.error is not None:
            click.echo(f"\ntrtmass: refused {outcome.error}", err=True)
        elif verbose:
            click.echo(f"{outcome.path}: {outcome.findings} finding(s) -> {outcome.result_path}")

    with click.progressbar(files, label="detect", file=sys.stderr) as bar:
        summary = run_detect(bar, config, on_file=report)
    click.echo(summary.line())
    click.echo(f"results in {out_dir}" + (" (with .overlay.png pictures)" if overlay else ""))
    if summary.refused:
        sys.exit(InputError.exit_code)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=int, default=8, show_default=True, help="How many phantoms.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Fraction of the vendors' native sizes (e.g. 0.125 for fast tests); spacing grows to match.")
@click.option("--normal-fraction", type=float, default=0.3, show_default=True, help="Share of images without masses.")
@_maps_errors
def synth(out_dir: Path, count: int, seed: int, scale: float, normal_fraction: float) -> None:
    """Write synthetic MG DICOM phantoms and OUT_DIR/truth.csv (boxes in original pixels)."""
    from trt_mass.datasets.labelled.synth import write_phantoms

    started = time.perf_counter()
    paths = write_phantoms(out_dir, count, seed, scale=scale, normal_fraction=normal_fraction)
    click.echo(f"wrote {len(paths)} phantom(s) and truth.csv to {out_dir} in {time.perf_counter() - started:.1f} s")


@main.command()
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Engine-graph ONNX.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="TOML file with the settings (see systemd/trtmass-watch.toml).")
@click.option("--polling/--inotify", default=None, help="Poll (network shares) instead of inotify.")
@click.option("--backend", type=click.Choice(["ort", "trt", "auto"]), default=None,
              help="ort, trt (the model's engine in its folder) or auto (TensorRT when an engine fits this GPU).")
@click.option("--allow-engine-host-code/--no-engine-host-code", default=None,
              help="Allow version-compatible TensorRT engines (their embedded runtime runs as host code).")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The only folder TensorRT engines are loaded from [default: the model's folder].")
@click.option("--threads", type=int, default=None, help="ONNX Runtime intra-op threads.")
@click.option("--delete-done/--keep-done", default=None, help="Delete processed inputs instead of moving them.")
@click.option("--overlay/--no-overlay", default=None, help="Also write overlay PNGs.")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None)
@click.option("--dicom-out", default=None, help="DICOM results: any of sr,gsps,sc, or 'none' (default: all three).")
@_maps_errors
def watch(root: Path | None, model: Path | None, config_file: Path | None, polling: bool | None,
          backend: str | None, allow_engine_host_code: bool | None, model_dir: Path | None, threads: int | None,
          delete_done: bool | None,
          overlay: bool | None, log_format: str | None, dicom_out: str | None) -> None:
    """Watch ROOT/incoming and turn every complete mammogram into ROOT/results/<SOP UID>.json.

    Settings: flags > TRTMASS_WATCH_* environment > --config TOML > defaults.  SIGTERM finishes the
    current file and exits; a restart picks up anything left in processing/.
    """
    import signal

    from trt_mass.daemon.config import load_config
    from trt_mass.daemon.service import WatchService

    flags = {"root": root, "model": model, "polling": polling, "backend": backend, "threads": threads,
             "delete_done": delete_done, "overlay": overlay, "log_format": log_format, "dicom_out": dicom_out,
             "allow_engine_host_code": allow_engine_host_code, "model_dir": model_dir}
    config = load_config(flags, config_file)
    service = WatchService(config)
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: service.request_stop())
    sys.exit(service.run())


@main.command("eval")
@click.option("--model", "models", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Engine-graph ONNX (repeat, or use --compare, to put several on one plot).")
@click.option("--compare", "compare", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Further models or precision variants to measure on the same data.")
@click.option("--data", required=True, help="DIR with truth.csv, mias:DIR or inbreast:DIR.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--criterion", type=click.Choice(["iou", "centre"]), default="iou", show_default=True,
              help="Hit: IoU >= --iou (the paper) or detection centre inside the ground-truth box.")
@click.option("--iou", "iou_threshold", type=float, default=0.2, show_default=True)
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="Patient resamples for the CIs (0: none).")
@click.option("--threads", type=int, default=None)
@click.option("--folds", type=int, default=None, help="Evaluate only the patient-wise test fold --fold of K.")
@click.option("--fold", type=int, default=0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold assignment (as in train).")
@_maps_errors
def evaluate(models: tuple[Path, ...], compare: tuple[Path, ...], data: str, out_dir: Path, criterion: str,
             iou_threshold: float, bootstrap: int, threads: int | None, folds: int | None, fold: int,
             seed: int) -> None:
    """FROC and related figures of a model on a labelled data set (JSON, CSV and PNG plots)."""
    from trt_mass.eval.run import EvalConfig, run_eval

    config = EvalConfig(models=models + compare, data=data, out_dir=out_dir, criterion=criterion,
                        iou_threshold=iou_threshold, bootstrap=bootstrap, threads=threads, folds=folds, fold=fold,
                        seed=seed)
    report = run_eval(config, progress=True)
    for name, summary in report["models"].items():
        points = ", ".join(f"{p}: {v['tpr']:.3f}" for p, v in summary["tpr_at_fppi"].items())
        click.echo(f"{name}: {summary['images']} images, {summary['lesions']} lesions; TPR at FPPI {points}")
    click.echo(f"report: {out_dir}/eval.json, froc.csv, tpr_at_fppi.csv, froc.png, tpr_vs_iou.png, fp_normals.png")


@main.command()
@click.option("--data", "data", required=True, multiple=True,
              help="Data set spec (repeatable): DIR with truth.csv, mias:DIR or inbreast:DIR.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for checkpoints (epochNNN.pt, last.pt).")
@click.option("--arch", type=click.Choice(["resnet18", "resnet34", "resnet50"]), default="resnet50", show_default=True)
@click.option("--head-width", type=int, default=256, show_default=True)
@click.option("--tile", default="768x640", show_default=True, help="View size HEIGHTxWIDTH (as exported).")
@click.option("--grid", type=int, default=5, show_default=True)
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True, help="Adam learning rate (the paper: 1e-5).")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--folds", type=int, default=None, help="Patient-wise K-fold: train on all folds but --fold.")
@click.option("--fold", type=int, default=0, show_default=True)
@click.option("--init", "init_checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Start from this checkpoint (fine-tuning).")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A torchvision ResNet state dict (e.g. ImageNet weights you provide; nothing is downloaded).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--seed", type=int, default=0, show_default=True)
@_maps_errors
def train(data: tuple[str, ...], out_dir: Path, arch: str, head_width: int, tile: str, grid: int, epochs: int,
          lr: float, batch_size: int, folds: int | None, fold: int, init_checkpoint: Path | None,
          backbone_weights: Path | None, resume: bool, device: str, seed: int) -> None:
    """Train the RetinaNet on labelled mammograms (focal loss, Adam), one checkpoint per epoch."""
    from trt_mass.model.train import TrainConfig
    from trt_mass.model.train import train as run_training
    from trt_mass.spec import ModelSpec, TileGeometry, parse_hw

    tile_h, tile_w = parse_hw(tile)
    config = TrainConfig(data=data, out_dir=out_dir, spec=ModelSpec(arch=arch, head_width=head_width),
                         geometry=TileGeometry(tile_h, tile_w, grid), epochs=epochs, lr=lr, batch_size=batch_size,
                         folds=folds, fold=fold, init=init_checkpoint, backbone_weights=backbone_weights,
                         resume=resume, device=device, seed=seed)
    last = run_training(config)
    click.echo(f"checkpoint: {last}; export it with: trtmass export {last} --tile {tile} --grid {grid} -o model.onnx")

from trt_mass.cli.precision import calib, compare, quantize  # noqa: E402

main.add_command(calib)
main.add_command(quantize)
main.add_command(compare)

from trt_mass.cli.engine import build_engine, engine_info  # noqa: E402

main.add_command(build_engine)
main.add_command(engine_info)

from trt_mass.cli.bench import bench  # noqa: E402

main.add_command(bench)


if __name__ == "__main__":
    main()
