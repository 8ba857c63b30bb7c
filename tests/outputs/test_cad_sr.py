"""The Mammography CAD SR follows TID 4000 (our checker) and DCMTK reads its tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom

from tests.outputs.conftest import records, require
from tests.outputs.tid4000 import check_cad_sr_template


def test_sr_follows_tid_4000(outputs: dict[str, Path]) -> None:
    for record in records(outputs["first"]):
        sr = pydicom.dcmread(outputs["first"] / record["dicom_outputs"]["sr"])
        assert check_cad_sr_template(sr) == [], check_cad_sr_template(sr)
    broken = pydicom.dcmread(outputs["first"] / records(outputs["first"])[0]["dicom_outputs"]["sr"])
    del broken.ContentSequence[0]  # the language modifier
    assert check_cad_sr_template(broken), "the checker notices a missing required item"


def test_dsrdump_reads_the_sr(outputs: dict[str, Path]) -> None:
    dsrdump = require("dsrdump", "dcmtk")
    for path in sorted(outputs["first"].glob("*.sr.dcm")):
        result = subprocess.run([dsrdump, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Mammography CAD Report" in result.stdout and "Single Image Finding" in result.stdout
        assert "E:" not in result.stderr
