"""Synthetic phantoms: real MG DICOM, a realistic mixture, truth that matches the pixels, deterministic."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from trt_mass.datasets.synth import write_phantoms
from trt_mass.errors import ConfigError
from trt_mass.inputs.dicom import MG_FOR_PRESENTATION, load_mammogram


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_phantoms(out, 24, seed=3, scale=0.12)
    return out


def test_files_are_for_presentation_mammograms_with_a_mixture(phantoms: Path) -> None:
    seen: dict[str, set[str]] = {"photometric": set(), "syntax": set(), "view": set(), "laterality": set(),
                                 "size": set(), "voi": set()}
    for path in sorted(phantoms.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == MG_FOR_PRESENTATION and ds.Modality == "MG"
        assert ds.PresentationIntentType == "FOR PRESENTATION" and ds.BodyPartExamined == "BREAST"
        seen["photometric"].add(ds.PhotometricInterpretation)
        seen["syntax"].add(str(ds.file_meta.TransferSyntaxUID))
        seen["view"].add(ds.ViewPosition)
        seen["laterality"].add(ds.ImageLaterality)
        seen["size"].add(f"{ds.Manufacturer} {ds.Rows}x{ds.Columns}")
        seen["voi"].add(ds.VOILUTFunction)
    assert seen["photometric"] == {"MONOCHROME1", "MONOCHROME2"}
    assert seen["syntax"] == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"}
    assert seen["view"] == {"CC", "MLO"} and seen["laterality"] == {"L", "R"}
    assert len(seen["size"]) >= 3 and seen["voi"] == {"LINEAR", "SIGMOID"}


def test_truth_matches_the_pixels(phantoms: Path) -> None:
    with open(phantoms / "truth.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = sorted(p.name for p in phantoms.glob("*.dcm"))
    with_masses = {row["file"] for row in rows}
    assert 0 < len(with_masses) < len(files), "a share of normals and of images with masses"
    contrasts = []
    for row in rows:
        mammogram = load_mammogram(phantoms / row["file"])
        assert mammogram.sop_instance_uid == row["sop_instance_uid"]
        height, width = mammogram.pixels.shape
        x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        inside = mammogram.pixels[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].astype(float)
        pad = int(max(x2 - x1, y2 - y1))
        around = mammogram.pixels[max(0, int(y1) - pad):int(y2) + pad, max(0, int(x1) - pad):int(x2) + pad]
        contrasts.append(inside.mean() - around.astype(float).mean())
    assert np.median(contrasts) > 0, "masses are denser (brighter) than their surroundings"


def test_breast_looks_like_a_breast(phantoms: Path) -> None:
    mammogram = load_mammogram(sorted(phantoms.glob("*.dcm"))[0])
    pixels = mammogram.pixels.astype(float) / 65535
    breast = pixels > 0.15
    assert 0.2 < breast.mean() < 0.9, "breast tissue against dark air"
    inner = pixels[breast]
    assert inner.std() > 0.03, "fibroglandular texture, not a flat blob"


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    def digest(folder: Path) -> str:
        hasher = hashlib.sha256()
        for path in sorted(folder.iterdir()):
            hasher.update(path.name.encode() + path.read_bytes())
        return hasher.hexdigest()

    write_phantoms(tmp_path / "a", 3, seed=9, scale=0.08)
    write_phantoms(tmp_path / "b", 3, seed=9, scale=0.08)
    write_phantoms(tmp_path / "c", 3, seed=10, scale=0.08)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_older_seeds_draw_the_same_masses(tmp_path: Path) -> None:
    """Training sets are recorded as (seed, count, scale): the distortion option must not move old draws."""
    write_phantoms(tmp_path, 3, seed=9, scale=0.08)
    with open(tmp_path / "truth.csv", newline="") as handle:
        boxes = [[float(row[k]) for k in ("x1", "y1", "x2", "y2")] for row in csv.DictReader(handle)]
    assert boxes == [[147.0, 78.0, 164.0, 101.0], [169.0, 104.0, 188.0, 120.0], [212.0, 173.0, 219.0, 180.0]]


def test_distortions_are_faint_radiating_lines_boxed_by_their_extent() -> None:
    from trt_mass.datasets.synth import DISTORTION, _distortion_mask, make_phantom

    phantom = make_phantom(np.random.default_rng(4), 0.1, normal=False, distortion_fraction=1.0)
    assert phantom.masses and {m.shape for m in phantom.masses} == {DISTORTION}
    grid = np.mgrid[0:200, 0:200].astype(np.float32)
    mask, box = _distortion_mask(np.random.default_rng(1), grid, (100.0, 100.0), 60.0)
    assert box == (40.0, 40.0, 160.0, 160.0), "the whole extent, as film databases circle spiculated lesions"
    yy, xx = grid - 100.0
    ring = (np.hypot(yy, xx) > 20) & (np.hypot(yy, xx) < 35)
    sectors = (np.degrees(np.arctan2(yy, xx))[ring] // 30).astype(int)
    lit = ring.copy()
    lit[ring] = mask[ring] > 0.2
    assert len(set(sectors[lit[ring]])) >= 8, "lines radiate in most directions"
    assert (mask[ring] > 0.2).mean() < 0.35, "thin lines, not a blob"
    clipped = _distortion_mask(np.random.default_rng(1), grid, (10.0, 190.0), 60.0)[1]
    assert clipped == (130.0, 0.0, 200.0, 70.0)
    with pytest.raises(ConfigError, match="distortion fraction"):
        write_phantoms(Path("unused"), 1, seed=0, distortion_fraction=1.5)
