"""DICOM outputs: Mammography CAD SR, GSPS and burned-in SC read back, match the JSON, validate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.conftest import TinyModel
from tests.outputs.tid4000 import check_cad_sr_template
from trt_mass.outputs.cad_sr import MAMMOGRAPHY_CAD_SR

CLI = [sys.executable, "-m", "trt_mass.cli"]
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture(scope="module")
def outputs(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dicom_out")
    images = root / "images"
    subprocess.run([*CLI, "synth", str(images), "--count", "3", "--seed", "6", "--scale", "0.1",
                    "--normal-fraction", "0"], check=True)
    for run in ("first", "second"):
        subprocess.run([*CLI, "detect", str(images), "--model", str(tiny_model.onnx_path), "--out",
                        str(root / run), "--dicom-out", "sr,gsps,sc"], check=True, capture_output=True)
    return {"images": images, "first": root / "first", "second": root / "second"}


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _sr_findings(sr: pydicom.Dataset) -> list[dict]:
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


def test_objects_read_back_in_the_source_study(outputs: dict[str, Path]) -> None:
    for record in _records(outputs["first"]):
        source = pydicom.dcmread(outputs["images"] / record["image"]["source"])
        names = record["dicom_outputs"]
        assert set(names) == {"sr", "gsps", "sc"}
        classes = {"sr": MAMMOGRAPHY_CAD_SR, "gsps": GSPS_CLASS, "sc": SC_CLASS}
        for kind, name in names.items():
            ds = pydicom.dcmread(outputs["first"] / name)
            assert ds.SOPClassUID == classes[kind]
            assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
            assert ds.SeriesInstanceUID != source.SeriesInstanceUID and "trt_mass" in ds.SeriesDescription
            assert ds.Manufacturer == "trt_mass"
        sc = pydicom.dcmread(outputs["first"] / names["sc"])
        assert sc.BurnedInAnnotation == "YES" and "DERIVED" in sc.ImageType
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        gsps = pydicom.dcmread(outputs["first"] / names["gsps"])
        referenced = gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
        assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_marks_match_the_json_findings(outputs: dict[str, Path]) -> None:
    checked = 0
    for record in _records(outputs["first"]):
        boxes = np.array([[f["x1"], f["y1"], f["x2"], f["y2"]] for f in record["findings"]]).reshape(-1, 4)
        scores = sorted(f["score"] for f in record["findings"])
        sr = pydicom.dcmread(outputs["first"] / record["dicom_outputs"]["sr"])
        sr_findings = _sr_findings(sr)
        assert np.allclose(sorted(f["score"] for f in sr_findings), scores, atol=1e-4)
        for finding in sr_findings:
            xs, ys = finding["outline"][0::2], finding["outline"][1::2]
            box = np.array([min(xs), min(ys), max(xs), max(ys)])
            assert np.abs(boxes - box).max(axis=1).min() < 0.02
            centre = np.array(finding["centre"])
            assert np.allclose(centre, [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], atol=0.02)
        gsps = pydicom.dcmread(outputs["first"] / record["dicom_outputs"]["gsps"])
        polylines = [np.array(o.GraphicData, float).reshape(-1, 2) for a in gsps.get("GraphicAnnotationSequence", [])
                     for o in a.GraphicObjectSequence]
        assert len(polylines) == len(record["findings"])
        for points in polylines:
            box = np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])
            assert np.abs(boxes - box).max(axis=1).min() < 0.02
        checked += len(sr_findings)
    assert checked > 0, "the phantoms give findings to check"


def test_sr_follows_tid_4000(outputs: dict[str, Path]) -> None:
    for record in _records(outputs["first"]):
        sr = pydicom.dcmread(outputs["first"] / record["dicom_outputs"]["sr"])
        assert check_cad_sr_template(sr) == [], check_cad_sr_template(sr)
    broken = pydicom.dcmread(outputs["first"] / _records(outputs["first"])[0]["dicom_outputs"]["sr"])
    del broken.ContentSequence[0]  # the language modifier
    assert check_cad_sr_template(broken), "the checker notices a missing required item"


def test_two_runs_give_the_same_uids(outputs: dict[str, Path]) -> None:
    for first, second in zip(_records(outputs["first"]), _records(outputs["second"]), strict=True):
        for kind in ("sr", "gsps", "sc"):
            a = pydicom.dcmread(outputs["first"] / first["dicom_outputs"][kind], stop_before_pixels=True)
            b = pydicom.dcmread(outputs["second"] / second["dicom_outputs"][kind], stop_before_pixels=True)
            assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package {package}): the objects were NOT validated by it")
    return path


def test_dciodvfy_reports_no_errors(outputs: dict[str, Path]) -> None:
    dciodvfy = _require("dciodvfy", "dicom3tools")
    for path in sorted(outputs["first"].glob("*.dcm")):
        result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"


def test_dsrdump_reads_the_sr(outputs: dict[str, Path]) -> None:
    dsrdump = _require("dsrdump", "dcmtk")
    for path in sorted(outputs["first"].glob("*.sr.dcm")):
        result = subprocess.run([dsrdump, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Mammography CAD Report" in result.stdout and "Single Image Finding" in result.stdout
        assert "E:" not in result.stderr
