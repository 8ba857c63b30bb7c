"""`trtmass eval` on a tiny set writes every output; --compare puts two models on one report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import TinyModel
from trt_mass.datasets.synth import write_phantoms


def test_eval_writes_every_output(tiny_model: TinyModel, tiny_model_other_shape: TinyModel, tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_phantoms(data, 6, seed=12, scale=0.05, normal_fraction=0.34)
    out = tmp_path / "eval"
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "eval", "--model", str(tiny_model.onnx_path),
                          "--compare", str(tiny_model_other_shape.onnx_path), "--data", str(data), "--out", str(out),
                          "--bootstrap", "20"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "eval.json").read_text())
    assert len(report["models"]) == 2
    for summary in report["models"].values():
        assert summary["images"] == 6 and summary["lesions"] > 0 and summary["normal_images"] > 0
        assert set(summary["tpr_at_fppi"]) == {"0.1", "0.3", "0.5", "1.0", "1.3", "2.0", "3.0"}
        assert all(v["ci95"] is not None and v["ci95"][0] <= v["ci95"][1] for v in summary["tpr_at_fppi"].values())
        assert len(summary["tpr_at_1fppi_vs_min_iou"]) == 7 and summary["fp_per_normal_image_vs_threshold"]
    for name in ("froc.csv", "tpr_at_fppi.csv"):
        assert len((out / name).read_text().splitlines()) > 2
    for summary in report["models"].values():  # the masses it finds at 1 FPPI are the ones TPR counts
        outcomes = summary["lesion_outcomes"]
        assert len(outcomes) == summary["lesions"]
        found = sum(o["found"] for o in outcomes)
        assert found == round(summary["tpr_at_fppi"]["1.0"]["tpr"] * summary["lesions"])
    with (out / "lesions.csv").open() as table:
        assert len(list(csv.DictReader(table))) == sum(s["lesions"] for s in report["models"].values())
    for name in ("froc.png", "tpr_vs_iou.png", "fp_normals.png"):
        with Image.open(out / name) as picture:
            assert picture.size[0] > 300
    assert "TPR at FPPI" in run.stdout


def test_operating_points_measured_by_eval_are_what_detect_shows(tiny_model: TinyModel, tmp_path: Path) -> None:
    import pydicom

    from trt_mass.eval.froc import FrocCurve
    from trt_mass.metadata import read_onnx_metadata

    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_model.onnx_path.read_bytes())
    data = tmp_path / "data"
    write_phantoms(data, 6, seed=13, scale=0.05, normal_fraction=0.2)
    cli = [sys.executable, "-m", "trt_mass.cli"]
    run = subprocess.run([*cli, "eval", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "eval"),
                          "--bootstrap", "0", "--write-operating-points"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"operating points written into {model}" in run.stdout
    before, after = read_onnx_metadata(tiny_model.onnx_path), read_onnx_metadata(model)
    points = after.operating_points
    assert points is not None and points.source == "eval" and points.images == 6 and points.lesions > 0
    assert after.weights_sha256 == before.weights_sha256 and after.graph_spec == before.graph_spec
    scores = [points.scores[k] for k in ("0.25", "0.5", "1", "2")]
    assert scores == sorted(scores, reverse=True), "a larger false-positive budget never raises the threshold"
    summary = next(iter(json.loads((tmp_path / "eval" / "eval.json").read_text())["models"].values()))
    froc = summary["froc"]
    curve = FrocCurve(*(np.array(froc[k]) for k in ("threshold", "fppi", "tpr")), summary["images"], summary["lesions"])
    assert points.scores["1"] == curve.threshold_at(1.0) and points.tpr["1"] == summary["tpr_at_fppi"]["1.0"]["tpr"]

    out = tmp_path / "detect"
    run = subprocess.run([*cli, "detect", str(data), "--model", str(model), "--out", str(out), "--overlay",
                          "--dicom-out", "gsps"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"operating point: 1fppi (score >= {points.scores['1']:.3f}" in run.stderr and "warning" not in run.stderr
    shown_total = 0
    for path in sorted(out.glob("*.json")):
        record = json.loads(path.read_text())
        assert record["operating_point"]["name"] == "1fppi" and record["operating_point"]["score"] == points.scores["1"]
        for finding in record["findings"]:  # every candidate is listed; `shown` says which are drawn
            # JSON scores have 5 decimals: within 1e-5 of the threshold the rounded score cannot tell the side.
            if abs(finding["score"] - points.scores["1"]) > 1e-5:
                assert finding["shown"] == (finding["score"] > points.scores["1"])
        shown = [f for f in record["findings"] if f["shown"]]
        shown_total += len(shown)
        gsps = pydicom.dcmread(out / record["dicom_outputs"]["gsps"])
        drawn = [o for a in gsps.get("GraphicAnnotationSequence", []) for o in a.GraphicObjectSequence]
        assert len(drawn) == len(shown)
    assert 0 < shown_total < sum(len(json.loads(p.read_text())["findings"]) for p in out.glob("*.json"))

    plain = subprocess.run([*cli, "detect", str(data), "--model", str(tiny_model.onnx_path), "--out",
                            str(tmp_path / "plain")], capture_output=True, text=True)
    assert plain.returncode == 0 and "carries no operating points" in plain.stderr


def test_a_refused_image_is_named_and_fails_the_run(tiny_model: TinyModel, tmp_path: Path) -> None:
    """A labelled image that cannot be read used to leave the lesion total without a word on the console."""
    data = tmp_path / "data"
    paths = write_phantoms(data, 3, seed=12, scale=0.05, normal_fraction=0.0)
    cut = paths[1].read_bytes()
    paths[1].write_bytes(cut[: len(cut) // 2])
    out = tmp_path / "eval"
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_model.onnx_path.read_bytes())
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "eval", "--model", str(model), "--data", str(data),
                          "--out", str(out), "--bootstrap", "0", "--write-operating-points"],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    assert model.read_bytes() == tiny_model.onnx_path.read_bytes(), "no points measured on part of the set"
    assert "operating points not written" in run.stderr
    assert f"refused {paths[1]}" in run.stderr and "1 image(s) refused and left out" in run.stderr
    report = json.loads((out / "eval.json").read_text())
    assert next(iter(report["models"].values()))["images"] == 2, "the figures are still written, for the rest"


def test_truth_outside_its_image_is_refused_not_counted_as_a_miss(tiny_model: TinyModel, tmp_path: Path) -> None:
    data = tmp_path / "data"
    paths = write_phantoms(data, 2, seed=12, scale=0.05, normal_fraction=0.0)
    truth = data / "truth.csv"
    rows = truth.read_text().splitlines()
    rows.append(f"{paths[0].name},,5000,5000,5100,5100")  # far beyond the phantom's pixels
    truth.write_text("\n".join(rows) + "\n")
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "eval", "--model", str(tiny_model.onnx_path),
                          "--data", str(data), "--out", str(tmp_path / "eval"), "--bootstrap", "0"],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    assert f"refused {paths[0]}: its truth box (5000, 5000, 5100, 5100)" in run.stderr
    assert "mostly outside" in run.stderr


def test_eval_on_normals_only_reports_tpr_as_undefined_not_zero(tiny_model: TinyModel, tmp_path: Path) -> None:
    data = tmp_path / "normals"
    write_phantoms(data, 2, seed=3, scale=0.05, normal_fraction=1.0)
    out = tmp_path / "eval"
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "eval", "--model", str(tiny_model.onnx_path),
                          "--data", str(data), "--out", str(out), "--bootstrap", "5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "TPR at FPPI undefined (no lesions)" in run.stdout
    summary = next(iter(json.loads((out / "eval.json").read_text())["models"].values()))
    assert summary["lesions"] == 0 and summary["normal_images"] == 2
    assert {v["tpr"] for v in summary["tpr_at_fppi"].values()} == {None}
    assert set(summary["tpr_at_1fppi_vs_min_iou"].values()) == {None}
    with (out / "tpr_at_fppi.csv").open() as table:
        assert {row["tpr"] for row in csv.DictReader(table)} == {""}
    assert (out / "fp_normals.png").is_file() and not (out / "tpr_vs_iou.png").exists()
