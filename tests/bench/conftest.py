"""One bench run with the baseline on the tiny model, shared by the bench tests (it takes a while)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TinyModel
from trt_mass.bench.run import BenchConfig, run_bench

# Why medians need not add up: the stages partition every mammogram's end-to-end time exactly, but the
# median of a sum is not the sum of the medians (only means add).  With few, similar runs they are close.
MEDIAN_SUM_TOLERANCE = 0.10
STATS_KEYS = {"count", "min", "median", "mean", "p90", "p95", "p99", "max", "std", "cov"}
RUNS = 3  # odd: a median is then one measurement, not the mean of two (which would add up trivially)


@pytest.fixture(scope="package")
def checkpoint(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's own (structured random) weights: their hash is the one in its metadata."""
    pytest.importorskip("torch")
    from trt_mass.model.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    save_checkpoint(path, tiny_model.network)
    return path


@pytest.fixture(scope="package")
def report(tiny_model: TinyModel, checkpoint: Path) -> dict[str, Any]:
    config = BenchConfig(model=tiny_model.onnx_path, synthetic=2, synthetic_scale=0.1, warmup=1, runs=RUNS,
                         threads=2, baseline=True, checkpoint=checkpoint, command="pytest",
                         decoder="openjpeg", decode_threads=2, compare_decoders=True)
    seen: list[tuple[int, int, str]] = []
    result = run_bench(config, progress=lambda done, total, what: seen.append((done, total, what)))
    assert [s[0] for s in seen] == list(range(1, 2 * (1 + RUNS) + 1)) and seen[-1][1] == 2 * (1 + RUNS)
    return result
