"""Pixel-data decoders: the fast ones give pydicom's stored values bit for bit, or step aside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from tests.dicom_factory import encode, mg_dataset, stored_ramp, write
from trt_mass.errors import ConfigError
from trt_mass.inputs.decoders import (
    DecoderUnavailable,
    code_stream_info,
    open_decoder,
)
from trt_mass.inputs.dicom import load_mammogram

LOSSLESS = {"j2k": JPEG2000Lossless, "htj2k": HTJ2KLossless, "jpegls": JPEGLSLossless, "rle": RLELossless,
            "explicit": ExplicitVRLittleEndian}


def _file(tmp_path: Path, name: str, syntax: Any, bits: int = 12, photometric: str = "MONOCHROME1",
          rows: int = 300, columns: int = 230, encode_options: dict[str, Any] | None = None) -> Path:
    stored = stored_ramp(rows=rows, columns=columns, bits=bits, seed=7)
    ds = mg_dataset(stored, bits=bits, photometric=photometric, WindowCenter=str(2 ** (bits - 1)),
                    WindowWidth=str(2**bits - 100))
    return write(encode(ds, syntax, **(encode_options or {})), tmp_path / f"{name}.dcm")


@pytest.mark.parametrize("name", sorted(LOSSLESS))
@pytest.mark.parametrize("bits", [12, 16])
def test_openjpeg_equals_pydicom(tmp_path: Path, name: str, bits: int) -> None:
    if name == "jpegls" and bits == 16:
        pytest.skip("pydicom's JPEG-LS encoder is not needed here; 12 bits covers the fallback")
    path = _file(tmp_path, name, LOSSLESS[name], bits=bits)
    fast = load_mammogram(path, decoder=open_decoder("openjpeg", threads=2))
    reference = load_mammogram(path, decoder=open_decoder("pydicom"))
    np.testing.assert_array_equal(fast.pixels, reference.pixels)
    assert reference.pixel_decoder == "pydicom"
    # J2K goes through OpenJPEG, HTJ2K through OpenJPH (fewer than 8 threads); every other syntax through pydicom.
    assert fast.pixel_decoder == {"j2k": "openjpeg", "htj2k": "openjph"}.get(name, "pydicom")


def test_htj2k_with_many_threads_goes_through_openjpeg(tmp_path: Path) -> None:
    path = _file(tmp_path, "ht", HTJ2KLossless)
    fast = load_mammogram(path, decoder=open_decoder("openjpeg", threads=8))
    assert fast.pixel_decoder == "openjpeg"
    np.testing.assert_array_equal(fast.pixels, load_mammogram(path).pixels)


def test_lossy_j2k_equals_pydicom(tmp_path: Path) -> None:
    path = _file(tmp_path, "lossy", JPEG2000, encode_options={"j2k_cr": [20]})
    fast = load_mammogram(path, decoder=open_decoder("openjpeg", threads=1))
    reference = load_mammogram(path, decoder=open_decoder("pydicom"))
    assert fast.pixel_decoder == "openjpeg"
    np.testing.assert_array_equal(fast.pixels, reference.pixels)


def test_signed_j2k_goes_through_pydicom(tmp_path: Path) -> None:
    """pydicom corrects signedness between header and code stream; the fast path leaves such frames to it."""
    stored = (stored_ramp(rows=64, columns=48, bits=12).astype(np.int32) - 2048).astype(np.int16)
    ds = mg_dataset(stored.view(np.uint16), bits=12, PixelRepresentation=1, RescaleIntercept="2048",
                    RescaleSlope="1")
    path = write(encode(ds, JPEG2000Lossless), tmp_path / "signed.dcm")
    fast = load_mammogram(path, decoder=open_decoder("openjpeg"))
    assert fast.pixel_decoder == "pydicom"
    np.testing.assert_array_equal(fast.pixels, load_mammogram(path).pixels)


def test_corrupt_j2k_is_refused_with_pydicoms_reason(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.encaps import encapsulate, get_frame

    path = _file(tmp_path, "good", JPEG2000Lossless)
    ds = dcmread(path)
    frame = get_frame(ds.PixelData, 0, number_of_frames=1)
    ds.PixelData = encapsulate([frame[: len(frame) // 3]])
    broken = write(ds, tmp_path / "broken.dcm")
    with pytest.raises(Exception) as caught:
        load_mammogram(broken, decoder=open_decoder("openjpeg"))
    assert "broken.dcm" in str(caught.value)


def test_code_stream_info_reads_the_siz_marker(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.encaps import get_frame

    ds = dcmread(_file(tmp_path, "a", JPEG2000Lossless, rows=51, columns=37))
    info = code_stream_info(get_frame(ds.PixelData, 0, number_of_frames=1))
    assert info is not None and (info.rows, info.columns, info.components, info.signed) == (51, 37, 1, False)
    assert info.precision == 12
    assert code_stream_info(b"not a code stream") is None


def test_auto_falls_back_and_says_why() -> None:
    decoder = open_decoder("auto", threads=3)
    assert decoder.name in ("nvimgcodec", "openjpeg")
    if decoder.name == "openjpeg":
        assert decoder.threads == 3 and "nvImageCodec" in decoder.reason
    with pytest.raises(ConfigError):
        open_decoder("fastest")
    with pytest.raises(ConfigError):
        open_decoder("openjpeg", threads=0)


def test_detect_reports_the_decoder(tmp_path: Path, tiny_model: Any) -> None:
    path = _file(tmp_path, "in", JPEG2000Lossless, rows=400, columns=320)
    command = [sys.executable, "-m", "trt_mass.cli", "detect", str(path), "--model", str(tiny_model.onnx_path),
               "--out", str(tmp_path / "out"), "--decoder", "openjpeg", "--decode-threads", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "decoder: openjpeg (requested)" in done.stderr
    import json

    record = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert record["image"]["pixel_decoder"] == "openjpeg"


def _nvimgcodec_or_skip() -> None:
    try:
        open_decoder("nvimgcodec")
    except DecoderUnavailable as error:
        pytest.skip(f"no GPU decoder here: {error}")


@pytest.mark.parametrize("name", ["j2k", "htj2k"])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_nvimgcodec_is_bit_exact_on_lossless_files(tmp_path: Path, name: str, bits: int) -> None:
    """Where a GPU and nvImageCodec exist (skipped elsewhere, with the reason)."""
    _nvimgcodec_or_skip()
    path = _file(tmp_path, name, LOSSLESS[name], bits=bits, rows=1200, columns=900)
    gpu = load_mammogram(path, decoder=open_decoder("nvimgcodec"))
    reference = load_mammogram(path, decoder=open_decoder("pydicom"))
    assert gpu.pixel_decoder == "nvimgcodec"
    np.testing.assert_array_equal(gpu.pixels, reference.pixels)


def test_reading_leaves_the_process_wide_warning_filters_alone(tmp_path: Path) -> None:
    """warnings.catch_warnings is process-wide: decode workers in threads must not change the filters."""
    import warnings

    path = _file(tmp_path, "w", JPEG2000Lossless)
    filters = list(warnings.filters)
    load_mammogram(path, decoder=open_decoder("openjpeg", threads=1))
    load_mammogram(path, decoder=open_decoder("pydicom"))
    assert warnings.filters == filters
