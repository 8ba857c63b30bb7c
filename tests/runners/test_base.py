"""The Runner interface's input checks: names, dtypes and static shapes, before any backend sees a feed."""

from __future__ import annotations

import numpy as np
import pytest

from trt_mass.errors import InputError
from trt_mass.metadata import TensorSpec
from trt_mass.runners.base import check_feed

INPUTS = (TensorSpec("canvas", "uint16", (1, 1, 6, 4)),)


def test_a_matching_feed_passes() -> None:
    check_feed({"canvas": np.zeros((1, 1, 6, 4), np.uint16)}, INPUTS)


@pytest.mark.parametrize(("feed", "message"), [
    ({}, r"inputs \[\] do not match the model's \['canvas'\]"),
    ({"canvas": np.zeros((1, 1, 6, 4), np.uint16), "extra": np.zeros(1)}, "do not match"),
    ({"image": np.zeros((1, 1, 6, 4), np.uint16)}, "do not match"),
    ({"canvas": [[0]]}, "canvas: expected a NumPy array, got list"),
    ({"canvas": np.zeros((1, 1, 6, 4), np.int32)}, "canvas: dtype int32, the model takes uint16"),
    ({"canvas": np.zeros((1, 1, 4, 6), np.uint16)}, r"canvas: shape \(1, 1, 4, 6\), the model takes \(1, 1, 6, 4\)"),
])
def test_every_mismatch_is_refused_with_its_reason(feed: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_feed(feed, INPUTS)
