"""The typed specs: the tile geometry (views cover the canvas, half overlap) and their validation."""

from __future__ import annotations

import numpy as np
import pytest

from trt_mass.errors import ConfigError
from trt_mass.spec import GraphSpec, TileGeometry, parse_hw

GEOMETRIES = [TileGeometry(768, 640, 5), TileGeometry(256, 224, 5), TileGeometry(192, 288, 3)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_tiles_cover_canvas_and_overlap_by_half(geometry: TileGeometry) -> None:
    canvas_h, canvas_w = geometry.canvas_hw
    coverage = np.zeros((canvas_h, canvas_w), np.int32)
    origins = geometry.view_origins()
    assert len(origins) == geometry.num_views == 1 + geometry.grid**2
    scale, y0, x0 = origins[0]
    assert (scale, y0, x0) == (geometry.shrink, 0, 0)
    assert (geometry.tile_h * scale, geometry.tile_w * scale) == (canvas_h, canvas_w)  # full view = whole canvas
    tiles = origins[1:]
    for scale, y0, x0 in tiles:
        assert scale == 1
        assert y0 + geometry.tile_h <= canvas_h and x0 + geometry.tile_w <= canvas_w
        coverage[y0 : y0 + geometry.tile_h, x0 : x0 + geometry.tile_w] += 1
    assert coverage.min() >= 1
    # Horizontal and vertical neighbours share exactly half a tile.
    for index, (_, y0, x0) in enumerate(tiles):
        if (index + 1) % geometry.grid:
            _, ny0, nx0 = tiles[index + 1]
            assert ny0 == y0 and nx0 - x0 == geometry.tile_w // 2
        if index + geometry.grid < len(tiles):
            _, ny0, nx0 = tiles[index + geometry.grid]
            assert nx0 == x0 and ny0 - y0 == geometry.tile_h // 2


def test_spec_validation() -> None:
    assert parse_hw("768x640") == (768, 640)
    with pytest.raises(ConfigError):
        parse_hw("768")
    with pytest.raises(ConfigError):
        TileGeometry(100, 640)
    with pytest.raises(ConfigError):
        TileGeometry(768, 640, grid=4)
    with pytest.raises(ConfigError):
        GraphSpec(pre_nms_top_k=4000)
    with pytest.raises(ConfigError):
        GraphSpec(max_candidates=3840)
    assert GraphSpec().closure_squarings == 9
    assert TileGeometry().canvas_hw == (2304, 1920) and TileGeometry().num_views == 26


@pytest.mark.parametrize("name", ["min_area_mm2", "min_area_canvas_px"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_minimum_areas_that_would_drop_every_finding_are_refused(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a finite number >= 0"):
        GraphSpec(**{name: value})  # type: ignore[arg-type]
