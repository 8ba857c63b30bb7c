"""Which findings are shown: the model's operating points, a score, all, and the fallback with a warning."""

from __future__ import annotations

import dataclasses

import pytest

from tests.engine_helpers import make_metadata
from trt_mass.errors import ConfigError
from trt_mass.metadata import OperatingPoints
from trt_mass.outputs.operating_point import (
    SHOW_ALL,
    check_operating_point,
    choose_operating_point,
    fppi_key,
    given_operating_points,
)

POINTS = OperatingPoints(scores={"0.25": 0.61, "0.5": 0.48, "1": 0.35, "2": 0.22}, data="held-out phantoms",
                         source="eval", tpr={"1": 0.91}, images=50, lesions=69, criterion="iou", iou_threshold=0.2)
WITH_POINTS = dataclasses.replace(make_metadata(), operating_points=POINTS)
WITHOUT = make_metadata()


def test_the_default_is_the_model_s_1fppi_point() -> None:
    point = choose_operating_point(WITH_POINTS, None)
    assert (point.name, point.score, point.warning) == ("1fppi", 0.35, "")
    assert "eval on held-out phantoms (50 images, 69 masses)" in point.origin
    assert point.shows(0.35) and point.shows(0.9) and not point.shows(0.349)


def test_without_points_everything_is_shown_and_the_user_is_told() -> None:
    point = choose_operating_point(WITHOUT, None)
    assert point.score is None and point.shows(0.1) and point.name == "all"
    assert "carries no operating points" in point.warning and "--write-operating-points" in point.warning


def test_named_points_scores_and_all() -> None:
    assert choose_operating_point(WITH_POINTS, "0.5fppi").score == 0.48
    assert choose_operating_point(WITH_POINTS, "2FPPI").score == 0.22
    assert choose_operating_point(WITHOUT, "0.3").score == 0.3 and choose_operating_point(WITHOUT, "0.3").name == "0.3"
    assert choose_operating_point(WITH_POINTS, "all") == SHOW_ALL
    with pytest.raises(ConfigError, match=r"has no such point \(it has: 0.25fppi, 0.5fppi, 1fppi, 2fppi\)"):
        choose_operating_point(WITH_POINTS, "3fppi")
    with pytest.raises(ConfigError, match=r"has no such point \(it has: none\)"):
        choose_operating_point(WITHOUT, "1fppi")
    for bad in ("1.5", "-0.1", "high"):
        with pytest.raises(ConfigError):
            choose_operating_point(WITHOUT, bad)
        with pytest.raises(ConfigError):
            check_operating_point(bad)
    for good in (None, "all", "1fppi", "0.25"):
        check_operating_point(good)


def test_points_given_at_export() -> None:
    points = given_operating_points(("1fppi=0.35", "0.5FPPI=0.5"))
    assert points is not None and points.scores == {"1": 0.35, "0.5": 0.5} and points.source == "export"
    assert given_operating_points(()) is None
    for bad in ("1fppi", "3fppi=0.2", "1fppi=2", "x=0.1"):
        with pytest.raises(ConfigError):
            given_operating_points((bad,))
    assert fppi_key("0.50fppi") == "0.5" and fppi_key("0.5") is None
