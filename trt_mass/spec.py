"""Typed specifications: the network (ModelSpec) and the engine graph around it (GraphSpec).

Both are plain dataclasses with dict round-trips, so they travel inside checkpoints
and ONNX metadata without pickling.  Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from trt_mass.errors import ConfigError

ARCHS = ("resnet18", "resnet34", "resnet50")
FPN_STRIDES = (8, 16, 32, 64, 128)  # P3..P7
# The paper's anchors: sizes 32..512 over P3..P7, scales 2^0, 2^(1/3), 2^(2/3), ratios 0.5/1/2.
ANCHOR_BASE_SIZES = (32, 64, 128, 256, 512)
ANCHOR_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
# uint16 is the canonical canvas; TensorRT has no uint16 tensors, so engines take an int32 canvas
# (exact for every uint16 value, twice the bytes to copy).
CANVAS_DTYPES = ("uint16", "int32")
# "all": every view, the paper's way; "tissue": the views the host found breast tissue in (trt_mass.tissue).
VIEW_SELECTIONS = ("all", "tissue")
# Which tiles with tissue run: "every" tile with enough of it (the skipped ones are air, so findings equal the
# 26-view run's); "central": for each tissue block only the tile it lies most centrally in (trt_mass.tissue).
TISSUE_COVERS = ("every", "central")


@dataclass(frozen=True)
class ModelSpec:
    """The RetinaNet network: ResNet backbone + FPN (P3-P7) + class/box subnets.

    Attributes:
        arch: backbone depth, one of ARCHS (the paper: resnet50).
        head_width: channels of the FPN levels and of the four 3x3 convs in each subnet (paper: 256).
        num_classes: foreground classes; the product detects one, "mass".
        class_names: names of the foreground classes.
        focal_alpha, focal_gamma: focal-loss parameters (paper: 0.25, 2).
    """

    arch: str = "resnet50"
    head_width: int = 256
    num_classes: int = 1
    class_names: tuple[str, ...] = ("mass",)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown backbone {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.head_width < 8 or self.head_width % 8:
            raise ConfigError(f"head width must be a positive multiple of 8, got {self.head_width}")
        if len(self.class_names) != self.num_classes:
            raise ConfigError("class_names must name every foreground class")

    @property
    def anchors_per_location(self) -> int:
        return len(ANCHOR_SCALES) * len(ANCHOR_RATIOS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model spec keys: {sorted(unknown)}")
        values = dict(data)
        if "class_names" in values:
            values["class_names"] = tuple(values["class_names"])
        return cls(**values)


def parse_hw(text: str) -> tuple[int, int]:
    """Parse "HxW" (e.g. "768x640") into (height, width)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"expected HEIGHTxWIDTH such as 768x640, got {text!r}")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class TileGeometry:
    """Where the views of one mammogram lie on the canvas.

    The canvas is (grid+1)/2 tiles high and wide, so a grid x grid set of tiles with stride
    tile/2 (50 % overlap) covers it exactly; the full view is the canvas shrunk by the same factor
    to one tile.  All sizes are canvas pixels, (height, width).

    Attributes:
        tile_h, tile_w: size of one view (every view has this size).
        grid: tiles per side (odd; paper: 5, i.e. 25 tiles + 1 full view = 26 views).
    """

    tile_h: int = 768
    tile_w: int = 640
    grid: int = 5

    def __post_init__(self) -> None:
        for name, value in (("tile height", self.tile_h), ("tile width", self.tile_w)):
            # P5 (stride 32) must tile the view exactly; 128 keeps P7 aligned too (recommended).
            if value < 64 or value % 32:
                raise ConfigError(f"{name} must be a multiple of 32 and at least 64, got {value}")
        if self.grid < 1 or self.grid % 2 == 0:
            raise ConfigError(f"grid must be odd (tiles overlap by half), got {self.grid}")

    @property
    def shrink(self) -> int:
        """Factor between the canvas and the full view (3 for the 5 x 5 grid)."""
        return (self.grid + 1) // 2

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return self.tile_h * self.shrink, self.tile_w * self.shrink

    @property
    def num_views(self) -> int:
        return 1 + self.grid * self.grid

    def view_origins(self) -> list[tuple[int, int, int]]:
        """(scale, y0, x0) per view: canvas = view * scale + (x0, y0).  View 0 is the full view."""
        origins = [(self.shrink, 0, 0)]
        stride_y, stride_x = self.tile_h // 2, self.tile_w // 2
        for row in range(self.grid):
            for col in range(self.grid):
                origins.append((1, row * stride_y, col * stride_x))
        return origins

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GraphSpec:
    """The engine graph around the network: views, decode, per-view NMS, cross-view merge.

    Defaults follow the paper's code (docs/architecture.md): per-view NMS at IoU 0.1 keeping at most 300 boxes,
    candidates with score > 0.1, merge at IoU > 0.2.

    Attributes:
        geometry: the tiles and the full view.
        pre_nms_top_k: anchors kept per view (highest scores) before NMS; < 3840 for TensorRT TopK.
        nms_iou: per-view NMS IoU threshold.
        max_per_view: boxes kept per view after NMS.
        score_threshold: candidates need a score strictly above this.
        merge_iou: two candidates join a cluster when their IoU is strictly above this.
        max_candidates: N, the fixed number of highest-scoring candidates merged, and of output rows.
        min_area_mm2: findings smaller than this are dropped when the pixel spacing is known.
        min_area_canvas_px: the same filter in canvas pixels when the spacing is unknown.
        canvas_dtype: element type of the canvas input (values are uint16 intensities either way).
        view_selection: "all": the graph runs every view (one input, the canvas); "tissue": it also takes
            `view_index` int32 [K] (1 <= K <= views) and runs those views only, which the host picks
            from the canvas (trt_mass.tissue) with:
        tissue_floor: the background threshold is at least this fraction of full scale.
        tissue_min_fraction: a tile runs when at least this fraction of it is tissue.
        tissue_cover: "every" such tile, or "central": of those, only the tiles that are, for some tissue
            block, the tile it lies most centrally in (fewer views; not exact, see trt_mass.tissue).
    """

    geometry: TileGeometry = field(default_factory=TileGeometry)
    pre_nms_top_k: int = 1000
    nms_iou: float = 0.1
    max_per_view: int = 300
    score_threshold: float = 0.1
    merge_iou: float = 0.2
    max_candidates: int = 512
    # Paper: 5000 px^2 at INbreast's 70 um = 24.5 mm^2; ~1600 px^2 on a canvas at the paper's scale.
    min_area_mm2: float = 24.5
    min_area_canvas_px: float = 1600.0
    canvas_dtype: str = "uint16"
    view_selection: str = "all"
    tissue_floor: float = 0.02
    tissue_min_fraction: float = 0.01
    tissue_cover: str = "every"

    def __post_init__(self) -> None:
        if self.view_selection not in VIEW_SELECTIONS:
            raise ConfigError(f"view selection must be one of {VIEW_SELECTIONS}, got {self.view_selection!r}")
        if self.tissue_cover not in TISSUE_COVERS:
            raise ConfigError(f"tissue cover must be one of {TISSUE_COVERS}, got {self.tissue_cover!r}")
        if not 0.0 <= self.tissue_floor < 1.0 or not 0.0 < self.tissue_min_fraction <= 1.0:
            raise ConfigError("tissue_floor must be in [0, 1) and tissue_min_fraction in (0, 1]")
        if self.canvas_dtype not in CANVAS_DTYPES:
            raise ConfigError(f"canvas dtype must be one of {CANVAS_DTYPES}, got {self.canvas_dtype!r}")
        if not 0 < self.pre_nms_top_k < 3840:
            raise ConfigError(f"pre_nms_top_k must be in 1..3839 (TensorRT TopK), got {self.pre_nms_top_k}")
        if not 0 < self.max_candidates < 3840:
            raise ConfigError(f"max_candidates must be in 1..3839 (TensorRT TopK), got {self.max_candidates}")
        if not 0 < self.max_per_view <= self.pre_nms_top_k:
            raise ConfigError("max_per_view must be in 1..pre_nms_top_k")
        for name in ("nms_iou", "merge_iou", "score_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        for name in ("min_area_mm2", "min_area_canvas_px"):  # NaN or inf would drop every finding
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")

    @property
    def selects_views(self) -> bool:
        """The graph takes a `view_index` input (view_selection "tissue")."""
        return self.view_selection == "tissue"

    @property
    def closure_squarings(self) -> int:
        """Boolean squarings that make the N x N reachability matrix transitive (paths up to N)."""
        return max(1, (self.max_candidates - 1).bit_length())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphSpec:
        values = dict(data)
        geometry = TileGeometry(**values.pop("geometry", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown graph spec keys: {sorted(unknown)}")
        return cls(geometry=geometry, **values)
