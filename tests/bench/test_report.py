"""The bench report: statistics, ratios to the baseline, the terminal and Markdown forms, RESULTS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_mass.bench.report import STAGE_KEYS, markdown, stats, summary_lines


def test_baseline_ratio_comes_from_the_two_measurements(report: dict[str, Any]) -> None:
    ours, baseline, ratios = report["pipelines"]["ours"], report["pipelines"]["baseline"], report["ratios"]
    for measured in (ours, baseline):
        assert measured["end_to_end"]["stats"]["median"] == pytest.approx(
            float(np.median(measured["end_to_end"]["samples_ms"])), abs=1e-3)
    assert ratios["end_to_end"] == pytest.approx(
        ours["end_to_end"]["stats"]["median"] / baseline["end_to_end"]["stats"]["median"])
    for key in STAGE_KEYS:
        mine, theirs = ours["stages"][key]["stats"], baseline["stages"][key]["stats"]
        if mine is None or theirs is None:
            assert ratios["stages"][key] is None
        else:
            assert ratios["stages"][key] == pytest.approx(mine["median"] / theirs["median"])
    assert 0.0 < ratios["end_to_end"] < 10.0
    text = "\n".join(summary_lines(report))
    assert f"{ratios['end_to_end']:.3f}" in text and "end to end" in text
    document = markdown(report)
    assert "## Against the baseline" in document and f"**{ratios['end_to_end']:.3f}**" in document


def test_stats() -> None:
    figures = stats([4.0, 1.0, 3.0, 2.0, 10.0])
    assert figures["count"] == 5 and figures["min"] == 1.0 and figures["max"] == 10.0
    assert figures["median"] == 3.0 and figures["mean"] == 4.0
    assert figures["p90"] == pytest.approx(np.percentile([1, 2, 3, 4, 10], 90))
    assert figures["cov"] == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1) / 4.0)
    assert stats([5.0])["cov"] == 0.0


def test_benchmark_script_writes_its_results_section(report: dict[str, Any], tmp_path: Path) -> None:
    from benchmarks.bench_pipeline_vs_eager import BEGIN, END, results_section, summary_row, update_results_md

    row = summary_row("fp32", report)
    assert row["ratio"] == report["ratios"]["end_to_end"] and row["target"] == 0.75
    assert row["target_met"] == (row["ratio"] <= 0.75)
    result = {"command": "python -m benchmarks.bench_pipeline_vs_eager", "date": "today", "summary": [row],
              "reports": {"fp32": report}}
    section = results_section(result)
    assert section.startswith(BEGIN) and section.endswith(END) and f"**{row['ratio']:.3f}**" in section
    assert report["machine"]["cpu_model"] in section and "No TensorRT figure" in section
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Benchmark results\n\n## Other\n\nkept\n\n{BEGIN}\nSTALE-FIGURES\n{END}\n\n## After\n")
    update_results_md(results, section)
    update_results_md(results, section)
    text = results.read_text()
    assert text.count(BEGIN) == 1 and "STALE-FIGURES" not in text and "kept" in text and text.endswith("## After\n")


def test_the_gpu_check_reports_what_it_measured() -> None:
    """benchmarks/gpu_check.py runs only where a GPU is lent; its report and its stand-in are checked here."""
    import ast

    from benchmarks.gpu_check import BEGIN as GPU_BEGIN
    from benchmarks.gpu_check import END as GPU_END
    from benchmarks.gpu_check import STANDIN_TENSORRT, results_section

    ast.parse(STANDIN_TENSORRT.format(version="11.4.0.106"))
    result = {"command": "python -m benchmarks.gpu_check", "date": "today",
              "machine": {"gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "driver": "580.65",
                                    "compute_capability": "9.0"}]},
              "tensorrt": {"tensorrt_version": None, "tensorrt_problem": "tensorrt is not installed"},
              "plumbing": {"ran": True, "passed": True, "cycles": 100, "device_memory_growth_mib": 0.0,
                           "first_stage_ms": {"h2d": 0.1, "inference": 0.01, "d2h": 0.01}},
              "torch": {"arch": "resnet50", "tile": "768x640", "views": 26, "runs": 10, "device_name": "H100",
                        "torch": "2.11", "median_ms": {"paper_eager_fp32": 100.0, "graph_fp32": 40.0,
                                                       "graph_fp16_network": 20.0},
                        "ratio_fp32": 0.4, "ratio_fp16_network": 0.2}}
    section = results_section(result)
    assert section.startswith(GPU_BEGIN) and section.endswith(GPU_END)
    assert "NVIDIA H100 80GB HBM3" in section and "**0.400**" in section and "**0.200**" in section
    assert "100 load/infer/unload cycles changed free device memory by 0.00 MiB (passed)" in section
