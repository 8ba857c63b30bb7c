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
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(root / "a.png")
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


def test_a_blank_image_is_refused_not_read_as_a_negative(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((64, 48), np.uint8)).save(tmp_path / "black.png")
    write(mg_dataset(np.full((64, 48), 700, np.uint16)), tmp_path / "flat.dcm")
    for name in ("black.png", "flat.dcm"):
        with pytest.raises(InputError, match=rf"{name}: blank image: every pixel is"):
            read_image(tmp_path / name)
    Image.fromarray(np.arange(4000, dtype=np.uint16).reshape(1, 4000)).save(tmp_path / "sliver.png")
    with pytest.raises(InputError, match=r"sliver\.png: 1 x 4000 pixels is too small"):
        read_image(tmp_path / "sliver.png")


def test_truth_csv_by_file_name_and_by_uid(tmp_path: Path) -> None:
    csv = tmp_path / "truth.csv"
    csv.write_text("file,sop_instance_uid,x1,y1,x2,y2\na.dcm,1.2.3,10,20,30,40\na.dcm,1.2.3,1,2,3,4\nb.png,,5,6,7,8\n")
    truth = read_truth(csv)
    assert np.array_equal(truth["a.dcm"], [[10, 20, 30, 40], [1, 2, 3, 4]]) and truth["1.2.3"].shape == (2, 4)
    assert np.array_equal(truth["b.png"], [[5, 6, 7, 8]]) and "" not in truth
    csv.write_text("file,x1\na.dcm,1\n")
    with pytest.raises(InputError, match=r"truth\.csv: not a truth CSV"):
        read_truth(csv)


def test_a_fifo_is_refused_at_once_not_read_forever(tmp_path: Path) -> None:
    import os

    for name in ("pipe.png", "pipe.dcm", "pipe"):
        os.mkfifo(tmp_path / name)
        with pytest.raises(InputError, match=rf"{name}: not a regular file"):
            read_image(tmp_path / name)  # the test would hang here before the check
    assert collect_inputs([tmp_path]) == [], "a folder scan skips them"


def test_a_scan_skips_the_output_folder_and_refuses_it_as_an_input_folder(tmp_path: Path) -> None:
    from trt_mass.errors import ConfigError

    (tmp_path / "scans" / "results").mkdir(parents=True)
    write(mg_dataset(stored_ramp()), tmp_path / "scans" / "a.dcm")
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(tmp_path / "scans" / "results" / "old.overlay.png")
    write(mg_dataset(stored_ramp()), tmp_path / "scans" / "results" / "1.2.3.sc.dcm")
    scans = tmp_path / "scans"
    assert collect_inputs([scans], scans / "results") == [scans / "a.dcm"]
    assert len(collect_inputs([scans])) == 3, "without an output folder everything is a candidate"
    with pytest.raises(ConfigError, match="is the input folder"):
        collect_inputs([scans], scans)
