"""Which findings are shown: the operating point of a run.

The engine graph returns every candidate above its score threshold (0.1 by default): far more marks
than a reader wants.  A CAD product shows marks at an operating point: the score threshold at which the
model made at most so many false positives per image on a named data set (`trtmass eval
--write-operating-points` stores them in the model's metadata, trt_mass.metadata.OperatingPoints).

    --operating-point 1fppi    the model's 1-FPPI point (also 0.25fppi, 0.5fppi, 2fppi)
    --operating-point 0.35     an explicit score
    --operating-point all      every candidate (what the graph returns)
    (not given)                the model's 1-FPPI point when it has one, else every candidate, with a warning

Overlays and DICOM objects show the findings at or above the point; the result JSON keeps every
candidate, each with `shown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trt_mass.errors import ConfigError
from trt_mass.metadata import OPERATING_FPPI, ModelMetadata, OperatingPoints

ALL = "all"
DEFAULT_FPPI = "1"
_FPPI_NAME = re.compile(r"^(\d+(?:\.\d+)?)fppi$")


@dataclass(frozen=True)
class OperatingPoint:
    """The point a run shows findings at.

    Attributes:
        name: "1fppi", "0.35" (a score given), or "all".
        score: findings with a score >= this are shown; None: all are.
        origin: where the score comes from, for the result and the log.
        warning: said once to the user when the choice is a fallback ("" otherwise).
    """

    name: str
    score: float | None
    origin: str
    warning: str = ""

    def shows(self, score: float) -> bool:
        return self.score is None or score >= self.score

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "score": self.score, "origin": self.origin}


SHOW_ALL = OperatingPoint(ALL, None, "every candidate the engine graph returns")


def fppi_key(name: str) -> str | None:
    """"1fppi" -> "1", "0.50fppi" -> "0.5"; None when `name` is not an FPPI name."""
    match = _FPPI_NAME.match(name.strip().lower())
    return None if match is None else f"{float(match.group(1)):g}"


def choose_operating_point(metadata: ModelMetadata, requested: str | None) -> OperatingPoint:
    """The operating point for `--operating-point requested` (None: the model's default) with this model."""
    points = metadata.operating_points
    if requested is None:
        if points is None or DEFAULT_FPPI not in points.scores:
            has = ("carries no operating points" if points is None else
                   f"has no 1-FPPI point (it has: {', '.join(f'{k}fppi' for k in points.scores)})")
            return OperatingPoint(ALL, None, SHOW_ALL.origin, warning=(
                f"{metadata.model_id} {has}: every candidate above the graph's score threshold "
                f"({metadata.graph_spec.score_threshold}) is shown; measure them with `trtmass eval "
                "--write-operating-points` or choose one with --operating-point"))
        return _from_model(points, DEFAULT_FPPI)
    text = requested.strip().lower()
    if text == ALL:
        return SHOW_ALL
    key = fppi_key(text)
    if key is not None:
        if points is None or key not in points.scores:
            available = ", ".join(f"{k}fppi" for k in points.scores) if points else "none"
            raise ConfigError(f"--operating-point {requested}: {metadata.model_id} has no such point (it has: "
                              f"{available}); give a score, or measure them with `trtmass eval "
                              "--write-operating-points`")
        return _from_model(points, key)
    return OperatingPoint(f"{_score(requested, '--operating-point'):g}", _score(requested, "--operating-point"),
                          "given with --operating-point")


def check_operating_point(requested: str | None, option: str = "operating_point") -> None:
    """ConfigError unless `requested` reads as a point name, a score or "all" (whether the model has the
    point is known only once it is loaded)."""
    if requested is None or requested.strip().lower() == ALL or fppi_key(requested) is not None:
        return
    _score(requested, option)


def _from_model(points: OperatingPoints, key: str) -> OperatingPoint:
    return OperatingPoint(f"{key}fppi", points.scores[key], f"the model's {key}-FPPI point ({points.describe()})")


def _score(text: str, option: str) -> float:
    try:
        score = float(text)
    except ValueError:
        raise ConfigError(f"{option} {text}: give NAME (1fppi, 0.5fppi, ...), a score in [0, 1], or all") from None
    if not 0.0 <= score <= 1.0:
        raise ConfigError(f"{option} {text}: a score must be in [0, 1]")
    return score


def given_operating_points(assignments: tuple[str, ...]) -> OperatingPoints | None:
    """`export --operating-point 1fppi=0.35 ...` as the model's operating points (None for none)."""
    scores: dict[str, float] = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        key = fppi_key(name)
        if key is None or key not in OPERATING_FPPI or not value:
            raise ConfigError(f"--operating-point {assignment}: write NAME=SCORE with NAME one of "
                              f"{', '.join(f'{k}fppi' for k in OPERATING_FPPI)}")
        scores[key] = _score(value, "--operating-point")
    return OperatingPoints(scores=scores, data="given with trtmass export", source="export") if scores else None
