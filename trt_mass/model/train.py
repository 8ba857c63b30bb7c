"""`trtmass train`: the paper's recipe on the views the engine graph sees.

Views are cut from the same letterboxed canvas the deployed graph gets: the full view (canvas shrunk
by the grid factor), lesion-centred sections (tile size, jittered) and random tiles, with flips and
rotations by 90/180/270 degrees.  Focal loss (alpha 0.25, gamma 2), Adam, lr 1e-5 by default.
Checkpoints (weights + spec + format version) every epoch; --resume continues from the last one.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trt_mass.atomic import atomic_path
from trt_mass.datasets.labelled import Sample, load_dataset, patient_folds
from trt_mass.errors import ConfigError, InputError
from trt_mass.geometry import CanvasBuilder
from trt_mass.model.checkpoint import load_checkpoint, random_network, save_checkpoint
from trt_mass.model.network import RetinaNetNetwork, view_anchors
from trt_mass.spec import ModelSpec, TileGeometry

MIN_VISIBLE = 0.4  # a cropped box is kept when at least this share of it stays in the view


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]
    out_dir: Path
    spec: ModelSpec = field(default_factory=ModelSpec)
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


@dataclass
class CachedImage:
    canvas: np.ndarray  # uint16 [CH, CW]
    boxes: np.ndarray  # [G, 4] xyxy canvas px


def _cache(samples: list[Sample], geometry: TileGeometry, progress: bool) -> list[CachedImage]:
    from trt_mass.inputs.files import read_image

    builder = CanvasBuilder(geometry)
    cached = []
    for index, sample in enumerate(samples):
        try:
            mammogram = read_image(sample.path)
        except InputError as error:
            print(f"\ntrain: skipped {error}", file=sys.stderr)
            continue
        letterbox = builder.fill(mammogram.pixels, str(sample.path))
        boxes = letterbox.original_to_canvas(sample.boxes) if len(sample.boxes) else np.zeros((0, 4))
        cached.append(CachedImage(builder.canvas[0, 0].copy(), boxes))
        if progress:
            print(f"\rloading {index + 1}/{len(samples)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
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


def make_views(image: CachedImage, geometry: TileGeometry, rng: np.random.Generator,
               random_tiles: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training views of one image: (uint16 [Th, Tw], boxes [G, 4] view px), augmented."""
    tile_h, tile_w = geometry.tile_h, geometry.tile_w
    canvas_h, canvas_w = image.canvas.shape
    shrink = geometry.shrink
    full = image.canvas.reshape(tile_h, shrink, tile_w, shrink).mean(axis=(1, 3))
    views = [(full.astype(np.uint16), image.boxes / shrink)]
    centres = [((b[1] + b[3]) / 2, (b[0] + b[2]) / 2) for b in image.boxes]
    centres += [(rng.uniform(0, canvas_h), rng.uniform(0, canvas_w)) for _ in range(random_tiles)]
    for cy, cx in centres:
        turns = int(rng.integers(0, 4))
        height, width = (tile_w, tile_h) if turns % 2 else (tile_h, tile_w)  # so the turned view is Th x Tw
        y0 = int(np.clip(cy - height / 2 + rng.uniform(-0.3, 0.3) * height, 0, canvas_h - height))
        x0 = int(np.clip(cx - width / 2 + rng.uniform(-0.3, 0.3) * width, 0, canvas_w - width))
        view, boxes = _crop(image, y0, x0, height, width)
        views.append(_orient(view, boxes, turns, bool(rng.integers(0, 2))))
    full_view, full_boxes = views[0]
    views[0] = _orient(full_view, full_boxes, 0, bool(rng.integers(0, 2)))
    return views


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _initial_network(config: TrainConfig) -> RetinaNetNetwork:
    if config.init is not None:
        network, _ = load_checkpoint(config.init)
        if network.spec != config.spec:
            print(f"train: --init {config.init} sets the model spec ({network.spec})", file=sys.stderr)
        return network
    network = random_network(config.spec, config.seed)
    if config.backbone_weights is not None:
        state = torch.load(config.backbone_weights, map_location="cpu", weights_only=True)
        missing, _ = network.backbone.body.load_state_dict(state, strict=False)
        wanted = [k for k in missing if not k.startswith("fc.")]
        if wanted:
            raise ConfigError(f"{config.backbone_weights}: not a {config.spec.arch} state dict (missing {wanted[:3]})")
    return network


def train(config: TrainConfig, progress: bool = True) -> Path:
    """Train; returns the path of the last checkpoint."""
    samples: list[Sample] = [s for spec in config.data for s in load_dataset(spec)]
    if config.folds:
        samples, _ = patient_folds(samples, config.folds, config.fold, config.seed)
    if config.max_images:
        samples = samples[: config.max_images]
    config.out_dir.mkdir(parents=True, exist_ok=True)
    last = config.out_dir / "last.pt"
    start_epoch = 0
    network = _initial_network(config)
    if config.resume and last.exists():
        network, extra = load_checkpoint(last)
        start_epoch = int(extra.get("epoch", 0))
    device = _device(config.device)
    network = network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    if config.resume and (config.out_dir / "optimizer.pt").exists():
        optimizer.load_state_dict(torch.load(config.out_dir / "optimizer.pt", map_location=device, weights_only=True))
    images = _cache(samples, config.geometry, progress)
    if not images:
        raise ConfigError("no usable training images")
    anchors = view_anchors((config.geometry.tile_h, config.geometry.tile_w)).to(device)
    rng = np.random.default_rng(config.seed + start_epoch)
    torch.manual_seed(config.seed + start_epoch)
    for epoch in range(start_epoch, config.epochs):
        views = [v for image in images for v in make_views(image, config.geometry, rng, config.random_tiles)]
        mean_loss = _train_epoch(network, optimizer, views, rng.permutation(len(views)), anchors, config, epoch,
                                 progress)
        network.eval()
        _save_epoch(network, optimizer, config, epoch, mean_loss)
        network = network.to(device).train()
    return last


def _train_epoch(network: RetinaNetNetwork, optimizer: torch.optim.Optimizer,
                 views: list[tuple[np.ndarray, np.ndarray]], order: np.ndarray, anchors: torch.Tensor,
                 config: TrainConfig, epoch: int, progress: bool) -> float:
    """One pass over `views` in `order`, in batches; returns the mean loss."""
    device = anchors.device
    steps = math.ceil(len(views) / config.batch_size)
    started, total = time.perf_counter(), 0.0
    for step in range(steps):
        batch = [views[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
        pixels = torch.from_numpy(np.stack([v for v, _ in batch]).astype(np.float32) / 65535.0)[:, None]
        targets = [{"boxes": torch.from_numpy(b.astype(np.float32)).to(device),
                    "labels": torch.zeros(len(b), dtype=torch.int64, device=device)} for _, b in batch]
        losses = network.loss(pixels.to(device), targets, anchors)
        loss = losses["classification"] + losses["bbox_regression"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss)
        if progress:
            print(f"\repoch {epoch + 1}/{config.epochs} step {step + 1}/{steps} loss {total / (step + 1):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return total / max(1, steps)


def _save_epoch(network: RetinaNetNetwork, optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int,
                mean_loss: float) -> None:
    """epochNNN.pt, last.pt and optimizer.pt (so --resume continues where this epoch ended)."""
    extra = {"epoch": epoch + 1, "loss": mean_loss, "data": list(config.data),
             "geometry": config.geometry.to_dict()}  # export takes the views' geometry from here
    save_checkpoint(config.out_dir / f"epoch{epoch + 1:03d}.pt", network.cpu(), extra)
    save_checkpoint(config.out_dir / "last.pt", network, extra)
    with atomic_path(config.out_dir / "optimizer.pt") as temporary:
        torch.save(optimizer.state_dict(), temporary)

