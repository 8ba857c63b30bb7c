"""`trtmass train`: the paper's recipe on the views the engine graph sees.

Views are cut from the same letterboxed canvas the deployed graph gets: the full view (canvas shrunk
by the grid factor), lesion-centred sections (tile size, jittered) and random tiles, with flips and
rotations by 90/180/270 degrees, and intensity augmentation that mimics other vendors' processing
(trt_mass.model.augment).  Focal loss (alpha 0.25, gamma 2), Adam, lr 1e-5 by default.
Checkpoints (weights + spec + format version) every epoch; --resume continues from the last one.

With --val-fold the epoch is chosen on a validation fold (never on the test fold): after every epoch the
engine graph runs on the validation images (trt_mass.model.validate), history.json records the FROC
figures, and best.pt is the epoch with the highest TPR at 1 FPPI.  With --hard-negatives N the views of
the next epoch include N sections centred where the network fired on each image without a mass.
With --time-budget S the run is measured in seconds rather than epochs (a lent GPU machine's lease): the
schedule follows the share of S spent and the run ends, checkpointed, when S is spent.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trt_mass.atomic import atomic_path
from trt_mass.datasets.labelled import Sample, check_boxes_on_image, load_dataset, parse_data_spec, patient_folds
from trt_mass.errors import ConfigError, InputError, ModelError
from trt_mass.geometry import CanvasBuilder
from trt_mass.model.augment import IntensityAugment
from trt_mass.model.checkpoint import load_checkpoint, random_network, save_checkpoint
from trt_mass.model.network import RetinaNetNetwork, view_anchors
from trt_mass.model.validate import CachedImage, Validation, mine_hard_negatives, validate
from trt_mass.progress import ProgressLine
from trt_mass.spec import ModelSpec, TileGeometry

MIN_VISIBLE = 0.4  # a cropped box is kept when at least this share of it stays in the view


LR_SCHEDULES = ("constant", "cosine")


def scheduled_lr(base_lr: float, schedule: str, run_fraction: float) -> float:
    """The learning rate at `run_fraction` (0 at the first step, -> 1 at the last) of the whole run.

    Cosine decay lets the last epochs settle, so the epoch picked on a small validation fold is less a
    matter of where the weights happened to jump; it depends on the step, so --resume continues it.
    """
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(max(run_fraction, 0.0), 1.0)))
    return base_lr


class RunClock:
    """How far the run is (t in [0, 1] for the schedule): by steps over `epochs`, or by time over a budget.

    A time budget counts the seconds of this process on top of those the resumed checkpoint had spent.
    """

    def __init__(self, epochs: int, time_budget_s: float | None, spent_before_s: float = 0.0,
                 start_epoch: int = 0) -> None:
        self.epochs = epochs
        self.time_budget_s = time_budget_s
        self.spent_before_s = spent_before_s
        self._start_fraction = start_epoch / epochs if epochs else 0.0
        self._started = time.perf_counter()

    def spent_s(self) -> float:
        return self.spent_before_s + time.perf_counter() - self._started

    def fraction(self, epoch: int, step: int, steps: int) -> float:
        if self.time_budget_s is not None:
            return self.spent_s() / self.time_budget_s
        return (epoch + step / steps) / self.epochs

    def expired(self) -> bool:
        return self.time_budget_s is not None and self.spent_s() >= self.time_budget_s

    def remaining_s(self, done_fraction: float) -> float | None:
        """Seconds the run still needs once `done_fraction` of it is done, at this process's pace so far
        (validation and mining included); None before there is a pace to go by."""
        if self.time_budget_s is not None:
            return max(0.0, self.time_budget_s - self.spent_s())
        progressed = done_fraction - self._start_fraction
        if progressed <= 0:
            return None
        return (time.perf_counter() - self._started) * max(0.0, 1.0 - done_fraction) / progressed


def format_duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 05 min': a progress line's remaining time."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]
    out_dir: Path
    spec: ModelSpec | None = None  # None: the --init checkpoint's, else ModelSpec()
    geometry: TileGeometry = field(default_factory=TileGeometry)
    epochs: int = 20
    lr: float = 1e-5
    batch_size: int = 4
    folds: int | None = None
    fold: int = 0
    init: Path | None = None
    backbone_weights: Path | None = None
    resume: bool = False
    device: str = "auto"
    seed: int = 0
    random_tiles: int = 1
    max_images: int | None = None
    val_fold: int | None = None  # with folds: the fold that picks the epoch (neither trained on nor the test fold)
    intensity: float = 0.5  # probability of each intensity transform (IntensityAugment.with_probability)
    hard_negatives: int = 0  # sections per image without a mass, where the network fired last epoch
    mining_images: int = 96  # images without a mass searched for hard negatives per epoch (random subset)
    val_data: tuple[str, ...] = ()  # data sets whose validation-fold images validate (default: all of `data`)
    lr_schedule: str = "constant"  # or "cosine": lr * (1 + cos(pi * t)) / 2 over the run, t from 0 to 1 per step
    # Seconds of training (validation and mining included) instead of `epochs`, which is then a cap: t is the
    # share of the budget spent, and the run ends, with a checkpoint, once it is spent (a lent GPU's lease).
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        self._check_counts()
        if self.init is not None and self.backbone_weights is not None:
            raise ConfigError(f"--init {self.init} and --backbone-weights {self.backbone_weights}: the checkpoint "
                              "holds a backbone already; give one of them")
        if self.folds is not None and self.folds < 2:
            raise ConfigError(f"--folds must be at least 2 (or left out to train on everything), not {self.folds}")
        if self.val_fold is not None:
            if not self.folds:
                raise ConfigError("--val-fold needs --folds")
            if not 0 <= self.val_fold < self.folds or self.val_fold == self.fold:
                raise ConfigError(f"--val-fold must be in 0..{self.folds - 1} and differ from --fold {self.fold}")
        data_keys = [parse_data_spec(spec).key for spec in self.data]
        unknown = [spec for spec in self.val_data if parse_data_spec(spec).key not in data_keys]
        if unknown:
            raise ConfigError(f"--val-data {unknown[0]} is not one of the --data sets {list(self.data)}")
        if not 0.0 <= self.intensity <= 1.0:
            raise ConfigError(f"--intensity-aug is a probability in [0, 1], not {self.intensity}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"--lr-schedule must be one of {LR_SCHEDULES}, not {self.lr_schedule!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"--time-budget must be > 0 seconds, not {self.time_budget_s}")
        if self.hard_negatives < 0 or self.mining_images < 1:
            raise ConfigError("--hard-negatives must be >= 0 and the mining images >= 1")
        if len(set(data_keys)) < len(data_keys):
            raise ConfigError(f"--data names one data set twice {list(self.data)}: its images would count twice")

    def _check_counts(self) -> None:
        """Values that would train nothing, or diverge at once, are refused before any work."""
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, not {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a finite number > 0, not {self.lr}")
        if self.time_budget_s is not None and not math.isfinite(self.time_budget_s):
            raise ConfigError(f"--time-budget must be a finite number of seconds, not {self.time_budget_s}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], not {self.device!r}")


def split_samples(samples_by_data: dict[str, list[Sample]], config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """(train, validation): the test fold is left out; the validation fold too, when there is one, and
    its images validate when their data set is one of config.val_data (all when that is empty)."""
    train: list[Sample] = []
    validation: list[Sample] = []
    for spec, samples in samples_by_data.items():
        if config.folds:
            samples, _ = patient_folds(samples, config.folds, config.fold, config.seed)
        if config.val_fold is not None:
            samples, held = patient_folds(samples, config.folds or 0, config.val_fold, config.seed)
            if not config.val_data or parse_data_spec(spec).key in {parse_data_spec(v).key for v in config.val_data}:
                validation += held
        train += samples
    return train, validation


def _cache(samples: list[Sample], geometry: TileGeometry, progress: bool) -> list[CachedImage]:
    from trt_mass.inputs.files import read_image

    builder = CanvasBuilder(geometry)
    cached = []
    with ProgressLine(progress) as line:
        for index, sample in enumerate(samples):
            try:
                mammogram = read_image(sample.path)
                check_boxes_on_image(sample, *mammogram.pixels.shape)
            except InputError as error:
                if progress:
                    line.message(f"train: skipped {error}")
                else:
                    print(f"train: skipped {error}", file=sys.stderr)
                continue
            letterbox = builder.fill(mammogram.pixels, str(sample.path))
            boxes = letterbox.original_to_canvas(sample.boxes) if len(sample.boxes) else np.zeros((0, 4))
            cached.append(CachedImage(builder.canvas[0, 0].copy(), boxes, letterbox.resized_hw, sample.image_id,
                                      sample.patient_id))
            line.update(f"loading {index + 1}/{len(samples)}")
    return cached


def _crop(image: CachedImage, y0: int, x0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    view = image.canvas[y0 : y0 + height, x0 : x0 + width]
    boxes = image.boxes - np.array([x0, y0, x0, y0])
    clipped = np.clip(boxes, 0, [width, height, width, height])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = visible >= MIN_VISIBLE * np.maximum(area, 1e-6)
    return view, clipped[keep]


def _orient(view: np.ndarray, boxes: np.ndarray, quarter_turns: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by quarter_turns x 90 degrees counter-clockwise, then optionally flip left-right."""
    for _ in range(quarter_turns % 4):
        width = view.shape[1]
        view = np.rot90(view)
        # (x, y) -> (y, width - x) for a counter-clockwise quarter turn
        boxes = np.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], axis=1)
    if flip:
        width = view.shape[1]
        view = view[:, ::-1]
        boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    return np.ascontiguousarray(view), boxes


def make_views(image: CachedImage, geometry: TileGeometry, rng: np.random.Generator, random_tiles: int = 1,
               augment: IntensityAugment | None = None,
               extra_centres: tuple[tuple[float, float], ...] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training views of one image: (uint16 [Th, Tw], boxes [G, 4] view px), augmented.

    The full view, a section centred on each mass, `random_tiles` random sections and one section per
    (y, x) canvas px of `extra_centres` (hard negatives), each jittered, turned and flipped at random.
    """
    tile_h, tile_w = geometry.tile_h, geometry.tile_w
    canvas_h, canvas_w = image.canvas.shape
    shrink = geometry.shrink
    full = image.canvas.reshape(tile_h, shrink, tile_w, shrink).mean(axis=(1, 3))
    views = [(full.astype(np.uint16), image.boxes / shrink)]
    centres = [((b[1] + b[3]) / 2, (b[0] + b[2]) / 2) for b in image.boxes]
    centres += [(rng.uniform(0, canvas_h), rng.uniform(0, canvas_w)) for _ in range(random_tiles)]
    centres += list(extra_centres)
    for cy, cx in centres:
        turns = int(rng.integers(0, 4))
        height, width = (tile_w, tile_h) if turns % 2 else (tile_h, tile_w)  # so the turned view is Th x Tw
        y0 = int(np.clip(cy - height / 2 + rng.uniform(-0.3, 0.3) * height, 0, canvas_h - height))
        x0 = int(np.clip(cx - width / 2 + rng.uniform(-0.3, 0.3) * width, 0, canvas_w - width))
        view, boxes = _crop(image, y0, x0, height, width)
        views.append(_orient(view, boxes, turns, bool(rng.integers(0, 2))))
    full_view, full_boxes = views[0]
    views[0] = _orient(full_view, full_boxes, 0, bool(rng.integers(0, 2)))
    if augment is not None and augment.enabled:
        views = [(augment(view, rng), boxes) for view, boxes in views]
    return views


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: this torch sees no CUDA GPU (use --device cpu or auto)")
    return torch.device(name)


def _refuse_another_run(config: TrainConfig, intended: ModelSpec, resumed: ModelSpec, extra: dict[str, object],
                        last: Path) -> None:
    """--resume continues the run in OUT: a network, views, folds or data other than its own would train
    a model that is neither (and a changed fold trains on the images the earlier epochs held out)."""
    recorded: dict[str, object] = {
        "model": resumed, "geometry": extra.get("geometry"), "folds": extra.get("folds"),
        "fold": extra.get("test_fold", 0 if extra.get("folds") else None), "val_fold": extra.get("val_fold"),
        "seed": extra.get("fold_seed", config.seed if not extra.get("folds") else None),
        "data": sorted(parse_data_spec(str(spec)).key for spec in extra.get("data", config.data)),  # type: ignore[attr-defined]
    }
    asked: dict[str, object] = {
        "model": intended, "geometry": config.geometry.to_dict(), "folds": config.folds,
        "fold": config.fold if config.folds else None, "val_fold": config.val_fold, "seed": config.seed,
        "data": sorted(parse_data_spec(spec).key for spec in config.data),
    }
    differs = [f"{key} {recorded[key]} -> {asked[key]}" for key in asked if recorded[key] != asked[key]]
    if differs:
        raise ConfigError(f"--resume: {last} is a run with other settings ({'; '.join(differs)}); resume it with its "
                          "own settings, or train into another --out")


def _initial_network(config: TrainConfig) -> RetinaNetNetwork:
    if config.init is not None:
        network, _ = load_checkpoint(config.init)
        if config.spec is not None and network.spec != config.spec:
            raise ConfigError(f"--init {config.init} is a {network.spec} network, not the {config.spec} asked for "
                              "(--arch/--head-width); leave them out to fine-tune it as it is")
        return network
    spec = config.spec or ModelSpec()
    network = random_network(spec, config.seed)
    if config.backbone_weights is not None:
        state = torch.load(config.backbone_weights, map_location="cpu", weights_only=True)
        missing, _ = network.backbone.body.load_state_dict(state, strict=False)
        wanted = [k for k in missing if not k.startswith("fc.")]
        if wanted:
            raise ConfigError(f"{config.backbone_weights}: not a {spec.arch} state dict (missing {wanted[:3]})")
    return network


def train(config: TrainConfig, progress: bool = True) -> Path:
    """Train; returns the path of the last checkpoint (best.pt sits next to it with --val-fold)."""
    samples, validation_samples = split_samples({spec: load_dataset(spec) for spec in config.data}, config)
    if config.max_images:
        samples = samples[: config.max_images]
    config.out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in config.out_dir.glob(".*.tmp*"):  # of a run killed while it saved (optimizer.pt: 100 MB)
        leftover.unlink(missing_ok=True)
    last = config.out_dir / "last.pt"
    start_epoch, spent_before_s = 0, 0.0
    network = _initial_network(config)
    if config.resume and last.exists():
        intended_spec = network.spec
        network, extra = load_checkpoint(last)
        _refuse_another_run(config, intended_spec, network.spec, extra, last)
        start_epoch = int(extra.get("epoch", 0))
        spent_before_s = float(extra.get("trained_seconds", 0.0))
        if config.time_budget_s is not None and spent_before_s >= config.time_budget_s:
            return last
    elif last.exists():
        raise ConfigError(f"{config.out_dir} holds a run already (last.pt): --resume continues it; a new run needs "
                          "another --out (its best.pt and epochs would be mixed with the new ones)")
    device = _device(config.device)
    network = network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    if config.resume and (config.out_dir / "optimizer.pt").exists():
        optimizer.load_state_dict(torch.load(config.out_dir / "optimizer.pt", map_location=device, weights_only=True))
    if not samples and config.folds:
        raise ConfigError(f"no training images are left once the test fold ({config.fold}) and the validation fold "
                          f"({config.val_fold}) of {config.folds} are held out: use fewer folds or more data")
    images = _cache(samples, config.geometry, progress)
    if not images:
        raise ConfigError("no usable training images")
    if not any(len(image.boxes) for image in images):
        print("train: warning: the training images hold no mass: the detector learns only what is not one",
              file=sys.stderr)
    validation_images = _cache(validation_samples, config.geometry, progress) if validation_samples else []
    if config.val_fold is not None and not validation_images:
        raise ConfigError(f"validation fold {config.val_fold} of {config.folds} has no usable image")
    if validation_images and not any(len(image.boxes) for image in validation_images):
        raise ConfigError(f"validation fold {config.val_fold} of {config.folds} has no mass: its TPR cannot choose "
                          "an epoch (another --val-fold, or --val-data with masses)")
    anchors = view_anchors((config.geometry.tile_h, config.geometry.tile_w)).to(device)
    rng = np.random.default_rng(config.seed + start_epoch)
    torch.manual_seed(config.seed + start_epoch)
    augment = IntensityAugment.with_probability(config.intensity)
    history = _History(config.out_dir, resume=config.resume)
    hard: dict[int, list[tuple[float, float]]] = {}
    clock = RunClock(config.epochs, config.time_budget_s, spent_before_s, start_epoch)
    for epoch in range(start_epoch, config.epochs):
        views = [v for position, image in enumerate(images) for v in
                 make_views(image, config.geometry, rng, config.random_tiles, augment, tuple(hard.get(position, ())))]
        mean_loss = _train_epoch(network, optimizer, views, rng.permutation(len(views)), anchors, config, epoch,
                                 progress, clock)
        network.eval()
        record: dict[str, object] = {"epoch": epoch + 1, "loss": mean_loss, "views": len(views),
                                     "hard_negatives": sum(len(c) for c in hard.values())}
        measured = validate(network, validation_images, config.geometry, device) if validation_images else None
        if measured is not None:
            record["validation"] = measured.to_dict()
            if progress:
                print(f"validation (fold {config.val_fold}, {measured.images} images, {measured.lesions} masses): "
                      f"TPR {measured.tpr_at_fppi}", file=sys.stderr)
        spent = clock.expired() or epoch + 1 == config.epochs
        extra = _save_epoch(network, optimizer, config, epoch, mean_loss, measured, clock)
        history.add(record, measured)
        save_checkpoint(last, network, extra)  # written last: what --resume starts from has all of the above
        if spent:
            break
        if config.hard_negatives:
            hard = _mine(network, images, config, device, rng)
        network = network.to(device).train()
    return last


class _History:
    """history.json: one record per epoch, and which epoch best.pt holds."""

    def __init__(self, out_dir: Path, resume: bool) -> None:
        self.path = out_dir / "history.json"
        self.data: dict[str, object] = {"epochs": [], "best": None}
        if resume and self.path.exists():
            self.data = json.loads(self.path.read_text())

    def add(self, record: dict[str, object], measured: Validation | None) -> None:
        epochs = self.data["epochs"]
        assert isinstance(epochs, list)
        epochs[:] = [e for e in epochs if e["epoch"] < record["epoch"]] + [record]
        best = self.data.get("best")
        if measured is not None and (not isinstance(best, dict) or list(measured.key) > best["key"]):
            self.data["best"] = {"epoch": record["epoch"], "key": list(measured.key), **measured.to_dict()}
            with atomic_path(self.path.parent / "best.pt") as temporary:  # a run stopped mid-copy keeps the old
                shutil.copyfile(self.path.parent / f"epoch{record['epoch']:03d}.pt", temporary)
        with atomic_path(self.path) as temporary:
            temporary.write_text(json.dumps(self.data, indent=2))


def _mine(network: RetinaNetNetwork, images: list[CachedImage], config: TrainConfig, device: torch.device,
          rng: np.random.Generator) -> dict[int, list[tuple[float, float]]]:
    """Hard negatives for the next epoch, {image position: [(y, x) canvas px]}, from a random subset."""
    negatives = [i for i, image in enumerate(images) if not len(image.boxes)]
    chosen = sorted(rng.choice(negatives, size=min(config.mining_images, len(negatives)), replace=False).tolist()
                    ) if negatives else []
    found = mine_hard_negatives(network, [images[i] for i in chosen], config.geometry, device, rng,
                                per_image=config.hard_negatives)
    hard: dict[int, list[tuple[float, float]]] = {}
    for position, y, x in found:
        hard.setdefault(chosen[position], []).append((y, x))
    return hard


def _train_epoch(network: RetinaNetNetwork, optimizer: torch.optim.Optimizer,
                 views: list[tuple[np.ndarray, np.ndarray]], order: np.ndarray, anchors: torch.Tensor,
                 config: TrainConfig, epoch: int, progress: bool, clock: RunClock) -> float:
    """One pass over `views` in `order`, in batches (cut short where a time budget is spent); the mean loss."""
    steps = math.ceil(len(views) / config.batch_size)
    started, total, done = time.perf_counter(), 0.0, 0
    with ProgressLine(progress) as line:
        for step in range(steps):
            if step and clock.expired():
                break
            batch = [views[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
            loss = _train_step(network, optimizer, batch, anchors, config, clock.fraction(epoch, step, steps))
            if not math.isfinite(loss):  # every later step and checkpoint would be NaN: a model that finds nothing
                raise ModelError(f"training diverged: the loss is {loss} at epoch {epoch + 1}, step {step + 1} "
                                 f"(--lr {config.lr:g}); nothing of this epoch is saved. Lower --lr and --resume, "
                                 "or start again")
            total += loss
            done += 1
            remaining = clock.remaining_s(clock.fraction(epoch, step + 1, steps))
            left = "" if remaining is None else f", run ~{format_duration(remaining)} left"
            line.update(f"epoch {epoch + 1}/{config.epochs} step {step + 1}/{steps} loss {total / done:.4f} "
                        f"({time.perf_counter() - started:.0f} s{left})")
    return total / max(1, done)


def _train_step(network: RetinaNetNetwork, optimizer: torch.optim.Optimizer, batch: list[tuple[np.ndarray, np.ndarray]],
                anchors: torch.Tensor, config: TrainConfig, run_fraction: float) -> float:
    """One optimizer step on `batch` (canvas crops, boxes xyxy in crop pixels); the step's loss."""
    device = anchors.device
    for group in optimizer.param_groups:
        group["lr"] = scheduled_lr(config.lr, config.lr_schedule, run_fraction)
    pixels = torch.from_numpy(np.stack([v for v, _ in batch]).astype(np.float32) / 65535.0)[:, None]
    targets = [{"boxes": torch.from_numpy(b.astype(np.float32)).to(device),
                "labels": torch.zeros(len(b), dtype=torch.int64, device=device)} for _, b in batch]
    losses = network.loss(pixels.to(device), targets, anchors)
    loss = losses["classification"] + losses["bbox_regression"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _save_epoch(network: RetinaNetNetwork, optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int,
                mean_loss: float, measured: Validation | None, clock: RunClock) -> dict[str, object]:
    """epochNNN.pt and optimizer.pt; returns the checkpoint's extra, for last.pt."""
    extra: dict[str, object] = {"epoch": epoch + 1, "loss": mean_loss, "data": list(config.data),
                                "geometry": config.geometry.to_dict(),  # export takes the views' geometry from here
                                "trained_seconds": round(clock.spent_s(), 1)}
    if config.time_budget_s is not None:
        extra.update(time_budget_s=config.time_budget_s, time_budget_spent=clock.expired())
    if config.folds:
        extra.update(folds=config.folds, test_fold=config.fold, val_fold=config.val_fold, fold_seed=config.seed)
    if measured is not None:
        extra["validation"] = measured.to_dict()
    save_checkpoint(config.out_dir / f"epoch{epoch + 1:03d}.pt", network.cpu(), extra)
    with atomic_path(config.out_dir / "optimizer.pt") as temporary:
        torch.save(optimizer.state_dict(), temporary)
    return extra

