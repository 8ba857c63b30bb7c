"""Intensity augmentation: vendors' tone curves, contrast and edge enhancement on uint16 views."""

from __future__ import annotations

import numpy as np
import pytest

from trt_mass.model.augment import IntensityAugment, box_blur


def _view() -> np.ndarray:
    """A breast-like view: a left half of tissue with a bright square, a right half of black background."""
    view = np.zeros((64, 80), np.uint16)
    view[:, :40] = 20000
    view[20:40, 10:30] = 40000
    return view


def test_box_blur_is_the_window_mean_with_replicated_edges() -> None:
    values = np.random.default_rng(0).random((9, 7)).astype(np.float32)
    padded = np.pad(values, 2, mode="edge")
    want = np.array([[padded[y:y + 5, x:x + 5].mean() for x in range(7)] for y in range(9)])
    np.testing.assert_allclose(box_blur(values, 2), want, rtol=1e-5)


def test_each_transform_changes_tissue_and_keeps_the_background_black() -> None:
    view = _view()
    only = {"gamma": IntensityAugment(gamma_p=1.0, contrast_p=0.0, unsharp_p=0.0),
            "contrast": IntensityAugment(gamma_p=0.0, contrast_p=1.0, unsharp_p=0.0),
            "unsharp": IntensityAugment(gamma_p=0.0, contrast_p=0.0, unsharp_p=1.0)}
    for name, augment in only.items():
        changed = [augment(view, np.random.default_rng(seed)) for seed in range(5)]
        for out in changed:
            assert out.dtype == np.uint16 and out.shape == view.shape, name
            assert not out[:, 40:].any(), f"{name}: the background stays 0"
        assert any(not np.array_equal(out[:, :40], view[:, :40]) for out in changed), f"{name} changed nothing"
    sharpened = only["unsharp"](view, np.random.default_rng(1))
    assert sharpened[19, 20] < 20000 < 40000 < sharpened[20, 20], "unsharp masking overshoots at an edge"


def test_gamma_moves_mid_tones_both_ways_and_probability_zero_is_the_identity() -> None:
    view = _view()
    gamma = IntensityAugment(gamma_p=1.0, contrast_p=0.0, unsharp_p=0.0)
    tissue = [int(gamma(view, np.random.default_rng(seed))[0, 0]) for seed in range(20)]
    assert min(tissue) < 20000 < max(tissue)
    off = IntensityAugment.with_probability(0.0)
    assert not off.enabled and off(view, np.random.default_rng(0)) is view
    with pytest.raises(ValueError, match="probability"):
        IntensityAugment.with_probability(1.5)


def test_the_same_seed_gives_the_same_view() -> None:
    augment = IntensityAugment.with_probability(1.0)
    first = augment(_view(), np.random.default_rng(7))
    assert np.array_equal(first, augment(_view(), np.random.default_rng(7)))
