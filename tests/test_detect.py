"""synth -> detect end to end on the CLI: JSON and PNG outputs, original-pixel coordinates, no PHI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TinyModel
from tests.dicom_factory import ACCESSION, BIRTH_DATE, PATIENT_ID, PATIENT_NAME, mg_dataset, stored_ramp, write
from trt_mass.datasets.synth import FAKE_PATIENT_ID, FAKE_PATIENT_NAME
from trt_mass.geometry import CanvasBuilder
from trt_mass.inputs.dicom import load_mammogram
from trt_mass.runners.ort import OnnxRuntimeRunner

CLI = [sys.executable, "-m", "trt_mass.cli"]
PHI = [FAKE_PATIENT_NAME, FAKE_PATIENT_ID, "SYNTHACC0001", "19600101", PATIENT_NAME, PATIENT_ID, ACCESSION,
       BIRTH_DATE, "Phantom", "Doe"]


@pytest.fixture(scope="module")
def detected(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("e2e")
    images = root / "images"
    subprocess.run([*CLI, "synth", str(images), "--count", "5", "--seed", "4", "--scale", "0.1"], check=True)
    # A refused file in the same folder: a CT image with the test patient's identity.
    write(mg_dataset(stored_ramp(), Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2"), images / "ct.dcm")
    out = root / "results"
    run = subprocess.run([*CLI, "detect", str(images), "--model", str(tiny_model.onnx_path), "--out", str(out),
                          "--overlay", "--truth", str(images / "truth.csv"), "-v"], capture_output=True, text=True)
    return {"images": images, "out": out, "run": run}


def test_detect_processes_all_and_reports_the_refusal(detected: dict) -> None:
    run = detected["run"]
    assert run.returncode == 3, run.stderr
    assert "ct.dcm" in run.stderr and "not a mammogram" in run.stderr and "Traceback" not in run.stderr
    assert "summary: 6 file(s)" in run.stdout and "1 refused" in run.stdout
    results = sorted(detected["out"].glob("*.json"))
    assert len(results) == 5
    for path in results:
        record = json.loads(path.read_text())
        assert path.stem == record["image"]["sop_instance_uid"]
        assert record["image"]["laterality"] in ("L", "R") and record["image"]["view"] in ("CC", "MLO")
        assert record["model"]["backend"] == "ort" and record["model"]["precision"] == "fp32"
        assert {"read_decode_ms", "canvas_ms", "infer_ms", "postprocess_ms", "write_ms"} <= set(record["timings_ms"])
        overlay = Image.open(path.with_name(f"{path.stem}.overlay.png"))
        assert overlay.mode == "RGB" and max(overlay.size) <= 1024
    assert not list(detected["out"].glob(".*.tmp"))


def test_findings_are_in_original_pixels(detected: dict, tiny_model: TinyModel) -> None:
    """Recompute the canvas boxes independently and map them with the letterbox scale."""
    checked = 0
    for path in sorted(detected["images"].glob("synth_*.dcm")):
        mammogram = load_mammogram(path)
        record = json.loads((detected["out"] / f"{mammogram.sop_instance_uid}.json").read_text())
        height, width = mammogram.pixels.shape
        assert record["image"]["image_hw"] == [height, width]
        builder = CanvasBuilder(tiny_model.graph_spec.geometry)
        letterbox = builder.fill(mammogram.pixels)
        with OnnxRuntimeRunner(tiny_model.onnx_path) as runner:
            raw = runner.infer({"canvas": builder.canvas})
        canvas_h, canvas_w = tiny_model.graph_spec.geometry.canvas_hw
        scale = min(canvas_h / height, canvas_w / width)  # the known transform: aspect-kept letterbox
        boxes = raw["boxes"][raw["scores"] > 0].astype(np.float64) / scale
        boxes = np.clip(boxes, 0, [width, height, width, height])
        for finding in record["findings"]:
            corners = np.array([finding["x1"], finding["y1"], finding["x2"], finding["y2"]])
            # Within a pixel: the letterbox rounds the resized size to whole canvas pixels.
            assert np.abs(boxes - corners).max(axis=1).min() < 1.0
            area_mm2 = (corners[2] - corners[0]) * (corners[3] - corners[1]) * np.prod(mammogram.pixel_spacing_mm)
            assert finding["area_mm2"] == pytest.approx(area_mm2, rel=1e-2, abs=0.05)
            checked += 1
        assert letterbox.original_hw == (height, width)
    assert checked > 0, "the structured random model finds something on phantoms"


def test_no_phi_in_anything_detect_prints_or_writes(detected: dict) -> None:
    run = detected["run"]
    blobs = [run.stdout, run.stderr] + [p.read_bytes().decode("latin-1") for p in detected["out"].iterdir()]
    for text in blobs:
        for value in PHI:
            assert value not in text, f"{value!r} leaked"


@pytest.mark.parametrize("spacing", [0.0, -0.1, float("nan"), float("inf")])
def test_a_pixel_spacing_that_would_empty_every_result_is_refused(spacing: float, tmp_path: Path) -> None:
    from trt_mass.detect import DetectConfig
    from trt_mass.errors import ConfigError

    with pytest.raises(ConfigError, match="--pixel-spacing must be a pixel spacing in mm above 0"):
        DetectConfig(model=tmp_path / "m.onnx", out_dir=tmp_path, pixel_spacing_mm=spacing)
    run = subprocess.run([sys.executable, "-m", "trt_mass.cli", "detect", str(tmp_path), "--pixel-spacing",
                          str(spacing)], capture_output=True, text=True)
    assert run.returncode == 2 and "--pixel-spacing" in run.stderr and "Traceback" not in run.stderr
