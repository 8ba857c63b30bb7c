"""Canvas letterbox, canvas <-> original mapping, tile coverage and overlap, the area filter."""

from __future__ import annotations

import numpy as np
import pytest

from trt_mass.errors import InputError
from trt_mass.geometry import CanvasBuilder, findings_from_canvas, letterbox_size
from trt_mass.spec import GraphSpec, TileGeometry

GEOMETRIES = [TileGeometry(768, 640, 5), TileGeometry(256, 224, 5), TileGeometry(192, 288, 3)]
IMAGE_SHAPES = [(4096, 3328), (3328, 4096), (1023, 1), (1, 999), (2294, 1914), (517, 1309), (768 * 3, 640 * 3)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=str)
def test_box_roundtrip_within_one_pixel(geometry: TileGeometry, shape: tuple[int, int]) -> None:
    builder = CanvasBuilder(geometry)
    letterbox = builder.fill(np.zeros(shape, np.uint16))
    rng = np.random.default_rng(0)
    height, width = shape
    corners = rng.uniform(0, 1, size=(200, 4)) * np.array([width, height, width, height])
    boxes = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1)
    boxes = np.vstack([boxes, [[0, 0, width, height]]])
    canvas_boxes = letterbox.original_to_canvas(boxes)
    canvas_h, canvas_w = geometry.canvas_hw
    assert canvas_boxes[:, [0, 2]].max() <= canvas_w + 1e-6 and canvas_boxes[:, [1, 3]].max() <= canvas_h + 1e-6
    back = letterbox.canvas_to_original(canvas_boxes)
    assert np.abs(back - boxes).max() <= 1.0
    # One side fills the canvas, the aspect ratio is kept within a pixel's rounding.
    resized_h, resized_w = letterbox.resized_hw
    assert resized_h == canvas_h or resized_w == canvas_w
    scale_y, scale_x = letterbox.scale_yx
    assert abs(scale_y - scale_x) <= 1.0 / height + 1.0 / width  # rounding (and the 1-px minimum)


def test_canvas_is_preallocated_contiguous_and_cleared() -> None:
    builder = CanvasBuilder(TileGeometry(256, 224, 5))
    buffer = builder.canvas
    assert buffer.flags.c_contiguous and buffer.dtype == np.uint16 and buffer.shape == (1, 1, 768, 672)
    builder.fill(np.full((500, 1000), 40000, np.uint16))  # landscape: fills the width
    builder.fill(np.full((1000, 300), 1000, np.uint16))  # portrait: fills the height
    assert builder.canvas is buffer
    plane = buffer[0, 0]
    resized_h, resized_w = letterbox_size((1000, 300), (768, 672))
    assert (plane[:resized_h, :resized_w] == 1000).all()
    assert not plane[:, resized_w:].any() and not plane[resized_h:, :].any()


def test_canvas_keeps_intensities_and_orientation() -> None:
    builder = CanvasBuilder(TileGeometry(256, 224, 5))
    image = np.zeros((1536, 1344), np.uint16)  # exactly 2x the canvas
    image[:768, :] = 60000  # top half bright
    builder.fill(image)
    plane = builder.canvas[0, 0]
    assert plane[:380].min() == 60000 and plane[390:].max() == 0


def test_canvas_refuses_bad_arrays() -> None:
    builder = CanvasBuilder(TileGeometry(256, 224, 5))
    with pytest.raises(InputError, match="uint16"):
        builder.fill(np.zeros((10, 10), np.float32), "x.png")
    with pytest.raises(InputError, match="2-D"):
        builder.fill(np.zeros((3, 10, 10), np.uint16), "x.png")
    with pytest.raises(InputError, match="empty"):
        builder.fill(np.zeros((0, 10), np.uint16), "x.png")


def test_area_filter_in_mm2_and_canvas_pixels() -> None:
    builder = CanvasBuilder(TileGeometry(256, 224, 5))
    letterbox = builder.fill(np.zeros((1536, 1344), np.uint16))  # canvas = original / 2
    boxes = np.array([[0, 0, 40, 40], [0, 0, 10, 10], [0, 0, 0, 0]], np.float32)  # canvas px
    scores = np.array([0.5, 0.9, 0.0], np.float32)
    spec = GraphSpec()
    # Spacing 0.1 mm: box 0 is 80 x 80 original px = 64 mm^2, box 1 is 20 x 20 px = 4 mm^2.
    found = findings_from_canvas(boxes, scores, letterbox, pixel_spacing_mm=(0.1, 0.1),
                                 min_area_mm2=spec.min_area_mm2, min_area_canvas_px=spec.min_area_canvas_px)
    assert len(found) == 1 and found[0].area_mm2 == pytest.approx(64.0)
    assert (found[0].x2, found[0].y2) == pytest.approx((80.0, 80.0))
    found = findings_from_canvas(boxes, scores, letterbox, pixel_spacing_mm=None,
                                 min_area_mm2=spec.min_area_mm2, min_area_canvas_px=50.0)
    assert [f.score for f in found] == pytest.approx([0.9, 0.5]) and found[0].area_mm2 is None
