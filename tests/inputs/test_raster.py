"""Research rasters (PNG / TIFF) read as the canonical uint16 image, and refused with the file and the reason."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trt_mass.errors import InputError
from trt_mass.inputs.raster import MAX_PIXELS, read_raster

RNG = np.random.default_rng(0)


def test_8_bit_values_are_scaled_to_the_uint16_range(tmp_path: Path) -> None:
    values = RNG.integers(0, 256, size=(30, 20), dtype=np.uint8)
    values[0, 0], values[0, 1] = 0, 255
    Image.fromarray(values).save(tmp_path / "a.png")
    pixels = read_raster(tmp_path / "a.png")
    assert pixels.dtype == np.uint16 and pixels.shape == (30, 20) and pixels.flags.c_contiguous
    assert np.array_equal(pixels, values.astype(np.uint16) * 257)
    assert pixels[0, 0] == 0 and pixels[0, 1] == 65535


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_values_pass_through(tmp_path: Path, suffix: str) -> None:
    values = RNG.integers(0, 65536, size=(25, 33), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / f"a{suffix}")
    assert np.array_equal(read_raster(tmp_path / f"a{suffix}"), values)


def test_colour_is_read_as_luminance(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, size=(12, 10), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    assert np.array_equal(read_raster(tmp_path / "rgb.png"), grey.astype(np.uint16) * 257)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height (8-bit grey) and holds no pixel data: only the header is read."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def test_refusals_name_the_file_and_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.png: no such file"):
        read_raster(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match=r"text\.png: not a PNG/TIFF image"):
        read_raster(tmp_path / "text.png")
    side = int(MAX_PIXELS**0.5) + 1
    _png_header_only(tmp_path / "large.png", side, side)
    with pytest.raises(InputError, match=rf"large\.png: {side} x {side} pixels is too large"):
        read_raster(tmp_path / "large.png")
    _png_header_only(tmp_path / "bomb.png", 50_000, 50_000)  # beyond Pillow's own decompression-bomb limit
    with pytest.raises(InputError, match=r"bomb\.png: .*too large"):
        read_raster(tmp_path / "bomb.png")
    Image.fromarray(RNG.random((8, 8), dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(InputError, match=r"float\.tif: unsupported image mode F"):
        read_raster(tmp_path / "float.tif")
    good = tmp_path / "good.png"
    Image.fromarray(RNG.integers(0, 65535, size=(64, 64), dtype=np.uint16)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.png: cannot decode"):
        read_raster(tmp_path / "cut.png")
