"""The bundled demo model: present, small, documented, and the default of detect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trt_mass.bundled import BUNDLED_MODEL, MODEL_CARD
from trt_mass.datasets.synth import write_phantoms
from trt_mass.metadata import read_onnx_metadata


def test_bundled_model_is_small_and_documented() -> None:
    assert BUNDLED_MODEL.stat().st_size <= 60 * 2**20
    metadata = read_onnx_metadata(BUNDLED_MODEL)
    assert metadata.kind == "engine_graph" and metadata.init.startswith("checkpoint:")
    card = MODEL_CARD.read_text()
    assert "NOT FOR CLINICAL USE" in card and metadata.weights_sha256[:12] in card and "ImageNet" in card
    points = metadata.operating_points
    assert points is not None and points.source == "eval", "measured, not assumed"
    assert points.images == 38 and "(fold 1 of 5)" in points.data, "on the validation fold (MIAS fold 1), not on test"
    assert f"{points.scores['1']:.3f}" in card, "the model card states the 1-FPPI point the model carries"


def test_detect_defaults_to_the_bundled_model(tmp_path: Path) -> None:
    write_phantoms(tmp_path / "in", 1, seed=4, scale=0.08, normal_fraction=0.0)
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "detect", str(tmp_path / "in"), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    (result,) = tmp_path.joinpath("out").glob("*.json")
    record = json.loads(result.read_text())
    assert record["model"]["weights_sha256"] == read_onnx_metadata(BUNDLED_MODEL).weights_sha256
    assert record["operating_point"]["name"] == "1fppi" and "warning" not in run.stderr
