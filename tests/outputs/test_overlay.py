"""Overlay pictures: boxes drawn where the findings are (original pixels scaled down), truth in its own colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from trt_mass.geometry import Finding
from trt_mass.outputs.overlay import (
    FINDING_COLOUR,
    OVERLAY_MAX_SIDE,
    TRUTH_COLOUR,
    downscaled_rgb,
    render_overlay,
    write_overlay,
)


def test_downscaled_copy_keeps_the_aspect_and_the_brightness() -> None:
    pixels = np.full((3000, 2000), 40000, np.uint16)
    picture, scale = downscaled_rgb(pixels, OVERLAY_MAX_SIDE)
    assert picture.size == (683, 1024) and picture.mode == "RGB" and scale == OVERLAY_MAX_SIDE / 3000
    assert np.asarray(picture)[500, 300].tolist() == [40000 >> 8] * 3
    small, unscaled = downscaled_rgb(np.zeros((100, 80), np.uint16), OVERLAY_MAX_SIDE)
    assert small.size == (80, 100) and unscaled == 1.0


def test_boxes_are_drawn_where_the_findings_are(tmp_path: Path) -> None:
    pixels = np.zeros((2048, 1536), np.uint16)  # drawn at half size
    finding = Finding(x1=400.0, y1=600.0, x2=800.0, y2=1000.0, score=0.73, area_px=160000.0)
    truth = np.array([[1000.0, 200.0, 1400.0, 500.0]])
    picture = np.asarray(render_overlay(pixels, [finding], truth))
    assert picture.shape == (1024, 768, 3)
    # [row, column]: the finding spans x 400..800, y 600..1000 in original pixels, so 200..400 x 300..500 here
    for row, column in ((300, 200), (400, 200), (400, 400), (500, 300), (300, 300)):
        assert picture[row, column].tolist() == list(FINDING_COLOUR), (row, column)
    assert picture[400, 300].tolist() == [0, 0, 0], "the inside of a box is left alone"
    assert picture[150, 500].tolist() == list(TRUTH_COLOUR)  # truth's left edge: x 1000 / 2, y 200..500 / 2
    write_overlay(tmp_path / "a.overlay.png", render_overlay(pixels, [finding], truth))
    with Image.open(tmp_path / "a.overlay.png") as written:
        assert written.format == "PNG" and written.size == (768, 1024)
    assert [p.name for p in tmp_path.iterdir()] == ["a.overlay.png"]
