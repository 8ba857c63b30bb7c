"""The Mammography CAD SR follows TID 4000 (our checker) and DCMTK reads its tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest

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


VIEWS = {"CC": ("399162004", "SCT", "cranio-caudal"), "MLO": ("399368009", "SCT", "medio-lateral oblique")}
SIDE_CODES = {"L": "80248007", "R": "73056007"}


def _source_header(tmp_path: Path, laterality: str, view: str) -> pydicom.Dataset:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from tests.dicom_factory import mg_dataset, stored_ramp, write
    from trt_mass.outputs.dicom import read_source

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = VIEWS[view]
    ds = mg_dataset(stored_ramp(64, 48), ImageLaterality=laterality, ViewPosition=view,
                    ViewCodeSequence=Sequence([code]))
    return read_source(write(ds, tmp_path / f"{laterality}{view}.dcm"))


@pytest.mark.parametrize(("laterality", "view"), [("L", "CC"), ("R", "MLO"), ("R", "CC"), ("L", "MLO")])
def test_image_library_entry_names_the_analysed_breast_and_view(tmp_path: Path, laterality: str, view: str) -> None:
    from trt_mass.geometry import Finding
    from trt_mass.outputs.cad_sr import build_cad_sr
    from trt_mass.outputs.dicom import ModelIdentity

    source = _source_header(tmp_path, laterality, view)
    sr = build_cad_sr(source, [Finding(1.0, 2.0, 30.0, 40.0, 0.5, 1036.0)], ModelIdentity("ab" * 32, "m", "fp32"))
    library = next(item for item in sr.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "111028")
    image = library.ContentSequence[0]
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    context = {item.ConceptNameCodeSequence[0].CodeValue: item for item in image.ContentSequence}
    assert context["111027"].ConceptCodeSequence[0].CodeValue == SIDE_CODES[laterality]  # Image Laterality
    assert context["111031"].ConceptCodeSequence[0].CodeValue == VIEWS[view][0]  # Image View
    assert "Laterality" not in sr, "an SR document series has no laterality"


def _walk(item: pydicom.Dataset) -> list[pydicom.Dataset]:
    found = []
    for child in item.get("ContentSequence", []):
        found += [child, *_walk(child)]
    return found


def _resolve(sr: pydicom.Dataset, identifier: list[int]) -> pydicom.Dataset:
    """The content item a by-reference relationship points at (PS3.3 C.17.3.2.5: 1-based, root first)."""
    assert identifier[0] == 1, identifier
    item = sr
    for position in identifier[1:]:
        item = item.ContentSequence[position - 1]
    return item


@pytest.mark.parametrize(("laterality", "view"), [("L", "MLO"), ("R", "CC")])
def test_every_finding_is_sited_on_the_library_image_of_its_breast(tmp_path: Path, laterality: str,
                                                                   view: str) -> None:
    """A Single Image Finding's site is the image its SCOORDs are selected from: the library entry above."""
    from trt_mass.geometry import Finding
    from trt_mass.outputs.cad_sr import build_cad_sr
    from trt_mass.outputs.dicom import ModelIdentity

    source = _source_header(tmp_path, laterality, view)
    findings = [Finding(1.0, 2.0, 30.0, 40.0, 0.5, 1036.0), Finding(5.0, 6.0, 20.0, 21.0, 0.3, 200.0)]
    sr = build_cad_sr(source, findings, ModelIdentity("ab" * 32, "m", "fp32"))
    scoords = [item for item in _walk(sr) if item.get("ValueType") == "SCOORD"]
    assert len(scoords) >= len(findings)
    for scoord in scoords:
        selected_from = scoord.ContentSequence[0]
        assert selected_from.RelationshipType == "SELECTED FROM"
        image = _resolve(sr, list(selected_from.ReferencedContentItemIdentifier))
        assert image.ValueType == "IMAGE"
        assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        context = {item.ConceptNameCodeSequence[0].CodeValue: item for item in image.ContentSequence}
        assert context["111027"].ConceptCodeSequence[0].CodeValue == SIDE_CODES[laterality]
        assert context["111031"].ConceptCodeSequence[0].CodeValue == VIEWS[view][0]
