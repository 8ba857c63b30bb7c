"""The GSPS and the burned-in Secondary Capture, built directly: marks where the findings are, labels, no marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.dicom_factory import mg_dataset, stored_ramp, write
from trt_mass.geometry import Finding
from trt_mass.outputs.dicom import ModelIdentity, read_source
from trt_mass.outputs.presentation import build_gsps, build_secondary_capture, render_burned_in

MODEL = ModelIdentity("ab" * 32, "resnet18-abababababab-fp32", "fp32")
FINDING = Finding(x1=40.5, y1=60.25, x2=90.75, y2=110.0, score=0.612345, area_px=2512.5)


def _source(tmp_path: Path, laterality: str = "R") -> Path:
    return write(mg_dataset(stored_ramp(200, 160), ImageLaterality=laterality), tmp_path / "source.dcm")


def test_gsps_draws_each_finding_on_its_layer(tmp_path: Path) -> None:
    source = read_source(_source(tmp_path))
    gsps = build_gsps(source, [FINDING], MODEL)
    annotation = gsps.GraphicAnnotationSequence[0]
    assert annotation.GraphicLayer == "TRTMASS_CAD" and gsps.Laterality == "R"
    outline = np.array(annotation.GraphicObjectSequence[0].GraphicData, float).reshape(-1, 2)
    assert outline.tolist() == [[40.5, 60.25], [90.75, 60.25], [90.75, 110.0], [40.5, 110.0], [40.5, 60.25]]
    assert annotation.TextObjectSequence[0].UnformattedTextValue == "mass 0.61"
    empty = build_gsps(source, [], MODEL)
    assert "GraphicAnnotationSequence" not in empty, "no findings: a presentation state without marks"


def test_burned_in_copy_is_labelled_and_marked(tmp_path: Path) -> None:
    pixels = np.zeros((200, 160), np.uint16)
    rgb = render_burned_in(pixels, [FINDING])
    assert rgb.shape == (200, 160, 3) and rgb.dtype == np.uint8
    banner = rgb[:16].astype(int)
    assert (banner[..., 0] > 128).any() and (banner[..., 0] >= banner[..., 1]).all(), "the red warning banner"
    assert rgb[80, 41].tolist() == [255, 200, 0], "the left edge of the box, at original scale"
    source_path = _source(tmp_path, "L")
    sc = build_secondary_capture(read_source(source_path), pixels, [FINDING], MODEL)
    assert sc.BurnedInAnnotation == "YES" and list(sc.ImageType) == ["DERIVED", "SECONDARY"]
    assert sc.Laterality == "L" and "NOT FOR DIAGNOSIS" in sc.ImageComments
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == pydicom.dcmread(source_path).SOPInstanceUID


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_both_objects_carry_the_source_breast(tmp_path: Path, laterality: str) -> None:
    source = read_source(_source(tmp_path, laterality))
    pixels = np.zeros((200, 160), np.uint16)
    assert build_gsps(source, [FINDING], MODEL).Laterality == laterality
    assert build_secondary_capture(source, pixels, [FINDING], MODEL).Laterality == laterality


@pytest.mark.parametrize("uid", ["1.2.840.ABC.1", "1." + "2" * 64, "../../etc/x", "1..2", "1.2."])
def test_a_source_uid_that_is_no_uid_refuses_the_outputs(tmp_path: Path, uid: str) -> None:
    """The outputs referenced it anyway: PACS and dciodvfy reject such references."""
    from trt_mass.errors import InputError

    path = write(mg_dataset(stored_ramp(20, 16), SeriesInstanceUID=uid), tmp_path / "bad-uid.dcm")
    with pytest.raises(InputError, match=r"bad-uid.dcm.*SeriesInstanceUID .* is not a UID"):
        read_source(path)
    leading_zero = write(mg_dataset(stored_ramp(20, 16), SeriesInstanceUID="1.2.840.0113619.01"),
                         tmp_path / "old-unit.dcm")
    assert read_source(leading_zero).SeriesInstanceUID == "1.2.840.0113619.01", "tolerated: old units write them"
