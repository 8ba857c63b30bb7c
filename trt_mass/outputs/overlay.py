"""The overlay picture of a result: a downscaled 8-bit copy of the image with the findings (red) and,
when given, the ground truth (green) drawn on it; boxes in original pixels, xyxy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trt_mass.atomic import atomic_path
from trt_mass.geometry import Finding

OVERLAY_MAX_SIDE = 1024
FINDING_COLOUR = (255, 64, 32)
TRUTH_COLOUR = (40, 220, 90)


def downscaled_rgb(pixels: np.ndarray, max_side: int) -> tuple[Image.Image, float]:
    """The uint16 image as 8-bit RGB with its long side at most `max_side`; (picture, scale)."""
    height, width = pixels.shape
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    gray = Image.fromarray(np.ascontiguousarray(pixels >> 8).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    return gray.convert("RGB"), scale


def render_overlay(pixels: np.ndarray, findings: list[Finding], truth_xyxy: np.ndarray | None = None) -> Image.Image:
    """A downscaled 8-bit RGB picture with the findings (and ground truth) drawn; boxes in original px."""
    picture, scale = downscaled_rgb(pixels, OVERLAY_MAX_SIDE)
    draw = ImageDraw.Draw(picture)
    line = max(1, round(max(picture.size) / 400))
    if truth_xyxy is not None:
        for x1, y1, x2, y2 in np.asarray(truth_xyxy).reshape(-1, 4) * scale:
            draw.rectangle([x1, y1, x2, y2], outline=TRUTH_COLOUR, width=line)
    for finding in findings:
        box = [finding.x1 * scale, finding.y1 * scale, finding.x2 * scale, finding.y2 * scale]
        draw.rectangle(box, outline=FINDING_COLOUR, width=line)
        draw.text((box[0] + 2, max(0, box[1] - 12)), f"{finding.score:.2f}", fill=FINDING_COLOUR)
    return picture


def write_overlay(path: Path, picture: Image.Image) -> None:
    with atomic_path(path) as temporary:
        picture.save(temporary, format="PNG")
