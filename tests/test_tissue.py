"""Which views contain breast tissue: drawn breasts, markers, letterboxes, grey backgrounds, no air at all."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from trt_mass.errors import ConfigError
from trt_mass.geometry import CanvasBuilder
from trt_mass.spec import TileGeometry
from trt_mass.tissue import (
    TissueSpec,
    block_size,
    largest_component,
    otsu_threshold,
    tissue_blocks,
    views_with_tissue,
)

GEOMETRY = TileGeometry(256, 224, 5)  # canvas 768 x 672


def breast(height: int, width: int, radius: float, background: int = 0, seed: int = 0) -> np.ndarray:
    """uint16 image: a half-disc breast against the left edge, textured, over a flat background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (yy - height / 2) ** 2 + xx**2 < radius**2
    texture = rng.uniform(0.45, 0.8, size=(height, width))
    image = np.where(inside, texture * 65535, background)
    return image.astype(np.uint16)


def expected_views(inside: np.ndarray, geometry: TileGeometry, min_fraction: float) -> set[int]:
    """The tiles a breast mask (canvas pixels) covers by at least min_fraction, computed directly."""
    views = {0}
    for view, (_, y0, x0) in enumerate(geometry.view_origins()[1:], start=1):
        if inside[y0 : y0 + geometry.tile_h, x0 : x0 + geometry.tile_w].mean() >= min_fraction:
            views.add(view)
    return views


def on_canvas(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    builder = CanvasBuilder(GEOMETRY, "uint16")
    letterbox = builder.fill(image, "test")
    return builder.canvas.copy(), letterbox.resized_hw


def test_a_breast_on_the_left_keeps_the_tiles_it_covers_and_drops_a_marker_in_the_air() -> None:
    image = breast(768, 672, radius=300)
    image[40:60, 600:650] = 60000  # a laterality marker, far from the breast
    canvas, image_hw = on_canvas(image)
    views = views_with_tissue(canvas, image_hw, GEOMETRY)
    assert views.dtype == np.int32 and views[0] == 0 and list(views) == sorted(views)
    tissue = breast(768, 672, radius=300) > 0
    direct = expected_views(tissue, GEOMETRY, 0.01)
    # Growing by one 16-pixel block may add a tile the skin line nearly reaches, never drop one.
    assert direct <= set(views.tolist()) and len(set(views.tolist()) - direct) <= 2
    marker_tile = 1 + 0 * 5 + 4  # top row, right-most tile: only the marker is there
    assert marker_tile not in views and len(views) < 26


def test_the_letterbox_padding_never_counts_and_a_grey_background_is_air() -> None:
    narrow = breast(768, 300, radius=290)  # letterboxed: the canvas right of the image is padding
    canvas, image_hw = on_canvas(narrow)
    views = set(views_with_tissue(canvas, image_hw, GEOMETRY).tolist())
    assert all(x0 < image_hw[1] for _, _, x0 in (GEOMETRY.view_origins()[v] for v in views if v))
    grey = breast(768, 672, radius=300, background=int(0.3 * 65535))  # MONOCHROME1 background left grey
    dark = breast(768, 672, radius=300)
    assert set(views_with_tissue(*on_canvas(grey), GEOMETRY).tolist()) == \
        set(views_with_tissue(*on_canvas(dark), GEOMETRY).tolist())


def test_no_air_keeps_every_view_and_no_tissue_keeps_the_full_view() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.uniform(0.4, 0.9, size=(768, 672)) * 65535).astype(np.uint16)
    assert views_with_tissue(*on_canvas(dense), GEOMETRY).tolist() == list(range(26))
    assert views_with_tissue(*on_canvas(np.zeros((500, 400), np.uint16)), GEOMETRY).tolist() == [0]
    faint = np.full((500, 400), 600, np.uint16)  # below the 2 % floor: film base, not tissue
    assert views_with_tissue(*on_canvas(faint), GEOMETRY).tolist() == [0]


def _margins(geometry: TileGeometry, block: int, row: int, col: int, views: list[int]) -> list[float]:
    """A block's distance to the nearest edge of each view in `views` that holds it (fraction of the side)."""
    centre_y, centre_x = (row + 0.5) * block, (col + 0.5) * block
    found = []
    for view in views:
        _, y0, x0 = geometry.view_origins()[view]
        if y0 <= centre_y < y0 + geometry.tile_h and x0 <= centre_x < x0 + geometry.tile_w:
            found.append(min(min(centre_y - y0, y0 + geometry.tile_h - centre_y) / geometry.tile_h,
                             min(centre_x - x0, x0 + geometry.tile_w - centre_x) / geometry.tile_w))
    return found


@pytest.mark.parametrize(("radius", "seed"), [(300, 0), (520, 1), (700, 2), (410, 3)])
def test_central_cover_sees_every_tissue_block_as_centrally_as_every_cover_does(radius: int, seed: int) -> None:
    image = breast(768, 672, radius=radius, seed=seed)
    canvas, image_hw = on_canvas(image)
    every = views_with_tissue(canvas, image_hw, GEOMETRY).tolist()
    central = views_with_tissue(canvas, image_hw, GEOMETRY, TissueSpec(cover="central")).tolist()
    assert central[0] == 0 and central == sorted(central) and set(central) <= set(every)
    block = block_size(TissueSpec(), GEOMETRY)
    blocks = tissue_blocks(canvas, image_hw, TissueSpec(), block)
    for row, col in zip(*np.nonzero(blocks), strict=True):
        in_every = _margins(GEOMETRY, block, row, col, every[1:])
        if in_every:  # a block in no kept tile (too little tissue there) is the full view's alone either way
            assert max(_margins(GEOMETRY, block, row, col, central[1:])) == pytest.approx(max(in_every))
            centre_y, centre_x = (row + 0.5) * block, (col + 0.5) * block
            in_outer_quarter = not (GEOMETRY.tile_h / 4 <= centre_y <= 768 - GEOMETRY.tile_h / 4
                                    and GEOMETRY.tile_w / 4 <= centre_x <= 672 - GEOMETRY.tile_w / 4)
            assert max(in_every) >= 0.25 or in_outer_quarter, "inside, some tile has it in its middle half"


def test_central_cover_skips_a_tile_whose_tissue_a_neighbour_sees_more_centrally() -> None:
    image = np.zeros((768, 672), np.uint16)
    image[:, :150] = 40000  # tissue in the left 150 px: the left half (112 px) of column 1's tiles too
    canvas, image_hw = on_canvas(image)
    every = views_with_tissue(canvas, image_hw, GEOMETRY).tolist()
    central = views_with_tissue(canvas, image_hw, GEOMETRY, TissueSpec(cover="central")).tolist()
    columns = {(v - 1) % 5 for v in every[1:]}
    assert columns == {0, 1} and len(every) == 11
    # x in [0, 150): column 0's tile spans [0, 224), column 1's [112, 336); x < 168 is more central in
    # column 0's tile (margin x / 224 grows to 0.5 at 112, then falls to 0.25 at 168 where column 1's
    # rises through 0.25), so column 1 holds no block's best view.
    assert {(v - 1) % 5 for v in central[1:]} == {0} and len(central) == 6
    with pytest.raises(ConfigError, match="tissue cover"):
        TissueSpec(cover="nearest")


def _bfs_largest(mask: np.ndarray) -> int:
    """Size of the largest 8-connected component, by breadth-first search (the reference)."""
    seen = np.zeros_like(mask)
    best = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start], size, queue = True, 0, deque([start])
        while queue:
            y, x = queue.popleft()
            size += 1
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        best = max(best, size)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_largest_component_matches_breadth_first_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((rng.integers(5, 40), rng.integers(5, 40))) < rng.uniform(0.2, 0.6)
    component = largest_component(mask)
    assert not (component & ~mask).any()
    assert int(component.sum()) == _bfs_largest(mask)
    spiral = np.zeros((9, 9), bool)  # a long thin path: labels must travel its whole length
    spiral[0, :] = spiral[:, 8] = spiral[8, :] = spiral[2:, 0] = spiral[2, :7] = spiral[2:7, 6] = True
    assert largest_component(spiral).sum() == spiral.sum()


def test_otsu_separates_two_populations_and_specs_are_checked() -> None:
    values = np.concatenate([np.full(500, 1000.0), np.full(300, 40000.0)])
    assert 1000 <= otsu_threshold(values) < 40000
    with pytest.raises(ConfigError):
        TissueSpec(min_fraction=0.0)


def test_blocks_are_coarser_at_the_papers_tiles() -> None:
    assert block_size(TissueSpec(), GEOMETRY) == 16
    assert block_size(TissueSpec(), TileGeometry(768, 640, 5)) == 32
    assert block_size(TissueSpec(block=8), TileGeometry(768, 640, 5)) == 8
