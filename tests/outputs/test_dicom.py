"""DICOM outputs: the three objects read back in the source study, match the JSON, keep their UIDs, validate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.outputs.conftest import GSPS_CLASS, SC_CLASS, records, require, sr_findings
from trt_mass.outputs.cad_sr import MAMMOGRAPHY_CAD_SR


def test_objects_read_back_in_the_source_study(outputs: dict[str, Path]) -> None:
    for record in records(outputs["first"]):
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
    for record in records(outputs["first"]):
        boxes = np.array([[f["x1"], f["y1"], f["x2"], f["y2"]] for f in record["findings"]]).reshape(-1, 4)
        scores = sorted(f["score"] for f in record["findings"])
        sr = pydicom.dcmread(outputs["first"] / record["dicom_outputs"]["sr"])
        in_sr = sr_findings(sr)
        assert np.allclose(sorted(f["score"] for f in in_sr), scores, atol=1e-4)
        for finding in in_sr:
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
        checked += len(in_sr)
    assert checked > 0, "the phantoms give findings to check"


def test_two_runs_give_the_same_uids(outputs: dict[str, Path]) -> None:
    for first, second in zip(records(outputs["first"]), records(outputs["second"]), strict=True):
        for kind in ("sr", "gsps", "sc"):
            a = pydicom.dcmread(outputs["first"] / first["dicom_outputs"][kind], stop_before_pixels=True)
            b = pydicom.dcmread(outputs["second"] / second["dicom_outputs"][kind], stop_before_pixels=True)
            assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)


def test_dciodvfy_reports_no_errors(outputs: dict[str, Path]) -> None:
    dciodvfy = require("dciodvfy", "dicom3tools")
    for path in sorted(outputs["first"].glob("*.dcm")):
        result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"


def test_kinds_of_dicom_output() -> None:
    from trt_mass.errors import ConfigError
    from trt_mass.outputs.dicom import parse_kinds

    assert parse_kinds("sr,GSPS, sc") == ("sr", "gsps", "sc")
    assert parse_kinds("none") == parse_kinds(" None ") == parse_kinds("") == ()
    with pytest.raises(ConfigError, match=r"unknown DICOM output \['pdf'\]"):
        parse_kinds("sr,pdf")
