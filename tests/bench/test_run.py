"""`trtmass bench` on a tiny model: the report's schema, the stages' arithmetic, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.bench.conftest import MEDIAN_SUM_TOLERANCE, RUNS, STATS_KEYS
from tests.conftest import TinyModel
from trt_mass.bench.report import SCHEMA, STAGE_KEYS
from trt_mass.runners.ort import OnnxRuntimeRunner


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
            assert key in ("network", "h2d", "d2h") and stage["stats"] is None and stage["samples_ms"] is None
            assert ("no inference server" if key == "network" else "inside 'inference'") in stage["note"]
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
                           "pipelines", "memory", "ratios", "warnings", "decoders"}
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


def test_decode_stage_per_decoder(report: dict[str, Any]) -> None:
    """The phantoms are lossless JPEG 2000: every decoder reads them, to the same images."""
    section = report["decoders"]
    assert {"pydicom", "openjpeg x1", "openjpeg x2"} <= set(section["decoders"])
    assert "nvimgcodec" in set(section["decoders"]) | set(section["unavailable"])
    assert section["mismatches"] == []
    for label, entry in section["decoders"].items():
        assert entry["stats"]["count"] == RUNS and entry["stats"]["median"] > 0, label
    assert section["decoders"]["pydicom"]["ratio_to_pydicom"] == pytest.approx(1.0)
    assert report["pipelines"]["ours"]["pixel_decoder"] == "openjpeg"
    assert report["pipelines"]["ours"]["decode_threads"] == 2


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
    assert result.exit_code == 4 and "no such model file" in result.output
    result = CliRunner().invoke(bench, ["--model", str(tiny_model.onnx_path), "--synthetic", "1",
                                        "--input", str(tmp_path)])
    assert result.exit_code == 2 and "not both" in result.output


def test_the_baseline_reads_a_uint16_canvas_whatever_ours_takes() -> None:
    from tests.engine_helpers import make_metadata
    from trt_mass.bench.run import _uint16_canvas

    int32 = make_metadata(canvas_dtype="int32")
    plain = _uint16_canvas(int32)
    assert plain.graph_spec.canvas_dtype == "uint16" and [t.dtype for t in plain.inputs] == ["uint16"]
    assert plain.inputs[0].shape == int32.inputs[0].shape and plain.weights_sha256 == int32.weights_sha256
    assert plain.graph_spec.geometry == int32.graph_spec.geometry
