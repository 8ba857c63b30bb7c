"""`trtmass bench` on a tiny model: the report's schema, its arithmetic, the eager baseline, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TinyModel
from tests.helpers import blob_canvas, match_as_sets
from trt_mass.bench.report import SCHEMA, STAGE_KEYS, markdown, stats, summary_lines
from trt_mass.bench.run import BenchConfig, run_bench
from trt_mass.errors import ConfigError, ModelError
from trt_mass.runners.ort import OnnxRuntimeRunner

torch = pytest.importorskip("torch")

from trt_mass.bench.baseline import EagerBaseline  # noqa: E402
from trt_mass.model.checkpoint import save_checkpoint  # noqa: E402
from trt_mass.runners.torch_ref import TorchRunner  # noqa: E402

# Why medians need not add up: the stages partition every mammogram's end-to-end time exactly, but the
# median of a sum is not the sum of the medians (only means add).  With few, similar runs they are close.
MEDIAN_SUM_TOLERANCE = 0.10
STATS_KEYS = {"count", "min", "median", "mean", "p90", "p95", "p99", "max", "std", "cov"}
RUNS = 3  # odd: a median is then one measurement, not the mean of two (which would add up trivially)


@pytest.fixture(scope="module")
def checkpoint(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's own (structured random) weights: their hash is the one in its metadata."""
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    save_checkpoint(path, tiny_model.network)
    return path


@pytest.fixture(scope="module")
def report(tiny_model: TinyModel, checkpoint: Path) -> dict[str, Any]:
    config = BenchConfig(model=tiny_model.onnx_path, synthetic=2, synthetic_scale=0.1, warmup=1, runs=RUNS,
                         threads=2, baseline=True, checkpoint=checkpoint, command="pytest")
    seen: list[tuple[int, int, str]] = []
    result = run_bench(config, progress=lambda done, total, what: seen.append((done, total, what)))
    assert [s[0] for s in seen] == list(range(1, 2 * (1 + RUNS) + 1)) and seen[-1][1] == 2 * (1 + RUNS)
    return result


def _pipeline_schema(pipeline: dict[str, Any]) -> None:
    assert pipeline["samples"] == RUNS, "warm-up runs are excluded from the statistics"
    assert set(pipeline["stages"]) == set(STAGE_KEYS)
    for key, stage in pipeline["stages"].items():
        assert set(stage) == {"applicable", "note", "stats", "samples_ms"}
        if stage["applicable"]:
            assert set(stage["stats"]) == STATS_KEYS and stage["note"] is None
            assert len(stage["samples_ms"]) == RUNS and min(stage["samples_ms"]) >= 0
            figures = stage["stats"]
            assert figures["min"] <= figures["median"] <= figures["p90"] <= figures["p95"] <= figures["p99"] \
                <= figures["max"], key
        else:
            # ONNX Runtime's CPU provider and torch on the CPU have no host/device copies: n/a, not a fake 0.
            assert key in ("h2d", "d2h") and stage["stats"] is None and stage["samples_ms"] is None
            assert "inside 'inference'" in stage["note"]
    assert set(pipeline["end_to_end"]["stats"]) == STATS_KEYS
    throughput = pipeline["throughput"]
    assert throughput["views_per_mammogram"] == 26
    assert throughput["mammograms_per_s"] == pytest.approx(1000 / pipeline["end_to_end"]["stats"]["mean"])
    assert throughput["views_per_s"] == pytest.approx(26 * throughput["mammograms_per_s"])
    assert len(pipeline["findings_per_mammogram"]) == RUNS
    assert {"device_peak_mib", "device_note"} <= set(pipeline["memory"])


def test_report_schema(report: dict[str, Any], tiny_model: TinyModel) -> None:
    assert report["schema"] == SCHEMA
    assert set(report) == {"schema", "created", "command", "machine", "model", "settings", "stage_definitions",
                           "pipelines", "memory", "ratios", "warnings"}
    machine = report["machine"]
    assert machine["cpu_model"] and machine["logical_cores"] >= 1 and isinstance(machine["gpus"], list)
    assert {"onnxruntime", "torch", "numpy"} <= set(machine["versions"]) and machine["python"]
    model = report["model"]
    metadata = OnnxRuntimeRunner(tiny_model.onnx_path).activate().metadata
    assert model["weights_sha256"] == metadata.weights_sha256 and model["model_id"] == metadata.model_id
    assert model["precision"] == "fp32" and len(model["file_sha256"]) == 64
    assert model["geometry"] == {"tile_hw": [256, 224], "grid": 5, "canvas_hw": [768, 672], "views": 26}
    assert model["graph_spec"]["score_threshold"] == tiny_model.graph_spec.score_threshold
    inputs = report["settings"]["inputs"]
    assert inputs["source"] == "synthetic" and len(inputs["files"]) == 2 and len(inputs["images_hw"]) == 2
    assert set(report["pipelines"]) == {"ours", "baseline"}
    for pipeline in report["pipelines"].values():
        _pipeline_schema(pipeline)
    assert report["pipelines"]["ours"]["backend"] == "ort"
    assert report["pipelines"]["baseline"]["backend"] == "torch-eager"
    assert set(report["pipelines"]["baseline"]["detail"]) == {"network", "decode_nms", "merge"}
    memory = report["memory"]
    assert memory["peak_rss_mib"] >= memory["peak_rss_mib_before_baseline"] > 0
    assert isinstance(report["warnings"], list)
    json.dumps(report)  # plain data all the way down


def test_stages_add_up_to_the_end_to_end_time(report: dict[str, Any]) -> None:
    for name, pipeline in report["pipelines"].items():
        applicable = [stage for stage in pipeline["stages"].values() if stage["applicable"]]
        end_to_end = pipeline["end_to_end"]
        # Per mammogram the stages partition the end-to-end time (contiguous timestamps): exact.
        for index, total in enumerate(end_to_end["samples_ms"]):
            assert sum(stage["samples_ms"][index] for stage in applicable) == pytest.approx(total, abs=0.01), name
        # Medians only approximately (see MEDIAN_SUM_TOLERANCE).
        median_sum = sum(stage["stats"]["median"] for stage in applicable)
        assert median_sum == pytest.approx(end_to_end["stats"]["median"], rel=MEDIAN_SUM_TOLERANCE), name
        assert pipeline["stages"]["inference"]["stats"]["median"] > 0.5 * end_to_end["stats"]["median"]


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


def test_eager_baseline_and_torch_runner_find_what_the_onnx_graph_finds(tiny_model: TinyModel,
                                                                        checkpoint: Path) -> None:
    canvas = blob_canvas(tiny_model.graph_spec.geometry.canvas_hw, seed=3)
    with OnnxRuntimeRunner(tiny_model.onnx_path, threads=2) as runner:
        want = runner.infer({"canvas": canvas})
        metadata = runner.metadata
    assert np.count_nonzero(want["scores"]) > 3, "the test needs detections to compare"
    with EagerBaseline.from_metadata(metadata, checkpoint, "cpu") as baseline:
        found = baseline.infer({"canvas": canvas})
    match_as_sets(found["boxes"], found["scores"], want["boxes"], want["scores"], box_tol=2e-2, score_tol=1e-4)
    assert set(baseline.last_stage_ms) == {"inference"} and baseline.last_detail_ms["network"] > 0
    with TorchRunner(tiny_model.onnx_path, checkpoint=checkpoint, device="cpu") as torch_runner:
        got = torch_runner.infer({"canvas": canvas})
        assert set(torch_runner.last_stage_ms) == {"inference"}
    assert got["boxes"].shape == want["boxes"].shape
    match_as_sets(got["boxes"], got["scores"], want["boxes"], want["scores"], box_tol=2e-2, score_tol=1e-4)


def test_refuses_weights_whose_hash_differs(tiny_model: TinyModel, tmp_path: Path) -> None:
    # The tiny model's metadata says random:seed=0,prior=0.001, but its weights were modified after the
    # random init (structured_random_network): rebuilding from the seed gives other weights.
    metadata = OnnxRuntimeRunner(tiny_model.onnx_path).activate().metadata
    with pytest.raises(ModelError, match=metadata.weights_sha256) as refused:
        TorchRunner(tiny_model.onnx_path, device="cpu").activate()
    assert "not the same weights" in str(refused.value) and str(refused.value).count("sha256 ") == 2
    config = BenchConfig(model=tiny_model.onnx_path, synthetic=1, synthetic_scale=0.05, warmup=0, runs=1,
                         baseline=True)
    with pytest.raises(ModelError, match="not the same weights"):
        run_bench(config)
    with pytest.raises(ConfigError, match="not both"):
        BenchConfig(model=tiny_model.onnx_path, inputs=tmp_path, synthetic=2)


def test_cli_writes_json_markdown_and_plot_without_importing_torch(tiny_model: TinyModel, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 65535, (700, 560), dtype=np.uint16)).save(inputs / "a.png")
    out = tmp_path / "report"
    code = ("import sys\nfrom trt_mass.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run(
        [sys.executable, "-c", code, "bench", "--model", str(tiny_model.onnx_path), "--input", str(inputs),
         "--pixel-spacing", "0.1", "--warmup", "1", "--runs", "2", "--threads", "2", "--json", str(out / "r.json"),
         "--markdown", str(out / "r.md"), "--plot", str(out / "r.png")],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "end to end" in result.stdout and "mammograms/s" in result.stdout
    report = json.loads((out / "r.json").read_text())
    assert report["schema"] == SCHEMA and report["ratios"] is None and set(report["pipelines"]) == {"ours"}
    assert report["settings"]["inputs"]["images_hw"] == {"a.png": [700, 560]}
    assert report["pipelines"]["ours"]["stages"]["h2d"]["applicable"] is False
    assert "| ours | **end to end** |" in (out / "r.md").read_text()
    with Image.open(out / "r.png") as picture:
        assert picture.format == "PNG" and picture.size[0] > 400


def test_cli_refusal_is_one_line(tiny_model: TinyModel, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trt_mass.cli.bench import bench

    result = CliRunner().invoke(bench, ["--model", str(tmp_path / "missing.onnx"), "--synthetic", "1"])
    assert result.exit_code == 2 and "no such model file" in result.output
    result = CliRunner().invoke(bench, ["--model", str(tiny_model.onnx_path), "--synthetic", "1",
                                        "--input", str(tmp_path)])
    assert result.exit_code == 2 and "not both" in result.output


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
