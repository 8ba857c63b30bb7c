"""Cross-validated FROC of the demo-model recipe on mini-MIAS (issue #18): every fold, not one.

The recipe (the commands are recorded in the results, and `make demo-model` runs the same for the bundled
model):

1. Phantoms: `trtmass synth` realistic anatomy (seed 100) for training; held out: 50 realistic
   (seed 400) and 50 fill-the-detector phantoms (seed 200, the old model card's test set).
2. Pre-training on the training phantoms only (no MIAS patient is seen, so one pre-trained network
   serves every fold): the paper's transfer step with phantoms in place of ImageNet.  With
   --continue-epochs N it goes on for N more epochs on twice the phantoms (another --phantoms realistic
   ones, seed 500) with hard negatives (lr --continue-lr, cosine): the phantom TPR of the network alone
   rises from ~0.88 to ~0.94 at 1 FPPI (RESULTS.md "Longer pre-training on phantoms").
3. Per test fold f of 5 (patient-wise): fine-tuning on the phantoms and the MIAS patients of the
   three other folds, the epoch picked on MIAS fold (f + 1) mod 5 (`--val-fold`, never the test fold),
   intensity augmentation and hard negatives from images without a mass.  With --distortion-fraction F
   the phantoms of this stage are other ones (seed 700) with that share of stellate distortions (`trtmass
   synth --distortion-fraction`), the lesions the recipe misses on film; --continue-distortion-fraction F
   draws them instead into the new phantoms of the continued pre-training (step 2, seed 500, folder
   phantoms-train-b-distortionF) and leaves fine-tuning as it was.
4. Export of best.pt with view selection; operating points (score at 0.25 / 0.5 / 1 / 2 FPPI) measured
   on the validation fold and written into the model; then on test fold f: TPR at 0.5 / 1 / 2 FPPI with
   the IoU >= 0.2 and the centre criteria, and the marks per normal image at the 1-FPPI point.

    python -m benchmarks.bench_demo_cv [--only-folds 0,1] [--epochs 8] [--pretrain-epochs 6]
        [--continue-epochs 22] [--pretrained CHECKPOINT] [--distortion-fraction 0.4]
        [--continue-distortion-fraction 0.4]
        [--parallel-folds 5] [--pretrain-seconds S --train-seconds S] [--pretrain-deadline S --train-deadline S]

On a lent GPU machine (many cores, one GPU, a fixed lease) --parallel-folds fine-tunes and evaluates the
folds at once (the cores split between them); --pretrain-seconds and --train-seconds train each stage for
a time rather than for epochs (`trtmass train --time-budget`: the cosine schedule decays over the time,
the epochs are then a cap); the deadlines, in seconds from the start of the run, are the hard stop
behind them: a stopped run keeps its last complete epoch (the checkpoints are written atomically every
epoch), best.pt is still the epoch picked on the validation fold, and the results say at which epoch
each stage stopped.

Writes benchmarks/results/demo_cv.json and its section of benchmarks/RESULTS.md (per fold, mean and
spread, and the FROC of all test folds pooled).  Needs ../shared/data/mini-mias-train.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_pipeline_vs_eager import save_report
from trt_mass.bench.machine import machine_facts

HERE = Path(__file__).resolve().parent
MIAS = HERE.parent.parent / "shared" / "data" / "mini-mias-train"
BEGIN, END = "<!-- bench_demo_cv:begin -->", "<!-- bench_demo_cv:end -->"
POINTS = (0.5, 1.0, 2.0)
TARGET_TPR_1FPPI = 0.70
TARGET_PHANTOM_TPR = 0.95
TARGET_NORMAL_MARKS = 2.0
STOPPED = "stopped-at-deadline"  # in a training folder: its run was stopped by a deadline; take it as it is


def trtmass(*args: str, log: list[str], deadline: float | None = None) -> bool:
    """Run `trtmass args`; False when it was stopped at `deadline` (time.time() seconds), else True."""
    command = [sys.executable, "-m", "trt_mass.cli", *args]
    log.append("trtmass " + " ".join(args).replace(f"{HERE.parent}/", ""))  # paths as from the repository root
    print(f"$ {log[-1]}", file=sys.stderr, flush=True)
    timeout = None if deadline is None else max(1.0, deadline - time.time())
    try:
        subprocess.run(command, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log[-1] += "  # stopped at the deadline"
        print(f"stopped at the deadline: {log[-1]}", file=sys.stderr, flush=True)
        return False
    return True


def _deadline(started: float, seconds: float | None) -> float | None:
    return None if seconds is None else started + seconds


def model_args(args: argparse.Namespace) -> list[str]:
    return ["--arch", args.arch, "--head-width", str(args.head_width), "--tile", args.tile,
            "--batch-size", str(args.batch_size), "--intensity-aug", str(args.intensity_aug)]


def budget_args(seconds: float | None) -> list[str]:
    return [] if seconds is None else ["--time-budget", str(seconds)]


def make_phantoms(work: Path, args: argparse.Namespace, log: list[str]) -> dict[str, Path]:
    sets = {"train": (args.phantoms, 100, "realistic"), "test-realistic": (50, 400, "realistic"),
            "test-fill": (50, 200, "fill")}
    folders = {}
    for name, (count, seed, anatomy) in sets.items():
        folder = work / f"phantoms-{name}"
        if not (folder / "truth.csv").exists():
            trtmass("synth", str(folder), "--count", str(count), "--seed", str(seed), "--scale", "0.25",
                    "--anatomy", anatomy, log=log)
        folders[name] = folder
    if args.distortion_fraction > 0:  # fine-tuning phantoms with stellate distortions (seed 700)
        folder = work / "phantoms-train-distortion"
        if not (folder / "truth.csv").exists():
            trtmass("synth", str(folder), "--count", str(args.phantoms), "--seed", "700", "--scale", "0.25",
                    "--anatomy", "realistic", "--distortion-fraction", str(args.distortion_fraction), log=log)
        folders["fine-tune"] = folder
    else:
        folders["fine-tune"] = folders["train"]
    return folders


def _train_stage(out: Path, epochs: int, log: list[str], deadline: float | None, *train_args: str) -> None:
    """`trtmass train train_args` into `out` unless it has its epochs or a deadline stopped it before."""
    if _finished(out / "last.pt", epochs) or (out / STOPPED).exists():
        return
    if not trtmass("train", *train_args, log=log, deadline=deadline):
        (out / STOPPED).write_text("stopped at the deadline\n")  # later runs go on from here, not train on


def pretrain(work: Path, phantoms: Path, args: argparse.Namespace, log: list[str],
             deadline: float | None = None) -> Path:
    out = work / "pretrain"
    last = out / "last.pt"
    _train_stage(out, args.pretrain_epochs, log, deadline, "--data", str(phantoms), "--out", str(out),
                 *model_args(args), "--epochs", str(args.pretrain_epochs), "--lr", str(args.pretrain_lr),
                 "--lr-schedule", args.lr_schedule, *budget_args(args.pretrain_seconds), "--resume")
    if not last.exists():
        raise SystemExit(f"{out}: pre-training ended before its first epoch (raise --pretrain-deadline)")
    return last


def continue_pretraining(work: Path, init: Path, phantoms: Path, args: argparse.Namespace,
                        log: list[str]) -> Path:
    """--continue-epochs more epochs from `init` on the training phantoms and as many new ones (seed 500),
    with --continue-distortion-fraction of the new ones' masses drawn as stellate distortions."""
    fraction = args.continue_distortion_fraction
    suffix = f"-distortion{fraction:g}" if fraction > 0 else ""
    more = work / f"phantoms-train-b{suffix}"
    if not (more / "truth.csv").exists():
        distortion = ("--distortion-fraction", str(fraction)) if fraction > 0 else ()
        trtmass("synth", str(more), "--count", str(args.phantoms), "--seed", "500", "--scale", "0.25",
                "--anatomy", "realistic", *distortion, log=log)
    out = work / f"pretrain-continued{suffix}"
    _train_stage(out, args.continue_epochs, log, None, "--data", str(phantoms), "--data", str(more),
                 "--out", str(out), *model_args(args), "--init", str(init), "--epochs", str(args.continue_epochs),
                 "--lr", str(args.continue_lr), "--lr-schedule", args.lr_schedule, "--hard-negatives",
                 str(args.hard_negatives), "--resume")
    return out / "last.pt"


def fine_tune(work: Path, fold: int, init: Path, phantoms: Path, args: argparse.Namespace, log: list[str],
              deadline: float | None = None) -> Path:
    out = work / f"fold{fold}"
    val_fold = (fold + 1) % args.folds
    mias = f"mias:{args.mias}"
    _train_stage(out, args.epochs, log, deadline, "--data", str(phantoms), "--data", mias, "--out", str(out),
                 *model_args(args), "--folds", str(args.folds), "--fold", str(fold), "--val-fold", str(val_fold),
                 "--val-data", mias, "--init", str(init), "--epochs", str(args.epochs), "--lr", str(args.lr),
                 "--lr-schedule", args.lr_schedule, "--hard-negatives", str(args.hard_negatives),
                 *budget_args(args.train_seconds), "--resume")
    if not (out / "best.pt").exists():
        raise SystemExit(f"{out}: fine-tuning ended before its first validated epoch (raise --train-deadline)")
    model = out / "model.onnx"
    if not model.exists() or model.stat().st_mtime < (out / "best.pt").stat().st_mtime:
        trtmass("export", str(out / "best.pt"), "--tile", args.tile, "-o", str(model), log=log)
    return model


def _epochs_done(checkpoint: Path) -> int:
    from trt_mass.model.checkpoint import load_checkpoint

    return int(load_checkpoint(checkpoint)[1].get("epoch", 0)) if checkpoint.exists() else 0


def _finished(checkpoint: Path, epochs: int) -> bool:
    if not checkpoint.exists():
        return False
    from trt_mass.model.checkpoint import load_checkpoint

    extra = load_checkpoint(checkpoint)[1]
    return int(extra.get("epoch", 0)) >= epochs or bool(extra.get("time_budget_spent"))


def evaluate_fold(model: Path, fold: int, phantoms: dict[str, Path], args: argparse.Namespace,
                  log: list[str]) -> dict[str, Any]:
    threads = getattr(args, "threads", None)
    from trt_mass.datasets.labelled import load_dataset, patient_folds
    from trt_mass.eval.froc import froc_curve
    from trt_mass.eval.run import EvalConfig, detect_samples, run_eval
    from trt_mass.metadata import read_onnx_metadata

    mias = f"mias:{args.mias}"
    val_fold = (fold + 1) % args.folds
    log.append(f"trtmass eval --model {model} --data {mias} --folds {args.folds} --fold {val_fold} "
               "--write-operating-points")
    run_eval(EvalConfig(models=(model,), data=mias, out_dir=model.parent / "eval-validation", bootstrap=0,
                        folds=args.folds, fold=val_fold, write_operating_points=True, threads=threads))
    points = read_onnx_metadata(model).operating_points
    assert points is not None, "eval --write-operating-points wrote them"
    threshold_1fppi = points.scores["1"]
    _, test = patient_folds(load_dataset(mias), args.folds, fold)
    images, refused = detect_samples(model, test, threads=threads)
    normal_ids = {s.image_id for s in test if s.normal}
    normal_marks = [int((i.det_scores >= threshold_1fppi).sum()) for i in images if i.image_id in normal_ids]
    result: dict[str, Any] = {
        "fold": fold, "val_fold": val_fold, "images": len(images), "refused": refused,
        "masses": froc_curve(images).num_lesions, "threshold_1fppi": threshold_1fppi,
        "tpr_iou": {str(p): froc_curve(images, "iou", 0.2).tpr_at(p) for p in POINTS},
        "tpr_centre": {str(p): froc_curve(images, "centre").tpr_at(p) for p in POINTS},
        "normal_images": len(normal_marks),
        "marks_per_normal_image_at_1fppi_point": float(np.mean(normal_marks)) if normal_marks else None,
        "images_results": [_plain(i) for i in images],
    }
    for name in ("test-realistic", "test-fill"):
        found, _ = detect_samples(model, load_dataset(str(phantoms[name])), threads=threads)
        result[f"phantoms_{name}"] = {str(p): froc_curve(found, "iou", 0.2).tpr_at(p) for p in POINTS}
    history = json.loads((model.parent / "history.json").read_text())
    result["best_epoch"] = history["best"]["epoch"]
    result["epochs_done"] = len(history["epochs"])
    result["stopped_at_deadline"] = (model.parent / STOPPED).exists()
    result["validation_tpr"] = history["best"]["tpr_at_fppi"]
    return result


def fold_work(fold: int, work: Path, init: Path, phantoms: dict[str, Path], args: argparse.Namespace,
              deadline: float | None) -> tuple[dict[str, Any], list[str]]:
    """Fine-tune, export and evaluate one test fold; (its results, the commands it ran)."""
    started = time.time()
    log: list[str] = []
    threads = getattr(args, "threads", None)
    if threads is not None:  # the trtmass children's torch threads; ONNX Runtime gets `threads` directly
        os.environ["OMP_NUM_THREADS"] = str(threads)
    model = fine_tune(work, fold, init, phantoms["fine-tune"], args, log, deadline)
    measured = evaluate_fold(model, fold, phantoms, args, log)
    measured["seconds"] = round(time.time() - started)
    print(f"fold {fold}: TPR (IoU) {measured['tpr_iou']}, centre {measured['tpr_centre']}, normal marks "
          f"{measured['marks_per_normal_image_at_1fppi_point']}", file=sys.stderr, flush=True)
    return measured, log


def _plain(image: Any) -> dict[str, Any]:
    return {"image_id": image.image_id, "patient_id": image.patient_id, "det_boxes": image.det_boxes.tolist(),
            "det_scores": image.det_scores.tolist(), "gt_boxes": image.gt_boxes.tolist()}


def pooled(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The FROC of every evaluated test fold together (each image judged by its own fold's model)."""
    from trt_mass.eval.froc import ImageResult, froc_curve

    images = [ImageResult(i["image_id"], i["patient_id"], np.array(i["det_boxes"]).reshape(-1, 4),
                          np.array(i["det_scores"]), np.array(i["gt_boxes"]).reshape(-1, 4))
              for fold in folds for i in fold["images_results"]]
    return {"images": len(images), "masses": froc_curve(images).num_lesions,
            "tpr_iou": {str(p): froc_curve(images, "iou", 0.2).tpr_at(p) for p in POINTS},
            "tpr_centre": {str(p): froc_curve(images, "centre").tpr_at(p) for p in POINTS}}


def by_mias_class(folds: list[dict[str, Any]], mias: Path) -> dict[str, Any]:
    """Masses found at each test fold's own 1-FPPI point (the ones its TPR at 1 FPPI counts), by the
    MIAS class of the mass (CIRC circumscribed, SPIC spiculated, MISC ill-defined), and the missed ones."""
    from trt_mass.eval.froc import ImageResult, froc_curve, lesion_outcomes

    classes = {}
    with open(mias / "mass_boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            box = tuple(round(float(row[k]), 1) for k in ("x1", "y1", "x2", "y2"))
            classes[(row["image"], box)] = row.get("class") or "?"
    counts: dict[str, dict[str, int]] = {}
    missed = []
    for fold in folds:
        images = [ImageResult(i["image_id"], i["patient_id"], np.array(i["det_boxes"]).reshape(-1, 4),
                              np.array(i["det_scores"]), np.array(i["gt_boxes"]).reshape(-1, 4))
                  for i in fold["images_results"]]
        for lesion in lesion_outcomes(images, froc_curve(images, "iou", 0.2).threshold_at(1.0)):
            name = classes.get((lesion["image_id"], tuple(lesion["box_xyxy"])), "?")
            tally = counts.setdefault(name, {"masses": 0, "found": 0})
            tally["masses"] += 1
            tally["found"] += int(lesion["found"])
            if not lesion["found"]:
                missed.append({**lesion, "class": name, "fold": fold["fold"]})
    return {"counts": dict(sorted(counts.items())), "missed": missed}


def spread(folds: list[dict[str, Any]], key: str, point: str) -> dict[str, float]:
    values = [fold[key][point] for fold in folds]
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    phantoms = make_phantoms(work, args, log)
    if args.pretrained is not None:  # a pre-training run elsewhere (its commands recorded next to it)
        init = args.pretrained
    else:
        init = pretrain(work, phantoms["train"], args, log, _deadline(started, args.pretrain_deadline))
    pretrained_epochs = _epochs_done(init)
    if args.continue_epochs:
        init = continue_pretraining(work, init, phantoms["train"], args, log)
    deadline = _deadline(started, args.train_deadline)
    folds = []
    if args.parallel_folds > 1:
        args.threads = max(1, (os.cpu_count() or 1) // args.parallel_folds)
        context = multiprocessing.get_context("spawn")  # no forked torch or ONNX Runtime thread pools
        with ProcessPoolExecutor(args.parallel_folds, mp_context=context) as pool:
            futures = [pool.submit(fold_work, fold, work, init, phantoms, args, deadline) for fold in args.only_folds]
            for future in as_completed(futures):  # each fold kept as it ends, should the run be cut short
                measured, fold_log = future.result()
                folds.append(measured)
                log += fold_log
                (work / "partial.json").write_text(json.dumps({"folds": folds, "commands": log}, indent=1))
        folds.sort(key=lambda fold: fold["fold"])
    else:
        for fold in args.only_folds:
            measured, fold_log = fold_work(fold, work, init, phantoms, args, deadline)
            folds.append(measured)
            log += fold_log
            (work / "partial.json").write_text(json.dumps({"folds": folds, "commands": log}, indent=1))
    summary = {f"{key}@{p}": spread(folds, key, str(p)) for key in ("tpr_iou", "tpr_centre") for p in POINTS}
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started),
            "machine": machine_facts(), "command": "python -m benchmarks.bench_demo_cv " + " ".join(sys.argv[1:]),
            "settings": {k: str(v) for k, v in vars(args).items()}, "recipe": log, "folds": folds,
            "pretrain_epochs_done": pretrained_epochs,
            "pretrain_stopped_at_deadline": (init.parent / STOPPED).exists(),
            "summary": summary, "pooled": pooled(folds), "by_mias_class": by_mias_class(folds, args.mias)}


def markers(tag: str) -> tuple[str, str]:
    """RESULTS.md markers of a run's section: a tagged run adds its own, next to the untagged first one."""
    if not tag:
        return BEGIN, END
    return f"<!-- bench_demo_cv:{tag}:begin -->", f"<!-- bench_demo_cv:{tag}:end -->"


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    settings = result["settings"]
    begin, end = markers(settings.get("tag", ""))
    title = "## Demo-model recipe, cross-validated on mini-MIAS (issue #18)" + (
        f", {settings['tag']}" if settings.get("tag") else "")
    lines = [begin, title, "",
             f"`{result['command']}` — {result['created']}, {machine.get('cpu_model', 'CPU')}, "
             f"{round(result['seconds'] / 60)} min.  {settings['arch']} head {settings['head_width']}, tile "
             f"{settings['tile']}; pre-training {_length(settings, 'pretrain_seconds', 'pretrain_epochs')} on "
             f"{settings['phantoms']} realistic phantoms (lr {settings['pretrain_lr']}), then per fold "
             f"{_length(settings, 'train_seconds', 'epochs')} (lr "
             f"{settings['lr']}, schedule {settings.get('lr_schedule', 'constant')}, hard negatives "
             f"{settings['hard_negatives']}, intensity augmentation {settings['intensity_aug']}), epoch picked on "
             "the next fold.  Hit: IoU >= 0.2 or the centre criterion; operating point from the validation fold."
             + _stopped_note(result),
             "", "| test fold | images | masses | best epoch | TPR IoU @ 0.5 / 1 / 2 FPPI | TPR centre @ 0.5 / 1 / 2 | "
             "marks / normal image @ 1-FPPI point | phantoms realistic / fill TPR @ 1 FPPI |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    epochs = int(settings["epochs"])
    for fold in result["folds"]:
        marks = fold["marks_per_normal_image_at_1fppi_point"]
        lines.append(
            f"| {fold['fold']} | {fold['images']} | {fold['masses']} | {fold['best_epoch']}"
            + (f" of {fold['epochs_done']}" if fold.get("epochs_done", epochs) != epochs else "") + " | "
            + " / ".join(f"{fold['tpr_iou'][str(p)]:.3f}" for p in POINTS) + " | "
            + " / ".join(f"{fold['tpr_centre'][str(p)]:.3f}" for p in POINTS) + " | "
            + ("-" if marks is None else f"{marks:.2f}") + " | "
            + f"{fold['phantoms_test-realistic']['1.0']:.3f} / {fold['phantoms_test-fill']['1.0']:.3f} |")
    pooled_row = result["pooled"]
    lines.append(f"| all (pooled) | {pooled_row['images']} | {pooled_row['masses']} | | "
                 + " / ".join(f"{pooled_row['tpr_iou'][str(p)]:.3f}" for p in POINTS) + " | "
                 + " / ".join(f"{pooled_row['tpr_centre'][str(p)]:.3f}" for p in POINTS) + " | | |")
    mean = result["summary"]["tpr_iou@1.0"]
    lines += ["", f"TPR at 1 FPPI (IoU >= 0.2) over {len(result['folds'])} folds: mean {mean['mean']:.3f}, "
              f"min {mean['min']:.3f}, max {mean['max']:.3f}, sd {mean['sd']:.3f} (target >= {TARGET_TPR_1FPPI}: "
              f"{'met' if mean['min'] >= TARGET_TPR_1FPPI else '**not met**'}).", "",
              _class_line(result["by_mias_class"]), "",
              "Recipe (in order): " + "; ".join(f"`{c}`" for c in result["recipe"]) if result["recipe"] else
              "Recipe: every step reused from an earlier run in the work folder.", end]
    return "\n".join(lines)


def _class_line(by_class: dict[str, Any]) -> str:
    found = ", ".join(f"{name} {c['found']} of {c['masses']}" for name, c in by_class["counts"].items())
    missed = ", ".join(f"{m['image_id']} ({m['class']}, {m['width']:.0f} px, "
                       + ("never hit" if m["hit_score"] is None else f"hit at score {m['hit_score']:.2f}") + ")"
                       for m in by_class["missed"])
    return (f"Masses found at each fold's 1-FPPI point by MIAS class (CIRC circumscribed, MISC ill-defined, SPIC "
            f"spiculated): {found}.  Missed: {missed or 'none'}.")


def _length(settings: dict[str, str], seconds_key: str, epochs_key: str) -> str:
    if settings.get(seconds_key, "None") != "None":
        return f"{float(settings[seconds_key]):.0f} s (at most {settings[epochs_key]} epochs)"
    return f"{settings[epochs_key]} epochs"


def _stopped_note(result: dict[str, Any]) -> str:
    """How far each stage went where time, not epochs, ended it ("best of done" in the fold table)."""
    notes = []
    pretrained = result["settings"].get("pretrained", "None")
    if pretrained != "None":
        notes.append(f"Pre-training reused from `{pretrained}` ({result['pretrain_epochs_done']} epochs in its "
                     "last run; the pre-training settings above do not apply)")
    elif result.get("pretrain_epochs_done") is not None:
        notes.append(f"Pre-training ran {result['pretrain_epochs_done']} epochs"
                     + (" (stopped at its deadline)" if result.get("pretrain_stopped_at_deadline") else ""))
    if int(result["settings"].get("continue_epochs", "0")):
        notes.append(f"then {result['settings']['continue_epochs']} more on twice the phantoms with hard negatives "
                     f"(lr {result['settings']['continue_lr']})")
        if float(result["settings"].get("continue_distortion_fraction", "0")):
            notes.append(f"the new phantoms of that stage with {result['settings']['continue_distortion_fraction']} "
                         "of their masses drawn as stellate distortions")
    if float(result["settings"].get("distortion_fraction", "0")):
        notes.append(f"fine-tuned on {result['settings']['phantoms']} other phantoms (seed 700) with "
                     f"{result['settings']['distortion_fraction']} of their masses drawn as stellate distortions")
    stopped = [str(f["fold"]) for f in result["folds"] if f.get("stopped_at_deadline")]
    if stopped:
        notes.append(f"the fine-tuning of fold(s) {', '.join(stopped)} stopped at its deadline")
    return ("  " + "; ".join(notes) + ".") if notes else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mias", type=Path, default=MIAS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", default=None, help="comma-separated test folds [default: all]")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--head-width", type=int, default=64)
    parser.add_argument("--tile", default="256x224")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--phantoms", type=int, default=240)
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--pretrain-lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine",
                        help="for pre-training and fine-tuning (the first cross-validation ran constant)")
    parser.add_argument("--hard-negatives", type=int, default=1)
    parser.add_argument("--intensity-aug", type=float, default=0.5)
    parser.add_argument("--workdir", type=Path, default=HERE.parent / "out" / "demo-cv")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "demo_cv.json")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--tag", default="", help="name of this run's own RESULTS.md section and JSON")
    parser.add_argument("--parallel-folds", type=int, default=1, help="folds fine-tuned and evaluated at once")
    parser.add_argument("--continue-epochs", type=int, default=0,
                        help="pre-train this many more epochs on twice the phantoms, with hard negatives")
    parser.add_argument("--continue-lr", type=float, default=2e-4)
    parser.add_argument("--distortion-fraction", type=float, default=0.0,
                        help="fine-tune on other phantoms (seed 700) with this share of stellate distortions")
    parser.add_argument("--continue-distortion-fraction", type=float, default=0.0,
                        help="draw this share of the continued pre-training's new phantom masses as distortions")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="fine-tune every fold from this checkpoint instead of pre-training here")
    parser.add_argument("--pretrain-seconds", type=float, default=None,
                        help="pre-train for this long (--pretrain-epochs is then a cap)")
    parser.add_argument("--train-seconds", type=float, default=None,
                        help="fine-tune each fold for this long (--epochs is then a cap)")
    parser.add_argument("--pretrain-deadline", type=float, default=None,
                        help="seconds from the start after which pre-training stops (its last epoch is used)")
    parser.add_argument("--train-deadline", type=float, default=None,
                        help="seconds from the start after which fine-tuning stops (best.pt so far is used)")
    args = parser.parse_args()
    if not args.mias.is_dir():
        raise SystemExit(f"{args.mias}: no mini-MIAS folder")
    if args.pretrained is not None and not args.pretrained.is_file():
        raise SystemExit(f"{args.pretrained}: no such checkpoint (--pretrained)")
    args.only_folds = ([int(f) for f in args.only_folds.split(",")] if args.only_folds else
                       list(range(args.folds)))
    result = run(args)
    slim = {**result, "folds": [{k: v for k, v in f.items() if k != "images_results"} for f in result["folds"]]}
    out = args.out.with_name(f"{args.out.stem}_{args.tag}{args.out.suffix}") if args.tag else args.out
    save_report(slim, out, args.results_md, markdown(result), *markers(args.tag))


if __name__ == "__main__":
    main()
