"""Research rasters (PNG / TIFF) read as the canonical uint16 image from the bits they use; refusals name the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from trt_mass.errors import InputError
from trt_mass.inputs.raster import MAX_PIXELS, RasterScaling, read_raster

RNG = np.random.default_rng(0)


def test_8_bit_values_are_scaled_to_the_uint16_range(tmp_path: Path) -> None:
    values = RNG.integers(0, 256, size=(30, 20), dtype=np.uint8)
    values[0, 0], values[0, 1] = 0, 255
    Image.fromarray(values).save(tmp_path / "a.png")
    pixels, scaling = read_raster(tmp_path / "a.png")
    assert scaling == RasterScaling(8, "8-bit image")
    assert pixels.dtype == np.uint16 and pixels.shape == (30, 20) and pixels.flags.c_contiguous
    assert np.array_equal(pixels, values.astype(np.uint16) * 257)
    assert pixels[0, 0] == 0 and pixels[0, 1] == 65535


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_values_pass_through(tmp_path: Path, suffix: str) -> None:
    values = RNG.integers(0, 65536, size=(25, 33), dtype=np.uint16)
    values[0, 0] = 65535
    Image.fromarray(values).save(tmp_path / f"a{suffix}")
    pixels, scaling = read_raster(tmp_path / f"a{suffix}")
    assert np.array_equal(pixels, values) and scaling == RasterScaling(16, "maximum value")


def test_colour_is_read_as_luminance(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, size=(12, 10), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    assert np.array_equal(read_raster(tmp_path / "rgb.png")[0], grey.astype(np.uint16) * 257)


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


def _twelve_bit(rows: int = 40, columns: int = 30, maximum: int = 3000) -> np.ndarray:
    values = RNG.integers(0, maximum, size=(rows, columns), dtype=np.uint16)
    values[0, 0] = maximum
    return values


def test_the_maximum_picks_the_smallest_container(tmp_path: Path) -> None:
    for maximum, bits in ((700, 10), (1023, 10), (1024, 12), (3000, 12), (16000, 14), (16384, 16)):
        Image.fromarray(_twelve_bit(maximum=maximum)).save(tmp_path / "a.png")
        pixels, scaling = read_raster(tmp_path / "a.png")
        assert scaling == RasterScaling(bits, "maximum value"), maximum
        assert pixels.max() == round(maximum * 65535 / (2**bits - 1)), maximum


def test_a_png_s_significant_bits_chunk(tmp_path: Path) -> None:
    values = _twelve_bit(maximum=1000)  # 12-bit content that happens to stay below 1024
    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([12]))
    Image.fromarray(values).save(tmp_path / "a.png", pnginfo=info)
    pixels, scaling = read_raster(tmp_path / "a.png")
    assert scaling == RasterScaling(12, "png sBIT")
    assert np.array_equal(pixels, np.rint(values * (65535 / 4095)).astype(np.uint16))
    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([10]))  # a chunk the values contradict is not believed
    Image.fromarray(_twelve_bit(maximum=3000)).save(tmp_path / "b.png", pnginfo=info)
    assert read_raster(tmp_path / "b.png")[1] == RasterScaling(12, "maximum value")


def test_a_png_written_as_the_specification_asks_stays_16_bit(tmp_path: Path) -> None:
    """sBIT 8 on samples already scaled to 16 bits (v * 257): the maximum contradicts 8 bits, nothing wraps."""
    values = RNG.integers(0, 256, size=(20, 20), dtype=np.uint16) * 257
    values[0, 0] = 65535
    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([8]))
    Image.fromarray(values).save(tmp_path / "a.png", pnginfo=info)
    pixels, scaling = read_raster(tmp_path / "a.png")
    assert scaling == RasterScaling(16, "maximum value") and np.array_equal(pixels, values)
    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([0]))  # nonsense is not believed either
    Image.fromarray(values).save(tmp_path / "b.png", pnginfo=info)
    assert read_raster(tmp_path / "b.png")[1] == RasterScaling(16, "maximum value")
    small = RNG.integers(0, 256, size=(20, 20), dtype=np.uint16)  # 8 significant bits in a 16-bit TIFF
    small[0, 0] = 255
    Image.fromarray(small).save(tmp_path / "c.tif", tiffinfo={281: 255})
    pixels, scaling = read_raster(tmp_path / "c.tif")
    assert scaling == RasterScaling(8, "tiff MaxSampleValue") and np.array_equal(pixels, small * 257)
    assert read_raster(tmp_path / "c.tif", bits=12)[1] == RasterScaling(12, "--raster-bits")


def test_a_tiff_s_maximum_sample_value(tmp_path: Path) -> None:
    Image.fromarray(_twelve_bit(maximum=900)).save(tmp_path / "a.tif", tiffinfo={281: 16383})
    assert read_raster(tmp_path / "a.tif")[1] == RasterScaling(14, "tiff MaxSampleValue")


def test_raster_bits_given_by_the_user(tmp_path: Path) -> None:
    Image.fromarray(_twelve_bit(maximum=900)).save(tmp_path / "a.png")
    pixels, scaling = read_raster(tmp_path / "a.png", bits=14)
    assert scaling == RasterScaling(14, "--raster-bits") and pixels.max() == round(900 * 65535 / 16383)
    with pytest.raises(InputError, match=r"a\.png: --raster-bits 8: the image holds values up to 900, which need 10"):
        read_raster(tmp_path / "a.png", bits=8)
    Image.fromarray(RNG.integers(0, 256, size=(8, 8), dtype=np.uint8)).save(tmp_path / "b.png")
    assert read_raster(tmp_path / "b.png", bits=12)[1] == RasterScaling(8, "8-bit image")


def test_one_image_in_three_containers_gives_one_canvas_and_one_set_of_findings(tmp_path: Path) -> None:
    """The same mammogram as 8-bit, 12-in-16 and 14-in-16 PNG: same canvas within rounding, same findings.

    With the bundled (trained) model: a random network's merge is chaotic, a trained one's is not.
    """
    from tests.helpers import match_as_sets
    from trt_mass.bundled import default_model
    from trt_mass.datasets.synth import write_phantoms
    from trt_mass.inputs.files import read_image
    from trt_mass.pipeline import Detector

    phantom = read_image(write_phantoms(tmp_path / "dicom", 1, seed=21, scale=0.25, normal_fraction=0.0)[0])
    eight = (phantom.pixels >> 8).astype(np.uint8)
    Image.fromarray(eight).save(tmp_path / "8.png")
    for bits in (12, 14):
        stored = np.rint(eight * ((2**bits - 1) / 255)).astype(np.uint16)
        Image.fromarray(stored).save(tmp_path / f"{bits}.png")
    images = {name: read_image(tmp_path / f"{name}.png") for name in ("8", "12", "14")}
    assert [images[n].raster_scaling.bits for n in ("8", "12", "14")] == [8, 12, 14]  # type: ignore[union-attr]
    with Detector(default_model(), threads=2) as detector:
        found = {}
        for name, mammogram in images.items():
            result = detector.detect_mammogram(mammogram, default_spacing_mm=0.35)
            canvas = detector._canvas
            assert canvas is not None
            found[name] = (result, canvas.canvas.astype(np.int64).copy())
    reference_result, reference_canvas = found["8"]
    assert reference_result.findings, "the test needs findings to compare"
    for name in ("12", "14"):
        result, canvas = found[name]
        assert np.abs(canvas - reference_canvas).max() <= 9, name  # half a 12-bit step is 8 in 16-bit units
        boxes = np.array([[f.x1, f.y1, f.x2, f.y2] for f in result.findings]).reshape(-1, 4)
        want = np.array([[f.x1, f.y1, f.x2, f.y2] for f in reference_result.findings]).reshape(-1, 4)
        match_as_sets(boxes, np.array([f.score for f in result.findings]), want,
                      np.array([f.score for f in reference_result.findings]), box_tol=0.5, score_tol=2e-3)


def test_32_bit_values_within_16_bits_are_read_and_others_refused(tmp_path: Path) -> None:
    values = RNG.integers(0, 4096, size=(20, 30)).astype(np.int32)
    values[0, 0], values[0, 1] = 4095, 0
    Image.fromarray(values).save(tmp_path / "fits.tif")
    pixels, scaling = read_raster(tmp_path / "fits.tif")
    assert scaling == RasterScaling(12, "maximum value")
    assert np.array_equal(pixels, (values.astype(np.uint32) * 65535 + 2047) // 4095)
    for name, value in (("negative.tif", -5), ("wide.tif", 70000)):
        bad = values.copy()
        bad[3, 3] = value
        Image.fromarray(bad).save(tmp_path / name)
        with pytest.raises(InputError, match=rf"{name}.*32-bit values from {min(value, 0)} to {max(value, 4095)}"):
            read_raster(tmp_path / name)


def test_a_multi_page_tiff_is_read_from_its_largest_page_and_a_stack_is_refused(tmp_path: Path) -> None:
    view = RNG.integers(0, 65536, size=(40, 30), dtype=np.uint16)
    view[0, 0] = 65535
    thumbnail = Image.fromarray(np.full((8, 6), 9, dtype=np.uint16))
    Image.fromarray(np.full((10, 8), 7, dtype=np.uint16)).save(
        tmp_path / "thumb-first.tif", save_all=True, append_images=[Image.fromarray(view), thumbnail])
    pixels, _ = read_raster(tmp_path / "thumb-first.tif")
    assert np.array_equal(pixels, view)
    Image.fromarray(view).save(tmp_path / "stack.tif", save_all=True,
                               append_images=[Image.fromarray(view[::-1].copy()), thumbnail])
    with pytest.raises(InputError, match=r"stack.tif.*2 of its 3 pages are full-size images"):
        read_raster(tmp_path / "stack.tif")


def test_another_format_under_a_png_name_is_refused(tmp_path: Path) -> None:
    Image.fromarray(RNG.integers(0, 256, size=(30, 20), dtype=np.uint8)).save(tmp_path / "photo.png", format="JPEG")
    with pytest.raises(InputError, match=r"photo\.png: a JPEG image named \.png, not PNG/TIFF"):
        read_raster(tmp_path / "photo.png")


def _single_sample_tiff(path: Path, values: np.ndarray, photometric: int, max_sample: int | None = None) -> None:
    """An uncompressed one-strip little-endian TIFF holding `values` (uint8 / uint16) exactly as given.

    Written by hand: Pillow's writer inverts 8-bit values itself for MINISWHITE, and refuses other layouts.
    """
    rows, columns = values.shape
    pixels = values.astype(values.dtype.newbyteorder("<")).tobytes()
    start = 8 + 2 + 12 * (10 if max_sample is None else 11) + 4  # header, IFD, then the pixels
    tags = [(256, 4, columns), (257, 4, rows), (258, 3, 8 * values.dtype.itemsize), (259, 3, 1),
            (262, 3, photometric), (273, 4, start), (277, 3, 1), (278, 4, rows), (279, 4, len(pixels))]
    tags += [] if max_sample is None else [(281, 3, max_sample)]
    tags.append((339, 3, 1))  # SampleFormat: unsigned
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + struct.pack("<HH" if kind == 3 else "<I", *(
            (value, 0) if kind == 3 else (value,))) for tag, kind, value in tags) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + pixels)


def test_a_miniswhite_tiff_reads_dense_bright_like_its_minisblack_twin(tmp_path: Path) -> None:
    """WhiteIsZero stores (2**bits - 1) - v: inverted within the significant bits, not around 65535.

    Pillow inverts 8-bit MINISWHITE itself but left 16-bit words as stored: a negative mammogram.
    """
    twelve = _twelve_bit(maximum=4095)
    twelve[0, 1] = 0
    _single_sample_tiff(tmp_path / "black.tif", twelve, photometric=1, max_sample=4095)
    black, scaling = read_raster(tmp_path / "black.tif")
    assert scaling == RasterScaling(12, "tiff MaxSampleValue")
    _single_sample_tiff(tmp_path / "white.tif", 4095 - twelve, photometric=0, max_sample=4095)
    pixels, white_scaling = read_raster(tmp_path / "white.tif")
    assert white_scaling == scaling and np.array_equal(pixels, black)
    _single_sample_tiff(tmp_path / "white-bare.tif", 4095 - twelve, photometric=0)  # 12 bits by the maximum
    pixels, white_scaling = read_raster(tmp_path / "white-bare.tif")
    assert white_scaling == RasterScaling(12, "maximum value") and np.array_equal(pixels, black)
    eight = RNG.integers(0, 256, size=(40, 30), dtype=np.uint8)
    _single_sample_tiff(tmp_path / "black8.tif", eight, photometric=1)
    _single_sample_tiff(tmp_path / "white8.tif", 255 - eight, photometric=0)
    assert np.array_equal(read_raster(tmp_path / "black8.tif")[0], eight.astype(np.uint16) * 257)
    assert np.array_equal(read_raster(tmp_path / "white8.tif")[0], eight.astype(np.uint16) * 257)


def _stored_for_orientation(upright: np.ndarray) -> dict[int, np.ndarray]:
    """What a writer stores under each TIFF Orientation (where the 0th row and column go) for this upright view."""
    return {
        1: upright,  # 0th row top, 0th column left
        2: upright[:, ::-1],  # top, right
        3: upright[::-1, ::-1],  # bottom, right
        4: upright[::-1],  # bottom, left
        5: upright.T,  # 0th row left side, 0th column top
        6: np.rot90(upright),  # right side, top
        7: np.rot90(upright, 2).T,  # right side, bottom
        8: np.rot90(upright, -1),  # left side, bottom
    }


def test_every_tiff_orientation_reads_upright(tmp_path: Path) -> None:
    """Orientations 1-8 of a non-square image, 8- and 16-bit, plain and compressed, read as the upright array.

    Pillow scrambled 5-8 (it swaps width and height before decoding): they came out striped, with no error.
    """
    upright = _twelve_bit(rows=23, columns=37, maximum=4095)
    expected16 = np.rint(upright * (65535 / 4095)).astype(np.uint16)
    for orientation, stored in _stored_for_orientation(upright).items():
        for depth, values, expected in ((16, stored, expected16), (8, stored >> 4, (upright >> 4) * 257)):
            for compression in ("raw", "tiff_lzw"):
                name = f"o{orientation}-{depth}-{compression}.tif"
                Image.fromarray(np.ascontiguousarray(values, dtype=f"u{depth // 8}")).save(
                    tmp_path / name, tiffinfo={274: orientation}, compression=compression)
                pixels, _ = read_raster(tmp_path / name)
                assert pixels.shape == upright.shape and pixels.flags.c_contiguous, name
                assert np.array_equal(pixels, expected), name
    stored = _stored_for_orientation(upright)[6]  # the view after a thumbnail: the second page's Orientation
    Image.fromarray(np.full((4, 4), 7, dtype=np.uint16)).save(
        tmp_path / "pages.tif", save_all=True, append_images=[Image.fromarray(np.ascontiguousarray(stored))],
        tiffinfo={274: 6})
    assert np.array_equal(read_raster(tmp_path / "pages.tif")[0], expected16)
    Image.fromarray(upright).save(tmp_path / "o9.tif", tiffinfo={274: 9})
    with pytest.raises(InputError, match=r"o9\.tif: TIFF Orientation 9 is not read; save the image upright"):
        read_raster(tmp_path / "o9.tif")


def test_a_single_sample_tiff_that_is_not_grey_is_refused_by_its_photometric(tmp_path: Path) -> None:
    values = _twelve_bit()
    _single_sample_tiff(tmp_path / "grey.tif", values, photometric=1)  # the writer itself is sound
    assert read_raster(tmp_path / "grey.tif")[1] == RasterScaling(12, "maximum value")
    for photometric, name in ((2, "RGB"), (3, "palette")):
        _single_sample_tiff(tmp_path / f"{name}.tif", values, photometric=photometric)
        with pytest.raises(InputError, match=rf"{name}\.tif: TIFF PhotometricInterpretation {photometric} \({name}\) "
                                             "with one sample per pixel is not a grayscale image"):
            read_raster(tmp_path / f"{name}.tif")


@pytest.mark.parametrize("container", ["png", "tif"])
def test_a_sixteen_bit_colour_image_is_refused_not_cut_to_eight_bits(tmp_path: Path, container: str) -> None:
    """Pillow opens 16-bit RGB as 8-bit RGB: the low byte of every sample was dropped without a word."""
    import imagecodecs

    colour = np.random.default_rng(0).integers(0, 65535, size=(20, 16, 3), dtype=np.uint16)
    path = tmp_path / f"colour.{container}"
    encode = imagecodecs.png_encode if container == "png" else imagecodecs.tiff_encode
    path.write_bytes(encode(colour))
    with pytest.raises(InputError, match=r"colour\.(png|tif).*16-bit colour \(RGB\) image"):
        read_raster(path)
    eight = tmp_path / f"colour8.{container}"
    eight.write_bytes(encode((colour >> 8).astype(np.uint8)))
    assert read_raster(eight)[1].rule == "8-bit image", "8-bit colour is still read"
