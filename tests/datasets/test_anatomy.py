"""Realistic phantom anatomy: breast sizes, detectors, outlines and the views they leave to run."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import numpy as np
import pydicom
import pytest

from trt_mass.datasets.anatomy import DETECTOR_CM, BreastSize, detector_of, draw_breast, pick_detector
from trt_mass.datasets.synth import VENDORS, make_phantom, write_phantoms
from trt_mass.geometry import CanvasBuilder
from trt_mass.inputs.dicom import load_mammogram
from trt_mass.spec import TileGeometry
from trt_mass.tissue import views_with_tissue


def test_breast_sizes_spread_like_a_screening_population() -> None:
    rng = np.random.default_rng(0)
    cc = [draw_breast(rng, "CC") for _ in range(500)]
    mlo = [draw_breast(rng, "MLO") for _ in range(500)]
    walls = [b.wall_cm for b in cc]
    assert min(walls) >= 9.0 and max(walls) <= 27.0
    assert 15.5 < statistics.median(walls) < 18.5
    assert np.quantile(walls, 0.1) < 14.0 and np.quantile(walls, 0.9) > 20.0, "small to large breasts"
    assert all(0.5 * b.wall_cm <= b.depth_cm <= 0.8 * b.wall_cm for b in cc)
    assert statistics.median(b.wall_cm for b in mlo) > statistics.median(walls), "MLO includes the axillary tail"


def test_the_detector_fits_the_breast() -> None:
    rng = np.random.default_rng(1)
    small, large = BreastSize("CC", 12.0, 7.0), BreastSize("CC", 25.0, 14.0)
    assert small.fits("18x24") and not large.fits("18x24") and large.fits("24x30")
    picks = [pick_detector(rng, small) for _ in range(400)]
    assert 0.7 < picks.count("18x24") / len(picks) < 0.9
    assert {pick_detector(rng, large) for _ in range(50)} == {"24x30"}
    assert {detector_of(v[2], v[3], v[4]) for v in VENDORS} == set(DETECTOR_CM)


def _block_means_8x8(image: np.ndarray) -> np.ndarray:
    height, width = image.shape
    cropped = image[: height // 8 * 8, : width // 8 * 8].astype(np.float64)
    return cropped.reshape(8, height // 8, 8, width // 8).mean(axis=(1, 3))


def test_fill_anatomy_reproduces_the_original_phantoms() -> None:
    """The demo model's recipe made its phantoms before the realistic anatomy: the same seed, the same pixels.

    The pixels are compared as 8x8 block means to 1e-4 and not as bytes: numpy's float32 kernels follow the
    CPU's SIMD level (AVX-512 or AVX2), so the same code on another CPU differs in the last bits."""
    recorded = json.loads((Path(__file__).parent / "fill_phantoms_e1a2333.json").read_text())["phantoms"]
    rng = np.random.default_rng(100)
    for normal, reference in zip((False, True, False, False), recorded, strict=True):
        phantom = make_phantom(rng, 0.05, normal, anatomy="fill")
        meta = repr((phantom.masses, phantom.view, phantom.laterality, phantom.vendor, phantom.pixel_spacing_mm))
        assert hashlib.sha256(meta.encode()).hexdigest() == reference["meta_sha256"], "masses, view or vendor moved"
        assert list(phantom.presentation.shape) == reference["shape"]
        np.testing.assert_allclose(_block_means_8x8(phantom.presentation), reference["block_means_8x8"], atol=1e-4)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_phantoms(tmp_path_factory.mktemp("realistic"), 30, seed=200, scale=0.06)


def test_realistic_phantoms_vary_detector_breast_and_view(realistic: list[Path]) -> None:
    detectors, fractions, views = set(), [], set()
    for path in realistic:
        ds = pydicom.dcmread(path)
        spacing_mm = float(ds.ImagerPixelSpacing[0])
        detectors.add(detector_of(ds.Rows, ds.Columns, spacing_mm))
        views.add(ds.ViewPosition)
        pixels = load_mammogram(path).pixels.astype(np.float64) / 65535
        fractions.append(float((pixels > 0.15).mean()))
        chest_wall_left = ds.ImageLaterality == "L"
        wall, far = (pixels[:, 0], pixels[:, -1]) if chest_wall_left else (pixels[:, -1], pixels[:, 0])
        assert wall.mean() > far.mean() + 0.05, f"{path.name}: the breast lies against the chest wall"
        if ds.ViewPosition == "MLO":
            top_corner = pixels[:3, :4] if chest_wall_left else pixels[:3, -4:]
            assert top_corner.mean() > 0.3, f"{path.name}: the pectoral muscle fills the top chest-wall corner"
    assert detectors == {"18x24", "24x30"} and views == {"CC", "MLO"}
    assert min(fractions) < 0.3 and max(fractions) > 0.45, "small breasts leave air, large ones fill the detector"


def test_realistic_phantoms_leave_views_of_air(realistic: list[Path]) -> None:
    """Real digital mammograms have tissue in 15-23 of 25 tiles; phantoms spread the same way."""
    geometry = TileGeometry(256, 224, 5)
    builder = CanvasBuilder(geometry, "uint16")
    counts = []
    for path in realistic:
        letterbox = builder.fill(load_mammogram(path).pixels, path.name)
        counts.append(len(views_with_tissue(builder.canvas, letterbox.resized_hw, geometry)))
    assert 16.0 <= statistics.fmean(counts) <= 23.0, counts
    assert min(counts) <= 14 and max(counts) >= 24, counts


def test_cli_synth_takes_the_anatomy(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trt_mass.cli import main

    runner = CliRunner()
    for anatomy in ("fill", "realistic"):
        done = runner.invoke(main, ["synth", str(tmp_path / anatomy), "--count", "2", "--seed", "5", "--scale", "0.05",
                                    "--anatomy", anatomy])
        assert done.exit_code == 0, done.output
    write_phantoms(tmp_path / "library-fill", 2, seed=5, scale=0.05, anatomy="fill")
    for name in ("synth_0000.dcm", "synth_0001.dcm", "truth.csv"):
        assert (tmp_path / "fill" / name).read_bytes() == (tmp_path / "library-fill" / name).read_bytes()
    first = "synth_0000.dcm"
    assert (tmp_path / "fill" / first).read_bytes() != (tmp_path / "realistic" / first).read_bytes()
    refused = runner.invoke(main, ["synth", str(tmp_path / "x"), "--anatomy", "round"])
    assert refused.exit_code == 2 and "round" in refused.output
