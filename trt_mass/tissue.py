"""Which views of a canvas contain breast tissue: the host's half of tissue-aware view selection (#17).

A letterboxed mammogram is mostly air.  The breast is found on a block-averaged copy of the canvas the
pipeline already built (no second pass over the image):

    1. block means over `block` x `block` canvas pixels (uint16 -> float32; the canvas sides are
       multiples of the tile halves, so the blocks tile it exactly when `block` divides them);
    2. a background threshold: Otsu's threshold of the blocks inside the image (never in the letterbox
       padding), raised to at least `floor` of full scale, so film base, noise and a grey background
       (MONOCHROME1 files whose background survived inversion) stay background;
    3. the largest 8-connected component (labels, markers and rulers are small islands of their own),
       grown by one block so that the skin line's tiles count;
    4. a tile is kept when its blocks are at least `min_fraction` tissue; the full view (view 0) is
       always kept;
    5. with cover "central", of those tiles only the ones that are, for some tissue block, the tile
       whose nearest edge lies farthest from the block (as a fraction of the tile side; ties: the lower
       view).  With 50 % overlap every point of the canvas lies in the middle half of some tile, so each
       tissue block is still seen at least a quarter tile from an edge (or at the canvas border, where
       one tile is all there is) while tiles that hold only a strip of tissue that a neighbour sees more
       centrally are skipped: about 15 instead of 19 of 26 views on realistic phantoms.  Unlike "every",
       the skipped tiles may hold tissue, so findings can differ from the 26-view run's at tile seams
       (FROC measured in benchmarks/RESULTS.md).

The result is canvas view indices, int32, ascending, view 0 first (TileGeometry.view_origins order):
what a `view_index` graph input takes.  When in doubt a view runs: an image whose "tissue" covers every
tile (a bright background, a phantom without air) keeps all 26 views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trt_mass.errors import ConfigError
from trt_mass.spec import TISSUE_COVERS, GraphSpec, TileGeometry


@dataclass(frozen=True)
class TissueSpec:
    """How tissue is told from air (recorded in a model's metadata when it selects views).

    Attributes:
        floor: the background threshold is at least this fraction of full scale (65535).
        min_fraction: a tile runs when at least this fraction of it is tissue.
        block: canvas pixels per block side of the downsampled copy (None: 32 where it divides the tile
            halves, as at the paper's 768 x 640 tiles, else 16; tile sides are multiples of 32).
    """

    floor: float = 0.02
    min_fraction: float = 0.01
    block: int | None = None
    cover: str = "every"

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < 1.0 or not 0.0 < self.min_fraction <= 1.0 or (self.block or 1) < 1:
            raise ConfigError(f"tissue selection needs 0 <= floor < 1, 0 < min_fraction <= 1 and block >= 1, got "
                              f"{self}")
        if self.cover not in TISSUE_COVERS:
            raise ConfigError(f"tissue cover must be one of {TISSUE_COVERS}, got {self.cover!r}")

    @classmethod
    def of(cls, spec: GraphSpec) -> TissueSpec:
        """The settings a model records in its graph spec."""
        return cls(floor=spec.tissue_floor, min_fraction=spec.tissue_min_fraction, cover=spec.tissue_cover)


def block_means(canvas: np.ndarray, block: int) -> np.ndarray:
    """float32 [H/block, W/block] means of a [H, W] canvas (H and W multiples of `block`)."""
    height, width = canvas.shape
    if height % block or width % block:
        raise ConfigError(f"canvas {height}x{width} is not a whole number of {block}-pixel blocks")
    blocks = canvas.reshape(height // block, block, width // block, block)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a set of values (the one maximising the between-class variance)."""
    if values.size == 0:
        return 0.0
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return high
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(counts * centres)
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1:][int(np.argmax(between))])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (all False when the mask is empty).

    Labels spread by neighbour minimum with pointer jumping (numpy only; converges in a few dozen
    passes on the small block image).
    """
    if not mask.any():
        return np.zeros_like(mask)
    height, width = mask.shape
    none = height * width
    labels = np.where(mask, np.arange(none).reshape(height, width), none)
    while True:
        padded = np.pad(labels, 1, constant_values=none)
        neighbours = np.min([padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
                             for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        spread = np.where(mask, neighbours, none)
        flat = np.append(spread.reshape(-1), none)
        for _ in range(4):  # pointer jumping: a label points at a pixel whose label may be smaller still
            flat[:-1] = np.where(flat[:-1] < none, flat[flat[:-1]], none)
        spread = flat[:-1].reshape(height, width)
        if np.array_equal(spread, labels):
            break
        labels = spread
    counts = np.bincount(labels[mask])
    return labels == int(np.argmax(counts))


def grow(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in every direction (8-neighbourhood)."""
    height, width = mask.shape
    padded = np.pad(mask, 1)
    return np.any([padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)


def block_size(spec: TissueSpec, geometry: TileGeometry) -> int:
    """The block side: the spec's, or 32 where it divides both tile halves, else 16."""
    if spec.block is not None:
        return spec.block
    return 32 if (geometry.tile_h // 2) % 32 == 0 and (geometry.tile_w // 2) % 32 == 0 else 16


def tissue_blocks(canvas: np.ndarray, image_hw: tuple[int, int], spec: TissueSpec, block: int) -> np.ndarray:
    """bool [H/block, W/block]: the blocks of the breast (see the module docstring).

    Args:
        block: the block side (block_size).
        canvas: uint16 [H, W] (or [1, 1, H, W]) canvas, the image at its top-left corner.
        image_hw: the image's height and width on the canvas (the rest is letterbox padding).
    """
    canvas = np.asarray(canvas).reshape(canvas.shape[-2:])
    means = block_means(canvas, block)
    rows = -(-image_hw[0] // block)
    cols = -(-image_hw[1] // block)
    inside = np.zeros(means.shape, dtype=bool)
    inside[:rows, :cols] = True
    threshold = max(otsu_threshold(means[inside]), spec.floor * 65535.0)
    return grow(largest_component(inside & (means > threshold))) & inside


def all_views(geometry: TileGeometry) -> np.ndarray:
    """int32 [V]: every view, the paper's way."""
    return np.arange(geometry.num_views, dtype=np.int32)


def views_with_tissue(canvas: np.ndarray, image_hw: tuple[int, int], geometry: TileGeometry,
                      spec: TissueSpec = TissueSpec()) -> np.ndarray:
    """int32 [K]: view 0 and the tiles that are at least spec.min_fraction tissue (with cover "central":
    those of them that some tissue block lies most centrally in), ascending."""
    block = block_size(spec, geometry)
    blocks = tissue_blocks(canvas, image_hw, spec, block)
    eligible = []
    for view, (_, y0, x0) in enumerate(geometry.view_origins()[1:], start=1):
        tile = blocks[y0 // block : (y0 + geometry.tile_h) // block, x0 // block : (x0 + geometry.tile_w) // block]
        if tile.size and tile.mean() >= spec.min_fraction:
            eligible.append(view)
    if spec.cover == "central":
        central = most_central_tiles(blocks, geometry, block, eligible)
        eligible = [view for view in eligible if view in central]
    return np.asarray([0, *eligible], dtype=np.int32)


def most_central_tiles(blocks: np.ndarray, geometry: TileGeometry, block: int, views: list[int]) -> set[int]:
    """Of `views` (tile view indices), those that some tissue block lies most centrally in.

    Args:
        blocks: bool [H/block, W/block] tissue blocks (tissue_blocks).
        views: candidate tiles; a block's margin in a tile is the distance from its centre to the tile's
            nearest edge over that edge's tile side (canvas px / canvas px), and each block picks its
            candidate with the largest margin (ties: the lower view).  Blocks in no candidate pick none.
    """
    rows, cols = np.nonzero(blocks)
    centre_y, centre_x = (rows + 0.5) * block, (cols + 0.5) * block
    best_margin = np.full(len(rows), 0.0)
    best_view = np.zeros(len(rows), dtype=np.int64)
    origins = geometry.view_origins()
    for view in views:
        _, y0, x0 = origins[view]
        margin = np.minimum(np.minimum(centre_y - y0, y0 + geometry.tile_h - centre_y) / geometry.tile_h,
                            np.minimum(centre_x - x0, x0 + geometry.tile_w - centre_x) / geometry.tile_w)
        better = margin > best_margin  # block centres inside the tile have a margin > 0
        best_margin[better] = margin[better]
        best_view[better] = view
    return {int(view) for view in np.unique(best_view) if view}
