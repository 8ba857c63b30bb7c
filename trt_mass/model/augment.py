"""Intensity augmentation of training views: other vendors' processing, so that digital mammograms do not
look foreign to a model trained on film scans and phantoms.

Each transform runs with its own probability on a uint16 view [H, W] and returns a new uint16 view of the
same shape; boxes do not move.  Pixels that are exactly 0 (letterbox padding, clipped air) stay 0, as a
vendor's processing leaves the background black:

- gamma: v' = 65535 (v / 65535) ** g, g log-uniform in [0.6, 1.6] (the tone curve's mid-tones);
- contrast: v' = m + c (v - m) about the mean m of the non-zero pixels, c uniform in [0.75, 1.35];
- unsharp masking: v' = v + a (v - box_blur(v, r)), a uniform in [0.3, 1.5], r in 2..8 px (the edge
  enhancement of "for presentation" images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_SCALE = 65535.0


@dataclass(frozen=True)
class IntensityAugment:
    """Probabilities of each transform (0 disables it) and their ranges."""

    gamma_p: float = 0.5
    gamma_range: tuple[float, float] = (0.6, 1.6)
    contrast_p: float = 0.5
    contrast_range: tuple[float, float] = (0.75, 1.35)
    unsharp_p: float = 0.3
    unsharp_amount: tuple[float, float] = (0.3, 1.5)
    unsharp_radius: tuple[int, int] = (2, 8)

    @classmethod
    def with_probability(cls, p: float) -> IntensityAugment:
        """All three at probability p (unsharp masking at 0.6 p: it is the strongest change)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"an augmentation probability is in [0, 1], not {p}")
        return cls(gamma_p=p, contrast_p=p, unsharp_p=0.6 * p)

    @property
    def enabled(self) -> bool:
        return max(self.gamma_p, self.contrast_p, self.unsharp_p) > 0.0

    def __call__(self, view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint16 [H, W] -> uint16 [H, W], a random subset of the transforms applied in a fixed order."""
        if not self.enabled:
            return view
        values = view.astype(np.float32)
        background = view == 0
        if rng.random() < self.gamma_p:
            gamma = float(np.exp(rng.uniform(*np.log(self.gamma_range))))
            values = FULL_SCALE * np.power(values / FULL_SCALE, gamma, dtype=np.float32)
        if rng.random() < self.contrast_p:
            tissue = values[~background]
            mean = float(tissue.mean()) if tissue.size else 0.0
            values = mean + float(rng.uniform(*self.contrast_range)) * (values - mean)
        if rng.random() < self.unsharp_p:
            radius = int(rng.integers(self.unsharp_radius[0], self.unsharp_radius[1] + 1))
            values = values + float(rng.uniform(*self.unsharp_amount)) * (values - box_blur(values, radius))
        values[background] = 0.0
        return np.clip(np.rint(values), 0.0, FULL_SCALE).astype(np.uint16)


def box_blur(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2 radius + 1)^2 window, edges replicated: float32 [H, W] -> float32 [H, W]."""
    size = 2 * radius + 1
    padded = np.pad(values.astype(np.float64), radius, mode="edge")
    summed = np.cumsum(np.cumsum(padded, axis=0), axis=1)
    summed = np.pad(summed, ((1, 0), (1, 0)))
    height, width = values.shape
    window = (summed[size:size + height, size:size + width] - summed[:height, size:size + width]
              - summed[size:size + height, :width] + summed[:height, :width])
    return (window / (size * size)).astype(np.float32)
