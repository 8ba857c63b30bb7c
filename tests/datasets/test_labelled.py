"""Data sets: patient-wise folds never leak; the INbreast XML reader; the CSV and MIAS layouts."""

from __future__ import annotations

import plistlib
from pathlib import Path

import numpy as np
import pytest

from trt_mass.datasets.labelled import Sample, inbreast_mass_boxes, load_dataset, patient_folds
from trt_mass.datasets.synth import write_phantoms
from trt_mass.errors import ConfigError, InputError

MIAS = Path(__file__).parents[2].parent / "shared" / "data" / "mini-mias-train"


def test_patient_folds_never_leak() -> None:
    samples = [Sample(Path(f"{i}.png"), f"{i}", f"p{i // 3}") for i in range(50)]
    seen_test: set[str] = set()
    for fold in range(5):
        train, test = patient_folds(samples, 5, fold, seed=1)
        assert len(train) + len(test) == 50
        assert not {s.patient_id for s in train} & {s.patient_id for s in test}
        seen_test |= {s.image_id for s in test}
    assert len(seen_test) == 50, "every image is tested in exactly one fold"


def test_inbreast_xml_reader(tmp_path: Path) -> None:
    document = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 2, "ROIs": [
        {"Name": "Mass", "Point_px": ["(100.0, 200.0)", "(150.5, 210.0)", "(120.0, 260.0)"]},
        {"Name": "Calcification", "Point_px": ["(10, 10)"]},
    ]}]}
    xml = tmp_path / "22670094.xml"
    with open(xml, "wb") as handle:
        plistlib.dump(document, handle)
    boxes = inbreast_mass_boxes(xml)
    # min/max 100..150.5 x 200..260, enlarged by 10 % of width and height in total.
    assert np.allclose(boxes, [[100 - 2.525, 200 - 3.0, 150.5 + 2.525, 260 + 3.0]])


def test_csv_dataset_from_phantoms(tmp_path: Path) -> None:
    write_phantoms(tmp_path, 8, seed=2, scale=0.05, normal_fraction=0.4)
    samples = load_dataset(str(tmp_path))
    assert len(samples) == 8
    assert any(s.normal for s in samples) and any(len(s.boxes) for s in samples)
    assert len({s.patient_id for s in samples}) == 2, "four phantoms per phantom patient"
    assert all("SYNTH" not in s.patient_id for s in samples), "patient IDs are hashed"


@pytest.mark.skipif(not MIAS.is_dir(), reason="../shared/data/mini-mias-train is not present")
def test_mias_layout() -> None:
    samples = load_dataset(f"mias:{MIAS}")
    assert len(samples) == 210 and sum(len(s.boxes) > 0 for s in samples) == 38
    assert all(s.path.is_file() and s.pixel_spacing_mm == 0.2 for s in samples)


def _truth(folder: Path, text: str, bom: bool = False) -> str:
    (folder / "truth.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return str(folder)


HEADER = "file,sop_instance_uid,x1,y1,x2,y2\n"


@pytest.mark.parametrize(("rows", "reason"), [
    ("nosuch.dcm,,10,10,50,50\n", r"1 file name\(s\) match no image under .*'nosuch.dcm' \(line 2\)"),
    ("Synth_0000.dcm,,10,10,50,50\n", r"match no image.*'Synth_0000.dcm'.*case-sensitive"),
    ("synth_0000.dcm,,10,10\n", r"line 2: x2 None is not a finite number"),
    ("synth_0000.dcm,,10,nan,50,50\n", r"line 2: y1 'nan' is not a finite number"),
    ("synth_0000.dcm,,50,10,10,50\n", r"line 2: the box 50, 10, 10, 50 has no area"),
    (",1.2.3,10,10,50,50\n", r"line 2: no file name"),
    ("synth_0000.dcm,,10,10,50,50\nsynth_0000.dcm,,10,10,50,50\n", r"line 3 repeats the box of line 2"),
])
def test_truth_rows_that_would_lose_a_mass_are_refused(tmp_path: Path, rows: str, reason: str) -> None:
    """Each of these used to be dropped or double-counted without a word (or a traceback)."""
    write_phantoms(tmp_path, 2, seed=2, scale=0.05, normal_fraction=0.0)
    with pytest.raises(InputError, match=reason) as info:
        load_dataset(_truth(tmp_path, HEADER + rows))
    assert "truth.csv" in str(info.value)


def test_truth_csv_header_bom_and_subfolders(tmp_path: Path) -> None:
    write_phantoms(tmp_path / "a", 1, seed=2, scale=0.05, normal_fraction=0.0)
    write_phantoms(tmp_path / "b", 1, seed=3, scale=0.05, normal_fraction=0.0)
    with pytest.raises(InputError, match="empty: not even a header row"):
        load_dataset(_truth(tmp_path, ""))
    with pytest.raises(InputError, match="no column y2 in its header"):
        load_dataset(_truth(tmp_path, "file,x1,y1,x2\n"))
    samples = load_dataset(_truth(tmp_path, HEADER + "a/synth_0000.dcm,,10,10,50,50\n", bom=True))
    by_id = {s.image_id: s for s in samples}
    assert sorted(by_id) == ["a/synth_0000.dcm", "b/synth_0000.dcm"], "one name in two folders: two images"
    assert by_id["a/synth_0000.dcm"].boxes.tolist() == [[10, 10, 50, 50]] and by_id["b/synth_0000.dcm"].normal


def test_a_folder_without_the_mias_layout_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no mass_boxes.csv \(the mini-MIAS layout"):
        load_dataset(f"mias:{tmp_path}")


@pytest.mark.parametrize(("box", "refused"), [
    ((10, 10, 40, 40), False),
    ((-10, 80, 30, 110), False),  # drawn a little past the edges: kept
    ((90, 20, 130, 60), True),  # 3/4 outside a 100-wide image (another image's size)
    ((10, 150, 40, 180), True),  # below the image (a bottom-left origin read as top-left)
])
def test_truth_mostly_outside_its_image_is_refused(box: tuple[int, ...], refused: bool) -> None:
    from trt_mass.datasets.labelled import check_boxes_on_image

    sample = Sample(Path("data/a.png"), "a.png", "a", np.array([box], dtype=np.float64), normal=False)
    if not refused:
        check_boxes_on_image(sample, 120, 100)
        return
    with pytest.raises(InputError, match=r"data/a.png: its truth box .* lies mostly outside the 100x120 image"):
        check_boxes_on_image(sample, 120, 100)


def test_data_specs_name_one_set_under_two_spellings(tmp_path, monkeypatch):
    from trt_mass.datasets.labelled import parse_data_spec

    (tmp_path / "mias").mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_data_spec("mias:mias").key == parse_data_spec(f"mias:{tmp_path}/./mias").key
    assert parse_data_spec(str(tmp_path / "mias")).key == parse_data_spec(f"csv:{tmp_path}/mias").key
    assert parse_data_spec("mias:mias").key != parse_data_spec("csv:mias").key
    bare = parse_data_spec("mias")  # a folder named like a kind stays a folder
    assert (bare.kind, bare.folder, bare.labelled_by_kind) == ("csv", Path("mias"), False)
    assert parse_data_spec("inbreast:/data/INbreast").labelled_by_kind
