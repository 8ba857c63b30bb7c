"""Host-side geometry: the letterboxed canvas, canvas <-> original pixel mapping, the area filter.

Coordinates: continuous pixel coordinates, pixel (row i, col j) spans [j, j+1) x [i, i+1); boxes are
xyxy.  "Canvas" coordinates are those of the model input; "original" those of the mammogram as loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from trt_mass.errors import ConfigError, InputError
from trt_mass.spec import TileGeometry


def check_pixel_spacing(spacing_mm: float | None, option: str = "--pixel-spacing") -> None:
    """ConfigError unless a given spacing is a finite number of mm above 0 (0 or NaN would make every
    finding's area 0 or NaN, and the area filter would drop them all without a word)."""
    if spacing_mm is not None and not (math.isfinite(spacing_mm) and spacing_mm > 0):
        raise ConfigError(f"{option} must be a pixel spacing in mm above 0, not {spacing_mm}")


@dataclass(frozen=True)
class Letterbox:
    """How an original image was placed on the canvas (top-left aligned, aspect kept).

    Attributes:
        original_hw: (H, W) of the original image, pixels.
        resized_hw: (h, w) it occupies on the canvas, canvas pixels.
        canvas_hw: (CH, CW) of the whole canvas.
    """

    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    canvas_hw: tuple[int, int]

    @property
    def scale_yx(self) -> tuple[float, float]:
        """Canvas pixels per original pixel along y and x."""
        return (self.resized_hw[0] / self.original_hw[0], self.resized_hw[1] / self.original_hw[1])

    def canvas_to_original(self, boxes_canvas_xyxy: np.ndarray) -> np.ndarray:
        """Map boxes [K, 4] xyxy from canvas to original pixels, clipped to the image."""
        sy, sx = self.scale_yx
        boxes = np.asarray(boxes_canvas_xyxy, dtype=np.float64).reshape(-1, 4)
        out = boxes / np.array([sx, sy, sx, sy])
        height, width = self.original_hw
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0.0, width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0.0, height)
        return out

    def original_to_canvas(self, boxes_original_xyxy: np.ndarray) -> np.ndarray:
        """Map boxes [K, 4] xyxy from original to canvas pixels."""
        sy, sx = self.scale_yx
        boxes = np.asarray(boxes_original_xyxy, dtype=np.float64).reshape(-1, 4)
        return boxes * np.array([sx, sy, sx, sy])


def letterbox_size(original_hw: tuple[int, int], canvas_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the aspect-kept image that fits the canvas (one side fills it)."""
    height, width = original_hw
    canvas_h, canvas_w = canvas_hw
    scale = min(canvas_h / height, canvas_w / width)
    return (
        max(1, min(canvas_h, round(height * scale))),
        max(1, min(canvas_w, round(width * scale))),
    )


class CanvasBuilder:
    """Owns one preallocated, C-contiguous canvas [1, 1, CH, CW] and letterboxes images into it.

    The canvas holds uint16 intensities; its element type is uint16, or int32 for engines (TensorRT
    has no uint16 tensors).

    The resized image is written straight into the canvas (no intermediate full-size copies);
    only the padding that the previous image may have left is cleared.
    """

    def __init__(self, geometry: TileGeometry, dtype: str = "uint16") -> None:
        self.geometry = geometry
        canvas_h, canvas_w = geometry.canvas_hw
        self.canvas = np.zeros((1, 1, canvas_h, canvas_w), dtype=np.dtype(dtype))
        self._used_hw = (0, 0)

    def fill(self, image: np.ndarray, source: str = "<array>") -> Letterbox:
        """Letterbox a uint16 H x W image into the canvas; returns the mapping.

        Raises InputError (naming `source`) for anything that is not a non-empty 2-D uint16 array.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 2:
            raise InputError(source, f"expected a 2-D grayscale image, got shape {getattr(image, 'shape', None)}")
        if image.dtype != np.uint16:
            raise InputError(source, f"expected uint16 pixels, got {image.dtype}")
        if min(image.shape) < 1:
            raise InputError(source, "image is empty")
        canvas_hw = self.geometry.canvas_hw
        resized_hw = letterbox_size(image.shape, canvas_hw)
        plane = self.canvas[0, 0]
        self._clear_padding(resized_hw)
        target = plane[: resized_hw[0], : resized_hw[1]]
        if resized_hw == image.shape:
            np.copyto(target, image)
        else:
            native = np.ascontiguousarray(image, dtype=np.dtype("<u2"))
            # Pillow's I;16 resize is antialiased when shrinking (triangle filter over the footprint).
            resized = Image.fromarray(native).resize(
                (resized_hw[1], resized_hw[0]), Image.Resampling.BILINEAR
            )
            np.copyto(target, np.asarray(resized), casting="safe")
        self._used_hw = resized_hw
        return Letterbox(original_hw=(int(image.shape[0]), int(image.shape[1])),
                         resized_hw=resized_hw, canvas_hw=canvas_hw)

    def _clear_padding(self, resized_hw: tuple[int, int]) -> None:
        plane = self.canvas[0, 0]
        used_h, used_w = self._used_hw
        new_h, new_w = resized_hw
        if used_h > new_h:
            plane[new_h:used_h, :used_w] = 0
        if used_w > new_w:
            plane[:used_h, new_w:used_w] = 0


@dataclass(frozen=True)
class Finding:
    """One detected mass, in original pixel coordinates (xyxy)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    area_px: float
    area_mm2: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {
            "x1": round(self.x1, 2), "y1": round(self.y1, 2),
            "x2": round(self.x2, 2), "y2": round(self.y2, 2),
            "score": round(self.score, 5),
            "area_px": round(self.area_px, 1),
            "area_mm2": None if self.area_mm2 is None else round(self.area_mm2, 2),
        }


def findings_from_canvas(
    boxes_canvas_xyxy: np.ndarray,
    scores: np.ndarray,
    letterbox: Letterbox,
    *,
    pixel_spacing_mm: tuple[float, float] | None,
    min_area_mm2: float,
    min_area_canvas_px: float,
) -> list[Finding]:
    """Turn the graph's padded outputs into findings in original pixels, dropping small ones.

    Args:
        boxes_canvas_xyxy: [N, 4] float, canvas pixels.
        scores: [N] float; rows with score 0 are padding.
        pixel_spacing_mm: (row spacing, column spacing) in mm, or None when unknown.
        min_area_mm2: area filter used when the spacing is known.
        min_area_canvas_px: area filter (canvas pixels^2) used when it is not.

    Returns findings sorted by decreasing score.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes_canvas = np.asarray(boxes_canvas_xyxy, dtype=np.float64).reshape(-1, 4)
    used = scores > 0
    boxes_canvas, scores = boxes_canvas[used], scores[used]
    boxes_original = letterbox.canvas_to_original(boxes_canvas)
    area_px = _area(boxes_original)
    if pixel_spacing_mm is not None:
        area_mm2: np.ndarray | None = area_px * pixel_spacing_mm[0] * pixel_spacing_mm[1]
        assert area_mm2 is not None
        keep = area_mm2 >= min_area_mm2
    else:
        area_mm2 = None
        keep = _area(boxes_canvas) >= min_area_canvas_px
    order = np.argsort(-scores, kind="stable")
    findings = []
    for i in order:
        if not keep[i]:
            continue
        x1, y1, x2, y2 = (float(v) for v in boxes_original[i])
        findings.append(Finding(x1, y1, x2, y2, float(scores[i]), float(area_px[i]),
                                None if area_mm2 is None else float(area_mm2[i])))
    return findings


def _area(boxes_xyxy: np.ndarray) -> np.ndarray:
    return np.clip(boxes_xyxy[:, 2] - boxes_xyxy[:, 0], 0, None) * np.clip(
        boxes_xyxy[:, 3] - boxes_xyxy[:, 1], 0, None
    )
