"""Phantoms run through `trtmass detect --dicom-out sr,gsps,sc` twice, shared by the DICOM output tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tests.conftest import TinyModel

CLI = [sys.executable, "-m", "trt_mass.cli"]
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture(scope="package")
def outputs(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dicom_out")
    images = root / "images"
    subprocess.run([*CLI, "synth", str(images), "--count", "3", "--seed", "6", "--scale", "0.1",
                    "--normal-fraction", "0"], check=True)
    for run in ("first", "second"):
        subprocess.run([*CLI, "detect", str(images), "--model", str(tiny_model.onnx_path), "--out",
                        str(root / run), "--dicom-out", "sr,gsps,sc"], check=True, capture_output=True)
    return {"images": images, "first": root / "first", "second": root / "second"}


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def sr_findings(sr: pydicom.Dataset) -> list[dict]:
    """(score, centre, outline) of every single image finding in the SR tree."""
    found = []

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else None
            if name == "111059":  # Single Image Finding
                children = {c.ConceptNameCodeSequence[0].CodeValue: c for c in item.ContentSequence
                            if "ConceptNameCodeSequence" in c}
                found.append({
                    "score": float(children["111012"].MeasuredValueSequence[0].NumericValue) / 100,  # percent
                    "centre": [float(v) for v in children["111010"].GraphicData],
                    "outline": [float(v) for v in children["111041"].GraphicData],
                })
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return found


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package {package}): the objects were NOT validated by it")
    return path
