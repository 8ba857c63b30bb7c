"""The CLI as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import TinyModel

CLI = [sys.executable, "-m", "trt_mass.cli"]


def test_help_imports_neither_torch_nor_tensorrt() -> None:
    code = ("import sys; from click.testing import CliRunner; import trt_mass.cli as c; "
            "r = CliRunner().invoke(c.main, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'tensorrt', 'onnx', 'onnxruntime') if m in sys.modules]; "
            "assert not heavy, heavy; print(r.output)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "export" in out and "detect" in out


def test_detect_runtime_path_never_imports_torch(tiny_model: TinyModel, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 400), dtype=np.uint8)).save(image)
    code = ("import sys, runpy; sys.argv = ['trtmass', 'detect', sys.argv[1], '--model', sys.argv[2], "
            "'--out', sys.argv[3]]\n"
            "try:\n    runpy.run_module('trt_mass.cli', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code, str(image), str(tiny_model.onnx_path), str(tmp_path / "out")],
                   check=True)


def test_detect_writes_json_and_keeps_going_after_a_bad_file(tiny_model: TinyModel, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(rng.integers(0, 65535, (900, 700), dtype=np.uint16)).save(inputs / "sixteen.png")
    Image.fromarray(rng.integers(0, 255, (500, 800), dtype=np.uint8)).save(inputs / "eight.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    result = subprocess.run([*CLI, "detect", str(inputs), "--model", str(tiny_model.onnx_path), "--out", str(out),
                             "--pixel-spacing", "0.1"], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert "3 file(s)" in result.stdout and "1 refused" in result.stdout
    for name, hw in (("sixteen", [900, 700]), ("eight", [500, 800])):
        record = json.loads((out / f"{name}.json").read_text())
        assert record["image"]["image_hw"] == hw and record["image"]["pixel_spacing_mm"] == [0.1, 0.1]
        assert record["model"]["backend"] == "ort" and record["model"]["precision"] == "fp32"
        for finding in record["findings"]:
            assert 0 <= finding["x1"] <= finding["x2"] <= hw[1] and 0 <= finding["y1"] <= finding["y2"] <= hw[0]
            assert finding["area_mm2"] >= 24.5
    assert not list(out.glob(".*.tmp"))


def test_detect_takes_dicom_out_none_and_checks_the_operating_point_first(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trt_mass.cli import main
    from trt_mass.datasets.synth import write_phantoms

    write_phantoms(tmp_path / "in", 1, seed=2, scale=0.05, normal_fraction=0.0)
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                       "--dicom-out", "none", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert [p.suffix for p in (tmp_path / "out").iterdir()] == [".json"], "no DICOM objects with none"
    refused = CliRunner().invoke(main, ["detect", str(tmp_path / "in"), "--out", str(tmp_path / "out2"),
                                        "--operating-point", "high"])
    assert refused.exit_code == 2 and "--operating-point high" in refused.stderr
    assert "backend:" not in refused.stderr, "refused before any model is loaded"
