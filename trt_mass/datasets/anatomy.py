"""Where a phantom's breast lies on the detector: size, shape and position as in real mammograms.

Real breasts vary far more than a detector does: a small breast on a 24 x 30 cm detector leaves
most tiles as air, a large one is cut off at the image edge.  View selection (#17) and every
benchmark of it depend on that spread, so the "realistic" anatomy draws the breast in centimetres
first and then the detector that fits it:

    1. the breast: its extent along the chest wall (lognormal around 17 cm, 9 to 27 cm) and the
       chest-wall-to-nipple depth (0.5 to 0.8 of that); on MLO the chest-wall extent is longer
       (the axillary tail) and the contour droops towards the inframammary fold;
    2. the detector: 18 x 24 cm when the breast fits it (four times in five, as technologists pick
       the small paddle for small breasts), else 24 x 30 cm; a large breast is cut off by the edge;
    3. the outline on the pixel grid: a superellipse against the chest wall (x = 0, before the
       right-breast flip), centred along the wall on CC, from the top edge (axilla) on MLO, slightly
       tilted; the pectoral muscle on MLO is a convex-edged triangle from the top of the chest wall.

The "fill" anatomy is the original one (a breast filling most of the detector, any vendor): kept so
that phantoms made before it (the demo model's recipe) are reproduced byte for byte.

Coordinates: pixels of the phantom image, chest wall at x = 0; `radius` < 1 inside the breast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Detector sizes, rows x columns in cm (portrait: the chest wall runs along a column edge).
DETECTOR_CM = {"18x24": (24.0, 18.0), "24x30": (30.0, 24.0)}
ANATOMIES = ("realistic", "fill")


@dataclass(frozen=True)
class BreastSize:
    """A breast in centimetres, as compressed for one view.

    Attributes:
        view: "CC" or "MLO".
        wall_cm: extent along the chest wall (on MLO including the axillary tail).
        depth_cm: chest wall to nipple, perpendicular to the wall.
    """

    view: str
    wall_cm: float
    depth_cm: float

    def fits(self, detector: str) -> bool:
        rows_cm, columns_cm = DETECTOR_CM[detector]
        return self.wall_cm <= 0.95 * rows_cm and self.depth_cm <= 0.92 * columns_cm


@dataclass(frozen=True)
class Layout:
    """The breast on the pixel grid.

    Attributes:
        radius: float32 [H, W], normalised superellipse radius (< 1 inside the breast).
        grid: float32 [2, H, W], the y and x pixel coordinates.
        skin_reference_px: the length (pixels) the skin thickness is relative to, times `skin_factor`:
            the breast's depth ("fill": 0.7 of the image width, as it always was).
        pectoral: bool [H, W] mask of the pectoral muscle (MLO), or None (CC, or drawn later by "fill").
        pectoral_width_px: the muscle's width at the top edge (its brightness fades across it).
    """

    radius: np.ndarray
    grid: np.ndarray
    skin_reference_px: float
    skin_factor: float = 1.0
    pectoral: np.ndarray | None = None
    pectoral_width_px: float = 0.0


def draw_breast(rng: np.random.Generator, view: str) -> BreastSize:
    """A compressed breast's size for `view`, spread like a screening population's."""
    wall_cm = float(np.clip(17.0 * math.exp(rng.normal(0.0, 0.22)), 9.0, 27.0))
    depth_cm = wall_cm * rng.uniform(0.5, 0.8)
    if view == "MLO":
        wall_cm *= rng.uniform(1.08, 1.25)
        depth_cm *= rng.uniform(1.0, 1.1)
    return BreastSize(view, wall_cm, depth_cm)


def pick_detector(rng: np.random.Generator, breast: BreastSize) -> str:
    """18x24 for four in five breasts that fit it, else 24x30."""
    return "18x24" if breast.fits("18x24") and rng.random() < 0.8 else "24x30"


def detector_of(rows: int, columns: int, spacing_mm: float) -> str:
    """The detector size class of a vendor's native image (rows x spacing)."""
    return "18x24" if rows * spacing_mm < 260.0 else "24x30"


def _superellipse(x_norm: np.ndarray, y_norm: np.ndarray, exponent: float) -> np.ndarray:
    return (np.abs(x_norm) ** exponent + np.abs(y_norm) ** exponent) ** (1.0 / exponent)


def realistic_layout(rng: np.random.Generator, breast: BreastSize, shape_hw: tuple[int, int],
                     spacing_mm: float) -> Layout:
    """The breast of `breast` on an image of `shape_hw` pixels at `spacing_mm` per pixel."""
    height, width = shape_hw
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    per_cm = 10.0 / spacing_mm
    depth_px, half_px = breast.depth_cm * per_cm, breast.wall_cm * per_cm / 2
    exponent = rng.uniform(1.8, 2.6)
    if breast.view == "CC":
        margin = max(0.0, (height - 2 * half_px) / 2)
        centre_y = height / 2 + rng.uniform(-0.8, 0.8) * min(margin, 0.12 * height)
        tilt = rng.uniform(-0.08, 0.08)
    else:  # the axilla at the top edge, the breast hanging below it
        centre_y = half_px * rng.uniform(0.8, 1.0) - 0.02 * height * rng.random()
        tilt = rng.uniform(0.1, 0.35)
    upper_over_lower = rng.uniform(0.88, 1.12)
    dy = (yy - centre_y) - tilt * xx
    half_y = np.where(dy < 0, half_px * upper_over_lower, half_px / upper_over_lower)
    radius = _superellipse(xx / depth_px, dy / half_y, exponent).astype(np.float32)
    if breast.view == "CC":
        return Layout(radius, np.stack([yy, xx]), depth_px)
    muscle_width = depth_px * rng.uniform(0.3, 0.65)
    muscle_height = 2 * half_px * rng.uniform(0.3, 0.55)
    bulge = rng.uniform(0.75, 1.25)  # < 1: convex edge, > 1: concave
    pectoral = (np.clip(xx / muscle_width, 0, None) ** bulge + yy / muscle_height) < 1
    return Layout(radius, np.stack([yy, xx]), depth_px, pectoral=pectoral, pectoral_width_px=muscle_width)


def fill_layout(rng: np.random.Generator, shape_hw: tuple[int, int], view: str) -> Layout:
    """The original phantom breast: depth 0.55-0.82 of the width, most of the height."""
    height, width = shape_hw
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = width * rng.uniform(0.55, 0.82)  # chest wall to nipple
    if view == "MLO":
        centre_y = height * rng.uniform(0.40, 0.50)
        half_height = height * rng.uniform(0.46, 0.55)
    else:
        centre_y = height * rng.uniform(0.45, 0.55)
        half_height = height * rng.uniform(0.33, 0.44)
    tilt = rng.uniform(-0.08, 0.08) if view == "CC" else rng.uniform(0.05, 0.2)
    dy = (yy - centre_y) - tilt * xx
    radius = np.sqrt((xx / depth) ** 2 + (dy / half_height) ** 2)
    return Layout(radius, np.stack([yy, xx]), width, skin_factor=0.7)


def fill_pectoral(rng: np.random.Generator, grid: np.ndarray, shape_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The "fill" anatomy's pectoral muscle (drawn after the texture, as it always was): (mask, width px)."""
    yy, xx = grid
    pectoral_w, pectoral_h = shape_hw[1] * rng.uniform(0.25, 0.45), shape_hw[0] * rng.uniform(0.35, 0.6)
    return (xx / pectoral_w + yy / pectoral_h) < 1, pectoral_w
