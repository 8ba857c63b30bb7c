"""Which views contain breast tissue: drawn breasts, markers, letterboxes, grey backgrounds, no air at all."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from trt_mass.errors import ConfigError
from trt_mass.geometry import CanvasBuilder
from trt_mass.spec import TileGeometry
from trt_mass.tissue import TissueSpec, block_size, largest_component, otsu_threshold, views_with_tissue

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
