"""Research rasters (PNG / TIFF, 8- or 16-bit grayscale) as the canonical model input: uint16 H x W.

Values are scaled to the full uint16 range the way a viewer shows them, from the number of bits the
image really uses (public sets ship 12- or 14-bit mammograms in 16-bit PNGs; passed through, they
would look nearly black to the model):

    --raster-bits N          the user says so, for 16-bit files (refused when a value needs more bits)
    8-bit image              L / RGB / palette images: v * 257
    png sBIT                 the PNG's significant-bits chunk
    tiff SMaxSampleValue / MaxSampleValue / BitsPerSample   the TIFF's own statement
    maximum value            else: the smallest of 10, 12, 14, 16 bits that holds the image's maximum

A stated bit depth that the values contradict (a maximum above it) falls back to the maximum rule.
32-bit integer images must hold 0..65535 (a negative or larger value has no scale we could guess: refused,
never clipped). A multi-page TIFF is read from its largest page (vendors add thumbnails or reduced
resolutions); two or more pages of that size are a stack, not one view, and are refused.
That also protects files written as the PNG specification asks: their samples are already scaled to
the full 16 bits (sBIT then only says how many of them are significant), so their maximum exceeds the
stated depth and they are read as 16-bit.  The rule that applied travels with the image
(RasterScaling) into the result.

A TIFF's Orientation (1-8) is applied here to the values as stored, and a MINISWHITE TIFF (white is 0)
is inverted within its significant bits, so that dense tissue is bright as in MONOCHROME2; a
single-sample TIFF of another photometric (palette, RGB, ...) is refused.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from trt_mass.errors import InputError
from trt_mass.inputs.dicom import MAX_PIXELS  # the same limit as for DICOM: checked before decoding

RASTER_SUFFIXES = (".png", ".tif", ".tiff")
CONTAINER_BITS = (10, 12, 14, 16)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_TAGS = ((341, "tiff SMaxSampleValue"), (281, "tiff MaxSampleValue"))
TIFF_BITS_PER_SAMPLE = 258
TIFF_PHOTOMETRIC, TIFF_ORIENTATION, TIFF_SAMPLES_PER_PIXEL = 262, 274, 277
MINISWHITE = 0
PHOTOMETRIC_NAMES = {2: "RGB", 3: "palette", 4: "transparency mask", 5: "CMYK", 6: "YCbCr", 8: "CIELab"}
# TIFF Orientation -> (transpose, flip rows, flip columns) that turn the stored array upright;
# e.g. 6: the stored 0th row is the right-hand side, its 0th column the top.
UPRIGHT = {1: (False, False, False), 2: (False, False, True), 3: (False, True, True), 4: (False, True, False),
           5: (True, False, False), 6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}
TIFF_HEADERS = {b"II*\x00": ("<", False), b"MM\x00*": (">", False), b"II+\x00": ("<", True), b"MM\x00+": (">", True)}
TIFF_VALUE_FORMATS = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8


@dataclass(frozen=True)
class RasterScaling:
    """How a raster's values were scaled to 0..65535: the significant bits, and the rule that found them."""

    bits: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "rule": self.rule}


def read_raster(path: str | Path, bits: int | None = None) -> tuple[np.ndarray, RasterScaling]:
    """Read a grayscale PNG/TIFF as uint16 [H, W] (C-contiguous) and how it was scaled.

    `bits`: the significant bits, when the file does not say and its maximum would mislead.
    InputError names the file and the reason.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "TIFF"):  # Pillow opens by content: a JPEG named .png is lossy
                raise InputError(str(path), f"a {image.format or 'non-PNG/TIFF'} image named {path.suffix}, "
                                            "not PNG/TIFF")
            page = _seek_largest_page(path, image)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(str(path), f"{width} x {height} pixels is too large")
            orientation, white_is_zero = _tiff_layout(path, image)
            values, stated = _stored_values(path, image, page, orientation)
    except FileNotFoundError as error:
        raise InputError(str(path), "no such file") from error
    except Image.DecompressionBombError as error:  # Pillow's own limit, checked when the header is read
        raise InputError(str(path), f"too large ({error})") from error
    except UnidentifiedImageError as error:
        raise InputError(str(path), _unreadable_reason(path)) from error
    except (OSError, ValueError) as error:
        raise InputError(str(path), f"cannot decode ({error})") from error
    scaling = _scaling(path, values, stated, bits)
    if white_is_zero and values.dtype == np.uint16:  # Pillow inverts 8 bits and fewer itself, not 16
        values = ((1 << scaling.bits) - 1) - values  # within the significant bits: 12 in 16 flip around 4095
    return _scaled(_upright(values, orientation), scaling.bits), scaling


def _seek_largest_page(path: Path, image: Image.Image) -> int:
    """Make the page with the most pixels current and return it; InputError when several pages share that size."""
    pages = getattr(image, "n_frames", 1)
    if pages <= 1:
        return 0
    sizes = []
    for page in range(pages):
        image.seek(page)
        sizes.append(image.size[0] * image.size[1])
    largest = max(sizes)
    if sizes.count(largest) > 1:
        raise InputError(str(path), f"{sizes.count(largest)} of its {pages} pages are full-size images: a stack, "
                                    "not one view (save each view as its own file)")
    image.seek(sizes.index(largest))
    return sizes.index(largest)


def _tiff_layout(path: Path, image: Image.Image) -> tuple[int, bool]:
    """A TIFF page's Orientation (1: upright, also for PNG) and whether it stores white as 0 (MINISWHITE)."""
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None:
        return 1, False
    orientation = _first(tags.get(TIFF_ORIENTATION, 1))
    if orientation not in UPRIGHT:
        raise InputError(str(path), f"TIFF Orientation {orientation} is not read; save the image upright")
    return orientation, _first(tags.get(TIFF_PHOTOMETRIC)) == MINISWHITE


def _first(value: Any) -> Any:
    """A tag's value: Pillow gives a tuple for a tag that holds several (or one, for some writers)."""
    return value[0] if isinstance(value, tuple) and value else value


def _stored_values(path: Path, image: Image.Image, page: int,
                   orientation: int) -> tuple[np.ndarray, RasterScaling | None]:
    """The values in the file's own row order, whatever its Orientation.

    Pillow applies the Orientation itself, but for 5-8 it swaps width and height before decoding and
    its memory-mapped path then lays the stored rows out with the swapped width (striped garbage, no
    error): a copy that says Orientation 1 is decoded as stored, and _upright turns it.
    """
    if orientation == 1:
        return _values(path, image)
    with Image.open(io.BytesIO(_as_upright_tiff(path, page, orientation))) as stored:
        stored.seek(page)
        return _values(path, stored)


def _as_upright_tiff(path: Path, page: int, orientation: int) -> bytes:
    """The file's bytes with the page's Orientation entry set to 1; InputError if it cannot be found."""
    data = bytearray(path.read_bytes())
    try:
        order, entries = _ifd_entries(data, page)
        kind, at = entries[TIFF_ORIENTATION]
        struct.pack_into(order + TIFF_VALUE_FORMATS[kind], data, at, 1)
    except (KeyError, struct.error) as error:
        raise InputError(str(path), f"TIFF Orientation {orientation} is not read; save the image upright") from error
    return bytes(data)


def _ifd_entries(data: bytes | bytearray, page: int) -> tuple[str, dict[int, tuple[int, int]]]:
    """The byte order and entries (tag -> type, offset of the value field) of a TIFF's page-th IFD.

    KeyError for a header that is not TIFF, struct.error for offsets outside the file.
    """
    order, big = TIFF_HEADERS[bytes(data[:4])]
    count_format, offset_format, entry_size = ("Q", "Q", 20) if big else ("H", "I", 12)
    count_size, value_size = struct.calcsize(count_format), struct.calcsize(offset_format)
    offset = struct.unpack_from(order + offset_format, data, 8 if big else 4)[0]
    for _ in range(page):  # the IFDs are chained: each ends with the next one's offset
        count = struct.unpack_from(order + count_format, data, offset)[0]
        offset = struct.unpack_from(order + offset_format, data, offset + count_size + count * entry_size)[0]
    entries = {}
    for index in range(struct.unpack_from(order + count_format, data, offset)[0]):
        at = offset + count_size + index * entry_size
        tag, kind = struct.unpack_from(order + "HH", data, at)
        entries[tag] = (kind, at + entry_size - value_size)
    return order, entries


def _unreadable_reason(path: Path) -> str:
    """Why Pillow could not open a file; for a single-sample TIFF that is not grey, its photometric."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4)
            if data in TIFF_HEADERS:  # the whole file only for a TIFF: the first IFD may be at its end
                data += handle.read()
        order, entries = _ifd_entries(data, 0)
        photometric, samples = (_inline_value(data, order, entries, tag) for tag in (TIFF_PHOTOMETRIC,
                                                                                    TIFF_SAMPLES_PER_PIXEL))
    except (OSError, KeyError, struct.error):
        return "not a PNG/TIFF image Pillow can read"
    if photometric not in (None, 0, 1) and samples in (None, 1):
        name = PHOTOMETRIC_NAMES.get(photometric, "unknown")
        return (f"TIFF PhotometricInterpretation {photometric} ({name}) with one sample per pixel is not a "
                "grayscale image (MINISWHITE 0 or MINISBLACK 1)")
    return "not a PNG/TIFF image Pillow can read"


def _inline_value(data: bytes, order: str, entries: dict[int, tuple[int, int]], tag: int) -> int | None:
    """A single BYTE / SHORT / LONG value held in its IFD entry, or None without the tag."""
    if tag not in entries:
        return None
    kind, at = entries[tag]
    return int(struct.unpack_from(order + TIFF_VALUE_FORMATS[kind], data, at)[0])


def _upright(values: np.ndarray, orientation: int) -> np.ndarray:
    """The stored array turned as the TIFF Orientation says (a view; _scaled makes it contiguous)."""
    transpose, flip_rows, flip_columns = UPRIGHT[orientation]
    turned = values.T if transpose else values
    return turned[:: -1 if flip_rows else 1, :: -1 if flip_columns else 1]


def _values(path: Path, image: Image.Image) -> tuple[np.ndarray, RasterScaling | None]:
    """The stored values (uint8 or uint16) and the bit depth the file states, if it states one."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        if array.dtype != np.uint16:
            array = _as_uint16(path, array)
        return array, _stated_bits(path, image)
    if mode == "L":
        return np.asarray(image, dtype=np.uint8), RasterScaling(8, "8-bit image")
    if mode in ("RGB", "RGBA", "LA", "P"):
        if _sample_bits(image) > 8:  # Pillow keeps only the top 8 bits of 16-bit colour samples
            raise InputError(str(path), f"a 16-bit colour ({mode}) image: only its top 8 bits could be read; "
                                        "save the mammogram as 16-bit grayscale")
        return np.asarray(image.convert("L"), dtype=np.uint8), RasterScaling(8, "8-bit image")
    raise InputError(str(path), f"unsupported image mode {mode}")


def _sample_bits(image: Image.Image) -> int:
    """Bits per sample as the file stores them (Pillow's mode says 8 for 16-bit colour)."""
    if image.format == "PNG":
        return int(image.info.get("bitdepth") or _png_bit_depth(image))
    tags = getattr(image, "tag_v2", None)
    value = tags.get(TIFF_BITS_PER_SAMPLE, 8) if tags is not None else 8
    return int(max(value) if isinstance(value, tuple) else value)


def _png_bit_depth(image: Image.Image) -> int:
    """The IHDR bit depth (byte 24 of the file)."""
    handle = getattr(image, "fp", None)
    if handle is None:
        return 8
    position = handle.tell()
    try:
        handle.seek(24)
        depth = handle.read(1)
    finally:
        handle.seek(position)
    return depth[0] if depth else 8


def _as_uint16(path: Path, array: np.ndarray) -> np.ndarray:
    """A 32-bit integer image whose values fit 0..65535 as uint16; InputError naming the range otherwise."""
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low < 0 or high > 65535:
        raise InputError(str(path), f"32-bit values from {low} to {high} do not fit 0..65535; convert it to "
                                    "16 bits with the window a viewer would use")
    return array.astype(np.uint16)


def _stated_bits(path: Path, image: Image.Image) -> RasterScaling | None:
    if image.format == "PNG":
        bits = _png_significant_bits(path)
        return None if bits is None else RasterScaling(bits, "png sBIT")
    if image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        for tag, rule in TIFF_TAGS:
            value = tags.get(tag)
            if value:
                maximum = int(value[0] if isinstance(value, tuple) else value)
                return RasterScaling(max(1, maximum.bit_length()), rule) if maximum > 0 else None
        per_sample = tags.get(TIFF_BITS_PER_SAMPLE)
        per_sample = per_sample[0] if isinstance(per_sample, tuple) else per_sample
        if per_sample and 8 < int(per_sample) < 16:
            return RasterScaling(int(per_sample), "tiff BitsPerSample")
    return None


def _png_significant_bits(path: Path) -> int | None:
    """The grey channel's significant bits from the PNG's sBIT chunk (it comes before IDAT), if any."""
    with open(path, "rb") as handle:
        if handle.read(8) != PNG_SIGNATURE:
            return None
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return None
            length, kind = struct.unpack(">I4s", header)
            if kind == b"sBIT":
                data = handle.read(length)
                return int(data[0]) if data else None
            if kind in (b"IDAT", b"IEND"):
                return None
            handle.seek(length + 4, 1)  # the data and its CRC


def _scaling(path: Path, values: np.ndarray, stated: RasterScaling | None, bits: int | None) -> RasterScaling:
    maximum = int(values.max()) if values.size else 0
    if values.dtype == np.uint8:
        return RasterScaling(8, "8-bit image")  # whatever --raster-bits says for 16-bit files
    if bits is not None:
        if maximum >= 1 << bits:
            raise InputError(str(path), f"--raster-bits {bits}: the image holds values up to {maximum}, which need "
                                        f"{maximum.bit_length()} bits")
        return RasterScaling(bits, "--raster-bits")
    if stated is not None and 1 <= stated.bits <= 16 and maximum < 1 << stated.bits:
        return stated
    smallest = next(b for b in CONTAINER_BITS if maximum < 1 << b)
    return RasterScaling(smallest, "maximum value")


def _scaled(values: np.ndarray, bits: int) -> np.ndarray:
    """Values of `bits` significant bits stretched to 0..65535 (8-bit: exactly v * 257), rounded."""
    full = (1 << bits) - 1
    if full == 65535:
        return np.ascontiguousarray(values, dtype=np.uint16)
    wide = values.astype(np.uint32)
    return np.ascontiguousarray((wide * 65535 + full // 2) // full, dtype=np.uint16)
