"""`trtmass train` and `trtmass eval`: train the RetinaNet, measure a model's FROC."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from trt_mass.cli.errors import maps_errors
from trt_mass.errors import InputError


@click.command()
@click.option("--data", "data", required=True, multiple=True,
              help="Data set spec (repeatable): DIR with truth.csv, mias:DIR or inbreast:DIR.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for checkpoints (epochNNN.pt, last.pt).")
@click.option("--arch", type=click.Choice(["resnet18", "resnet34", "resnet50"]), default=None,
              help="Backbone [default: resnet50, or the --init checkpoint's].")
@click.option("--head-width", type=int, default=None, help="FPN/head channels [default: 256, or the --init "
              "checkpoint's].")
@click.option("--tile", default="768x640", show_default=True, help="View size HEIGHTxWIDTH (as exported).")
@click.option("--grid", type=int, default=5, show_default=True)
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True, help="Adam learning rate (the paper: 1e-5).")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="cosine: decay from --lr to 0 over --epochs (per step; --resume continues it).")
@click.option("--time-budget", "time_budget_s", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Seconds of training: the run ends when they are spent (--epochs is then a cap) and a cosine "
                   "schedule decays over them instead of over --epochs (for a machine lent for a fixed time).")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--folds", type=int, default=None, help="Patient-wise K-fold: train on all folds but --fold.")
@click.option("--fold", type=int, default=None, help="With --folds: the test fold, left out [default: 0].")
@click.option("--init", "init_checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Start from this checkpoint (fine-tuning).")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A torchvision ResNet state dict (e.g. ImageNet weights you provide; nothing is downloaded).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-fold", type=int, default=None,
              help="With --folds: pick the epoch on this fold (not trained on); writes best.pt and history.json.")
@click.option("--val-data", multiple=True,
              help="Validate on the --val-fold images of this --data set only (repeatable; default: all).")
@click.option("--intensity-aug", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Probability of each intensity transform (gamma, contrast, unsharp masking); 0: none.")
@click.option("--hard-negatives", type=click.IntRange(0), default=0, show_default=True,
              help="Sections per image without a mass centred where the network fired the epoch before.")
@click.option("--random-tiles", type=click.IntRange(0), default=1, show_default=True,
              help="Random sections per image and epoch (besides the full view and one per mass).")
@maps_errors
def train(data: tuple[str, ...], out_dir: Path, arch: str | None, head_width: int | None, tile: str, grid: int,
          epochs: int, lr: float, lr_schedule: str, batch_size: int, folds: int | None, fold: int | None,
          init_checkpoint: Path | None,
          backbone_weights: Path | None, resume: bool, device: str, seed: int, val_fold: int | None,
          val_data: tuple[str, ...], intensity_aug: float, hard_negatives: int, random_tiles: int,
          time_budget_s: float | None) -> None:
    """Train the RetinaNet on labelled mammograms (focal loss, Adam), one checkpoint per epoch."""
    from trt_mass.errors import ConfigError
    from trt_mass.model.train import TrainConfig
    from trt_mass.model.train import train as run_training
    from trt_mass.spec import ModelSpec, TileGeometry, parse_hw

    if fold is not None and folds is None:
        raise ConfigError("--fold needs --folds (without it every image is trained on)")
    tile_h, tile_w = parse_hw(tile)
    spec = None  # with --init: the checkpoint's, unless --arch/--head-width ask for another (refused)
    if arch is not None or head_width is not None or init_checkpoint is None:
        base = ModelSpec()
        if init_checkpoint is not None:
            from trt_mass.model.checkpoint import load_checkpoint

            base = load_checkpoint(init_checkpoint)[0].spec
        spec = dataclasses.replace(base, arch=base.arch if arch is None else arch,
                                   head_width=base.head_width if head_width is None else head_width)
    config = TrainConfig(data=data, out_dir=out_dir, spec=spec,
                         geometry=TileGeometry(tile_h, tile_w, grid), epochs=epochs, lr=lr, batch_size=batch_size,
                         folds=folds, fold=fold or 0, init=init_checkpoint, backbone_weights=backbone_weights,
                         resume=resume, device=device, seed=seed, val_fold=val_fold, val_data=val_data,
                         intensity=intensity_aug, lr_schedule=lr_schedule,
                         hard_negatives=hard_negatives, random_tiles=random_tiles, time_budget_s=time_budget_s)
    last = run_training(config)
    chosen = last.with_name("best.pt") if val_fold is not None else last
    click.echo(f"checkpoint: {chosen}; export it with: trtmass export {chosen} --tile {tile_h}x{tile_w} --grid {grid} "
               "-o model.onnx")


@click.command("eval")
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
@click.option("--fold", type=int, default=None, help="With --folds: the test fold, left out [default: 0].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold assignment (as in train).")
@click.option("--raster-bits", type=click.IntRange(8, 16), default=None,
              help="Significant bits of 16-bit PNG/TIFF images, as for detect [default: the file's own, else its "
                   "maximum].")
@click.option("--all-views", is_flag=True,
              help="Run every view even when the model selects the views with tissue (its FROC without selection).")
@click.option("--write-operating-points", is_flag=True,
              help="Write the score thresholds for 0.25/0.5/1/2 false positives per image on this data into the "
                   "(first) model's metadata; detect and watch then show findings at its 1-FPPI point.")
@maps_errors
def evaluate(models: tuple[Path, ...], compare: tuple[Path, ...], data: str, out_dir: Path, criterion: str,
             iou_threshold: float, bootstrap: int, threads: int | None, folds: int | None, fold: int,
             seed: int, raster_bits: int | None, all_views: bool, write_operating_points: bool) -> None:
    """FROC and related figures of a model on a labelled data set (JSON, CSV and PNG plots)."""
    from trt_mass.eval.run import EvalConfig, run_eval

    config = EvalConfig(models=models + compare, data=data, out_dir=out_dir, criterion=criterion,
                        iou_threshold=iou_threshold, bootstrap=bootstrap, threads=threads, folds=folds, fold=fold,
                        seed=seed, write_operating_points=write_operating_points, raster_bits=raster_bits,
                        all_views=all_views)
    report = run_eval(config, progress=True)
    refused: list[str] = []
    for name, summary in report["models"].items():
        points = "undefined (no lesions)"
        if summary["lesions"]:
            points = ", ".join(f"{p}: {v['tpr']:.3f}" for p, v in summary["tpr_at_fppi"].items())
        click.echo(f"{name}: {summary['images']} images, {summary['lesions']} lesions; TPR at FPPI {points}")
        refused = refused or summary["refused"]
        if summary.get("operating_points_not_written"):
            click.echo(f"trtmass: operating points not written into {summary['model']}: "
                       f"{summary['operating_points_not_written']}", err=True)
        written = summary.get("operating_points_written")
        if written:
            scores = ", ".join(f"{fppi} FPPI: score >= {score:.3f}" for fppi, score in written["scores"].items())
            click.echo(f"operating points written into {summary['model']}: {scores}")
    click.echo(f"report: {out_dir}/eval.json, froc.csv, tpr_at_fppi.csv, lesions.csv, froc.png, tpr_vs_iou.png, "
               "fp_normals.png")
    if refused:  # their lesions are not in the figures: say so, and fail as detect does
        for reason in refused:
            click.echo(f"trtmass: refused {reason}", err=True)
        click.echo(f"trtmass: {len(refused)} image(s) refused and left out of the figures above", err=True)
        sys.exit(InputError.exit_code)
