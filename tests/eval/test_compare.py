"""`trtmass compare`: output agreement, FROC delta and the TPR gate, on real models and phantoms."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TinyModel
from trt_mass.bundled import default_model
from trt_mass.datasets.synth import write_phantoms
from trt_mass.errors import ConfigError
from trt_mass.eval.compare import CompareConfig, match_findings


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compare-phantoms")
    write_phantoms(folder, 6, seed=31, scale=0.25, normal_fraction=0.2)
    return folder


def _compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_mass.cli", "compare", *args], capture_output=True, text=True)


def test_a_model_agrees_with_a_copy_of_itself(phantoms: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.onnx"
    shutil.copyfile(default_model(), copy)
    run = _compare(str(default_model()), str(copy), "--data", str(phantoms), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    agreement = report["agreement"]
    assert agreement["findings_a"] > 0 and agreement["only_a"] == agreement["only_b"] == 0
    assert agreement["dice"] == 1.0 and agreement["images_with_the_same_findings"] == 6
    assert agreement["score_abs_diff"]["max"] == 0.0 and agreement["box_corner_max_abs_diff_px"]["max"] == 0.0
    assert report["same_weights"] and report["gate"]["passed"] and report["gate"]["drop"] == 0.0
    assert report["accuracy"]["lesions"] > 0
    assert "passed" in run.stdout


def test_a_worse_model_fails_the_gate_with_exit_6(phantoms: Path, tiny_model: TinyModel, tmp_path: Path) -> None:
    """The trained demo model against random weights of the same geometry: sensitivity collapses."""
    run = _compare(str(default_model()), str(tiny_model.onnx_path), "--data", str(phantoms),
                   "--out", str(tmp_path / "out"))
    assert run.returncode == 6, run.stderr
    assert "loses" in run.stderr and "TPR at 1 FPPI" in run.stderr
    report = json.loads((tmp_path / "out" / "compare.json").read_text())  # written before the gate fails
    assert not report["gate"]["passed"] and report["gate"]["drop"] > 0.02
    assert not report["same_weights"]


def test_refusals(phantoms: Path, tmp_path: Path) -> None:
    run = _compare(str(default_model()), str(default_model()), "--data", str(phantoms))
    assert run.returncode == 2 and "same file" in run.stderr
    with pytest.raises(ConfigError, match="max-tpr-drop"):
        CompareConfig(default_model(), tmp_path / "b.onnx", str(phantoms), max_tpr_drop=-0.1)


def test_data_without_masses_cannot_judge(tmp_path: Path) -> None:
    normals = tmp_path / "normals"
    write_phantoms(normals, 2, seed=3, scale=0.1, normal_fraction=1.0)
    copy = tmp_path / "copy.onnx"
    shutil.copyfile(default_model(), copy)
    run = _compare(str(default_model()), str(copy), "--data", str(normals))
    assert run.returncode == 2 and "no masses" in run.stderr


def test_other_geometry_is_refused(phantoms: Path, tiny_model_other_shape: TinyModel) -> None:
    run = _compare(str(default_model()), str(tiny_model_other_shape.onnx_path), "--data", str(phantoms))
    assert run.returncode == 2 and "different tile geometries" in run.stderr


def test_matching_is_one_to_one_and_order_free() -> None:
    boxes_a = np.array([[0, 0, 10, 10], [100, 100, 150, 150], [0, 0, 11, 11]], dtype=np.float64)
    scores_a = np.array([0.9, 0.5, 0.3])
    boxes_b = boxes_a[[2, 1]] + 0.5  # one finding of A is missing; B's order differs
    pairs = match_findings(boxes_a, scores_a, boxes_b, match_iou=0.5)
    assert {(a, b) for a, b, _ in pairs} == {(0, 0), (1, 1)}  # A's best takes the closest; no B used twice
    assert match_findings(boxes_a, scores_a, boxes_b[:0], 0.5) == []
