"""Which files a run takes, reading any of them as a Mammogram, and the ground-truth CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.dicom_factory import mg_dataset, stored_ramp, write
from trt_mass.errors import InputError
from trt_mass.inputs.files import collect_inputs, is_candidate, read_image, read_truth


def _tree(root: Path) -> None:
    (root / "b").mkdir(parents=True)
    write(mg_dataset(stored_ramp()), root / "b" / "x.dcm")
    write(mg_dataset(stored_ramp()), root / "1.2.840.5")  # a PACS export: no suffix, DICM preamble
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a.png")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.dcm").write_bytes(b"")
    (root / "plain").write_text("no preamble")


def test_folders_are_expanded_recursively_and_sorted(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in collect_inputs([tmp_path])] == ["1.2.840.5", "a.png",
                                                                                        "b/x.dcm"]
    named = tmp_path / "notes.txt"
    assert collect_inputs([named, tmp_path / "a.png"]) == [named, tmp_path / "a.png"], "files named are kept"
    assert not is_candidate(tmp_path / ".hidden.dcm") and not is_candidate(tmp_path / "plain")


def test_read_image_reads_dicom_and_rasters(tmp_path: Path) -> None:
    _tree(tmp_path)
    dicom = read_image(tmp_path / "1.2.840.5")
    assert dicom.sop_instance_uid and dicom.pixels.dtype == np.uint16 and dicom.pixel_spacing_mm == (0.1, 0.1)
    raster = read_image(tmp_path / "a.png")
    assert raster.source == "a.png" and raster.sop_instance_uid is None and raster.pixel_spacing_mm is None
    with pytest.raises(InputError, match=r"notes\.txt: neither DICOM"):
        read_image(tmp_path / "notes.txt")
    with pytest.raises(InputError, match=r"gone\.bin: no such file"):
        read_image(tmp_path / "gone.bin")


def test_truth_csv_by_file_name_and_by_uid(tmp_path: Path) -> None:
    csv = tmp_path / "truth.csv"
    csv.write_text("file,sop_instance_uid,x1,y1,x2,y2\na.dcm,1.2.3,10,20,30,40\na.dcm,1.2.3,1,2,3,4\nb.png,,5,6,7,8\n")
    truth = read_truth(csv)
    assert np.array_equal(truth["a.dcm"], [[10, 20, 30, 40], [1, 2, 3, 4]]) and truth["1.2.3"].shape == (2, 4)
    assert np.array_equal(truth["b.png"], [[5, 6, 7, 8]]) and "" not in truth
    csv.write_text("file,x1\na.dcm,1\n")
    with pytest.raises(InputError, match=r"truth\.csv: not a truth CSV"):
        read_truth(csv)
