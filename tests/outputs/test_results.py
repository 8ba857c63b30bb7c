"""The one output step: a DetectionResult becomes JSON + overlay + DICOM objects, the JSON last, unrounded marks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.conftest import TinyModel
from trt_mass.datasets.synth import write_phantoms
from trt_mass.errors import InputError
from trt_mass.inputs.files import read_image
from trt_mass.outputs.operating_point import SHOW_ALL, OperatingPoint
from trt_mass.outputs.results import (
    COORDINATES,
    OutputOptions,
    ResultWriter,
    StemAllocator,
    result_stem,
)
from trt_mass.pipeline import Detector


@pytest.fixture(scope="module")
def detector(tiny_model: TinyModel) -> Iterator[Detector]:
    with Detector(tiny_model.onnx_path, threads=2) as opened:
        yield opened


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("phantom")
    return write_phantoms(folder, 1, seed=11, scale=0.1, normal_fraction=0.0)[0]


def _writer(detector: Detector, folder: Path, **options: object) -> ResultWriter:
    folder.mkdir(parents=True, exist_ok=True)
    return ResultWriter(folder, detector.metadata, detector.backend, OutputOptions(**options))  # type: ignore[arg-type]


def test_a_dicom_result_is_written_whole_with_the_json_last(detector: Detector, phantom: Path,
                                                           tmp_path: Path) -> None:
    mammogram = read_image(phantom)
    result = detector.detect_mammogram(mammogram)
    assert result.findings, "the tiny model's structured random weights give findings"
    writer = _writer(detector, tmp_path, overlay=True, dicom_kinds=("sr", "gsps", "sc"))
    written = writer.write(phantom, mammogram, result, result_stem(mammogram, phantom),
                           {"read_decode_ms": 1.234567, **result.timings_ms})
    uid = mammogram.sop_instance_uid
    assert written.json_path == tmp_path / f"{uid}.json" and written.findings == len(result.findings)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{uid}.json", f"{uid}.overlay.png", f"{uid}.sr.dcm", f"{uid}.gsps.dcm",
                            f"{uid}.sc.dcm"])
    json_time = written.json_path.stat().st_mtime_ns
    assert all((tmp_path / name).stat().st_mtime_ns <= json_time for name in names), "the JSON comes last"
    record = json.loads(written.json_path.read_text())
    assert record == written.record
    assert list(record) == ["image", "coordinates", "operating_point", "findings", "model", "views", "timings_ms",
                            "dicom_outputs"]
    assert record["views"] == {"run": list(range(26)), "of": 26, "selection": "all"}
    assert record["coordinates"] == COORDINATES
    assert record["operating_point"] == {"name": "all", "score": None, "origin": SHOW_ALL.origin}
    assert record["findings"] == [{**f.to_dict(), "shown": True} for f in result.findings]
    assert record["image"]["pixel_spacing_mm"] == list(mammogram.pixel_spacing_mm or ())
    assert record["image"]["sop_instance_uid"] == uid
    assert record["model"] == {"model_id": detector.metadata.model_id, "init": detector.metadata.init,
                               "weights_sha256": detector.metadata.weights_sha256, "precision": "fp32",
                               "backend": "ort"}
    assert list(record["timings_ms"]) == ["read_decode_ms", "canvas_ms", "select_ms", "infer_ms", "postprocess_ms",
                                          "write_ms"]
    assert record["timings_ms"]["read_decode_ms"] == 1.23 and record["timings_ms"]["write_ms"] > 0
    assert record["dicom_outputs"] == {"sr": f"{uid}.sr.dcm", "gsps": f"{uid}.gsps.dcm", "sc": f"{uid}.sc.dcm"}


def test_the_marks_come_from_the_findings_not_from_the_rounded_json(detector: Detector, phantom: Path,
                                                                    tmp_path: Path) -> None:
    mammogram = read_image(phantom)
    result = detector.detect_mammogram(mammogram)
    writer = _writer(detector, tmp_path, dicom_kinds=("gsps",))
    writer.write(phantom, mammogram, result, "x", {})
    gsps = pydicom.dcmread(tmp_path / "x.gsps.dcm")  # named as the result
    drawn = [obj.GraphicData for obj in gsps.GraphicAnnotationSequence[0].GraphicObjectSequence]
    x1s = np.array([float(data[0]) for data in drawn])
    exact = np.array([f.x1 for f in result.findings])
    rounded = np.array([round(f.x1, 2) for f in result.findings])
    assert np.abs(exact - rounded).max() > 1e-3, "the test needs a coordinate that rounding changes"
    assert np.abs(x1s - exact).max() < 1e-4  # GraphicData is float32: exact to ~3e-5 at these sizes


def test_a_raster_result_names_and_spacing(detector: Detector, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "in" / "scan.png"
    path.parent.mkdir()
    Image.fromarray(rng.integers(0, 65535, size=(600, 420), dtype=np.uint16)).save(path)
    mammogram = read_image(path)
    result = detector.detect_mammogram(mammogram, default_spacing_mm=0.2)
    assert result.pixel_spacing_mm == (0.2, 0.2)
    writer = _writer(detector, tmp_path / "out", dicom_kinds=("sr",))
    written = writer.write(path, mammogram, result, result_stem(mammogram, path), {})
    assert written.json_path.name == "scan.json"
    assert written.record["dicom_outputs"] is None, "a raster has nothing for DICOM objects to reference"
    assert written.record["image"]["pixel_spacing_mm"] == [0.2, 0.2]
    assert all(f["area_mm2"] is not None for f in written.record["findings"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scan.json"]


def test_no_json_when_the_dicom_objects_cannot_be_made(detector: Detector, phantom: Path, tmp_path: Path) -> None:
    mammogram = read_image(phantom)
    result = detector.detect_mammogram(mammogram)
    gone = tmp_path / "gone.dcm"  # the source header is read again for the objects: it has vanished
    writer = _writer(detector, tmp_path / "out", dicom_kinds=("sr",))
    with pytest.raises(InputError, match="cannot read the source header"):
        writer.write(gone, mammogram, result, "x", {})
    assert not (tmp_path / "out" / "x.json").exists()


def test_result_names() -> None:
    from trt_mass.inputs.dicom import Mammogram

    pixels = np.zeros((4, 4), np.uint16)
    dicom = Mammogram(pixels, "a.dcm", sop_instance_uid="1.2.3")
    raster = Mammogram(pixels, "a.png")
    assert result_stem(dicom, Path("x/a.dcm")) == "1.2.3" and result_stem(raster, Path("x/a.png")) == "a"
    stems = StemAllocator()
    assert [stems.claim(raster, Path(p)) for p in ("x/a.png", "y/a.png", "z/a.tif")] == ["a", "a-2", "a-3"]
    assert stems.claim(dicom, Path("a.dcm")) == "1.2.3"


def test_a_header_uid_that_is_no_uid_never_names_a_file() -> None:
    from trt_mass.inputs.dicom import Mammogram

    pixels = np.zeros((4, 4), np.uint16)
    for uid in ("../keep/victim", "../escaped", "1.2/3", "1." + "2" * 300, "1..2", ""):
        assert result_stem(Mammogram(pixels, "s.dcm", sop_instance_uid=uid), Path("in/s.dcm")) == "s", uid


def test_dicom_objects_carry_the_result_name_and_a_refused_header_leaves_nothing(
        detector: Detector, phantom: Path, tmp_path: Path) -> None:
    mammogram = read_image(phantom)
    result = detector.detect_mammogram(mammogram)
    writer = _writer(detector, tmp_path / "out", overlay=True, dicom_kinds=("sr", "gsps", "sc"))
    written = writer.write(phantom, mammogram, result, "name-2", {})  # a batch's second image of one UID
    assert sorted(written.record["dicom_outputs"].values()) == ["name-2.gsps.dcm", "name-2.sc.dcm", "name-2.sr.dcm"]
    dataset = pydicom.dcmread(phantom)
    dataset.StudyDate = "2026-13-45"  # no date: highdicom refuses to copy it
    bad = tmp_path / "bad_date.dcm"
    dataset.save_as(bad)
    refused = _writer(detector, tmp_path / "refused", overlay=True, dicom_kinds=("sr", "gsps", "sc"))
    with pytest.raises(InputError, match=r"bad_date\.dcm: its header cannot be copied into a DICOM"):
        refused.write(bad, mammogram, result, "bad", {})
    assert list((tmp_path / "refused").iterdir()) == [], "no objects, overlay or JSON of a refused header"


def test_a_dicom_input_without_a_sop_instance_uid_is_refused_not_skipped(
        detector: Detector, phantom: Path, tmp_path: Path) -> None:
    dataset = pydicom.dcmread(phantom)
    del dataset.SOPInstanceUID
    anonymous = tmp_path / "no_uid.dcm"
    dataset.save_as(anonymous)
    mammogram = read_image(anonymous)
    assert mammogram.sop_instance_uid is None
    writer = _writer(detector, tmp_path / "out", overlay=True, dicom_kinds=("sr",))
    with pytest.raises(InputError, match=r"no_uid\.dcm: no SOPInstanceUID"):  # before inference: detect, watch
        writer.check_source(anonymous, mammogram)
    _writer(detector, tmp_path / "plain", dicom_kinds=()).check_source(anonymous, mammogram)
    result = detector.detect_mammogram(mammogram)
    with pytest.raises(InputError, match=r"no_uid\.dcm: no SOPInstanceUID: DICOM outputs cannot reference"):
        writer.write(anonymous, mammogram, result, result_stem(mammogram, anonymous), {})
    assert list((tmp_path / "out").iterdir()) == []
    plain = _writer(detector, tmp_path / "plain", dicom_kinds=())
    assert plain.write(anonymous, mammogram, result, "no_uid", {}).record.get("dicom_outputs") is None


def test_only_findings_at_the_operating_point_are_drawn(detector: Detector, phantom: Path, tmp_path: Path) -> None:
    mammogram = read_image(phantom)
    result = detector.detect_mammogram(mammogram)
    scores = sorted(f.score for f in result.findings)
    assert len(scores) >= 2, "the test needs findings on both sides of the point"
    cut = (scores[0] + scores[-1]) / 2
    point = OperatingPoint(f"{cut:g}", cut, "given")
    written = _writer(detector, tmp_path, dicom_kinds=("gsps", "sr"), operating_point=point).write(
        phantom, mammogram, result, "x", {})
    shown = [f for f in result.findings if f.score >= cut]
    assert 0 < written.findings == len(shown) < written.candidates == len(result.findings)
    assert [f["shown"] for f in written.record["findings"]] == [f.score >= cut for f in result.findings]
    assert written.record["operating_point"] == {"name": f"{cut:g}", "score": cut, "origin": "given"}
    gsps = pydicom.dcmread(tmp_path / written.record["dicom_outputs"]["gsps"])
    assert len(gsps.GraphicAnnotationSequence[0].GraphicObjectSequence) == len(shown)
