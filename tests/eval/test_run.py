"""`trtmass eval` on a tiny set writes every output; --compare puts two models on one report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    for name in ("froc.png", "tpr_vs_iou.png", "fp_normals.png"):
        with Image.open(out / name) as picture:
            assert picture.size[0] > 300
    assert "TPR at FPPI" in run.stdout
