"""Stored DICOM values -> presentation values (uint16 0..65535, dense bright) through one lookup table.

The chain modality LUT -> VOI (window centre/width LINEAR / LINEAR_EXACT / SIGMOID, or the VOI LUT
Sequence) -> MONOCHROME1 / Presentation LUT Shape INVERSE inversion -> scaling to 0..65535 depends on a
pixel's stored value alone.  So it is evaluated once per possible stored value (65 536 values for 16
bits allocated, 256 for 8) in float32, exactly as it used to be evaluated per pixel, and the image is
mapped with one integer lookup into one output buffer: no float copies of a 26-megapixel image.  The one
image-dependent input, the data range of the "auto window" used when a file has no VOI, is taken from
the image's stored extremes (or from the looked-up values when a Modality LUT Sequence is not monotonic).

`presentation_values` is the per-value function; applied to a whole image it is the former per-pixel
path, which the tests compare the lookup against.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Stored dtypes pydicom returns for Bits Allocated 8 / 16 -> the unsigned dtype whose bits index the table.
_INDEX_DTYPES: dict[np.dtype, np.dtype] = {
    np.dtype(np.uint8): np.dtype(np.uint8), np.dtype(np.int8): np.dtype(np.uint8),
    np.dtype(np.uint16): np.dtype(np.uint16), np.dtype(np.int16): np.dtype(np.uint16),
}


def header_text(dataset: Any, keyword: str) -> str | None:
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    return str(value).strip() or None


def as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        return list(value)
    return [value]


def to_presentation(stored: np.ndarray, dataset: Any, voi_index: int = 0) -> np.ndarray:
    """Stored values [H, W] (uint8/int8/uint16/int16) -> presentation values, uint16 [H, W], C-contiguous.

    Other dtypes (no decoder returns them for Bits Allocated 8/16) go through `presentation_values`.
    """
    index_dtype = _INDEX_DTYPES.get(stored.dtype)
    if index_dtype is None:
        padding = padding_values(stored, dataset)
        data_range = None
        if padding is not None and not padding.all() and not _has_voi(dataset, voi_index):
            from pydicom.pixels import apply_modality_lut

            modality = np.asarray(apply_modality_lut(stored[~padding], dataset), dtype=np.float32)
            data_range = float(modality.min()), float(modality.max())
        values = presentation_values(stored, dataset, voi_index, data_range)
        if padding is not None:
            values[padding] = 0
        return np.ascontiguousarray(values)
    domain = np.arange(2 ** (8 * index_dtype.itemsize), dtype=index_dtype).view(stored.dtype)
    index = stored.view(index_dtype)
    padding = padding_values(domain, dataset)
    data_range = None if _has_voi(dataset, voi_index) else _stored_data_range(stored, index, domain, dataset, padding)
    table = presentation_values(domain, dataset, voi_index, data_range)
    if padding is not None:
        table[padding] = 0  # outside the exposed field (a CR plate's border): air, never dense tissue
    # np.take, not table[index]: fancy indexing is 2.5x slower on AVX2-only CPUs (83 against 33 ms for
    # 12 megapixels), where it was no faster than the float path.
    return np.ascontiguousarray(np.take(table, index))


def presentation_values(stored: np.ndarray, dataset: Any, voi_index: int = 0,
                        data_range: tuple[float, float] | None = None) -> np.ndarray:
    """Stored values (any shape) -> presentation values, uint16, elementwise.

    `data_range`: the (lowest, highest) modality value of the image, for the auto window of files with
    no VOI; None takes it from `stored` itself (right when `stored` is the whole image).
    """
    from pydicom.pixels import apply_modality_lut

    # float32 is exact for every 16-bit stored value.
    modality = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float32)
    unit = _apply_voi_unit(modality, dataset, voi_index, data_range)
    if inverted(dataset):
        unit = 1.0 - unit
    np.clip(unit, 0.0, 1.0, out=unit)
    unit *= 65535.0
    return np.rint(unit).astype(np.uint16)


def _has_voi(dataset: Any, voi_index: int) -> bool:
    return bool(dataset.get("VOILUTSequence")) or _window_values(dataset, voi_index) is not None


def padding_values(stored: np.ndarray, dataset: Any) -> np.ndarray | None:
    """Which of `stored` (stored values, any shape) are Pixel Padding (PS3.3 C.7.5.1.1.2): the Pixel
    Padding Value, or the range from it to Pixel Padding Range Limit; None when the file declares none."""
    value = _padding_number(dataset, "PixelPaddingValue")
    if value is None:
        return None
    limit = _padding_number(dataset, "PixelPaddingRangeLimit")
    low, high = (value, value) if limit is None else (min(value, limit), max(value, limit))
    wide = stored.astype(np.int64)
    return (wide >= low) & (wide <= high)


def _padding_number(dataset: Any, keyword: str) -> int | None:
    raw = dataset.get(keyword)
    if isinstance(raw, bytes):  # a VR left unresolved ("US or SS"): the first 16-bit word
        raw = int.from_bytes(raw[:2], "big" if dataset.get("is_little_endian") is False else "little") \
            if len(raw) >= 2 else None
    values = as_list(raw)
    try:
        value = int(values[0]) if values else None
    except (TypeError, ValueError):
        return None
    if value is None:
        return None
    # US or SS by Pixel Representation, and often written as US for signed data: read it as the pixels are.
    if int(dataset.get("PixelRepresentation", 0) or 0) == 1 and value > 0x7FFF:
        value -= 0x10000
    return value


def _stored_data_range(stored: np.ndarray, index: np.ndarray, domain: np.ndarray,
                       dataset: Any, padding: np.ndarray | None = None) -> tuple[float, float]:
    """The image's lowest and highest modality values, without a float copy of the image; padding
    values (a boolean per domain value) are left out."""
    from pydicom.pixels import apply_modality_lut

    modality_table = np.asarray(apply_modality_lut(domain, dataset), dtype=np.float32)
    if padding is not None:  # the extremes of the values that occur and are not padding
        present = np.bincount(index.ravel(), minlength=domain.size).astype(bool) & ~padding
        if not present.any():
            return 0.0, 0.0
        return float(modality_table[present].min()), float(modality_table[present].max())
    if "ModalityLUTSequence" in dataset:  # a table need not be monotonic: look every pixel up
        looked_up = np.take(modality_table, index)
        return float(looked_up.min()), float(looked_up.max())
    # A rescale is affine, so the extremes of the modality values lie at the stored extremes.
    ends = modality_table[np.array([stored.min(), stored.max()], dtype=stored.dtype).view(index.dtype)]
    return float(ends.min()), float(ends.max())


def inverted(dataset: Any) -> bool:
    # MONOCHROME1 (minimum = white) needs one inversion; the MG IODs pair it with Presentation LUT
    # Shape INVERSE, which describes that same inversion, so the two are not applied twice.
    shape = (header_text(dataset, "PresentationLUTShape") or "").upper()
    return bool(dataset.PhotometricInterpretation == "MONOCHROME1" or shape == "INVERSE")


def _window_values(dataset: Any, voi_index: int) -> tuple[float, float] | None:
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    centers = as_list(dataset.WindowCenter)
    widths = as_list(dataset.WindowWidth)
    if not centers or not widths:
        return None
    count = min(len(centers), len(widths))
    index = voi_index if voi_index < count else 0
    if index == 0:  # the default window unusable (width 0 from some units): the first usable one instead
        linear = (header_text(dataset, "VOILUTFunction") or "LINEAR").upper() == "LINEAR"
        usable = [i for i in range(count) if _finite(centers[i], widths[i])
                  and (float(widths[i]) >= 1.0 if linear else float(widths[i]) > 0.0)]
        index = usable[0] if usable else 0
    center, width = float(centers[index]), float(widths[index])
    if not (math.isfinite(center) and math.isfinite(width)):
        return None
    return center, width


def _finite(*values: Any) -> bool:
    try:
        return all(math.isfinite(float(value)) for value in values)
    except (TypeError, ValueError):
        return False


def _apply_voi_unit(modality: np.ndarray, dataset: Any, voi_index: int,
                    data_range: tuple[float, float] | None) -> np.ndarray:
    """Modality values -> [0, 1] by the VOI LUT Sequence, the window (PS3.3 C.11.2.1.2), or the data range."""
    if dataset.get("VOILUTSequence"):
        return _apply_voi_lut_sequence(modality, dataset, voi_index)
    window = _window_values(dataset, voi_index)
    if window is None:
        # No VOI: stretch the data's own range, as viewers do ("auto window").
        low, high = data_range if data_range is not None else (float(modality.min()), float(modality.max()))
        return (modality - np.float32(low)) / np.float32(high - low) if high > low else np.zeros_like(modality)
    center, width = window
    function = (header_text(dataset, "VOILUTFunction") or "LINEAR").upper()
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"window width {width} must be > 0 for SIGMOID")
        with np.errstate(over="ignore"):  # exp overflows to inf far outside the window: 1 / inf is the 0 wanted
            return (1.0 / (1.0 + np.exp(-4.0 * (modality - center) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"window width {width} must be > 0 for LINEAR_EXACT")
        return np.clip((modality - np.float32(center - width / 2)) / np.float32(width), 0.0, 1.0)
    if width < 1:
        raise ValueError(f"window width {width} must be >= 1 for LINEAR")
    # LINEAR: y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped (output range normalised to [0, 1]).
    if width == 1:
        return (modality > center - 0.5).astype(np.float32)
    return np.clip((modality - np.float32(center - 0.5)) / np.float32(width - 1) + np.float32(0.5), 0.0, 1.0)


def _apply_voi_lut_sequence(modality: np.ndarray, dataset: Any, voi_index: int) -> np.ndarray:
    from pydicom.pixels import apply_voi

    items = dataset.VOILUTSequence
    index = voi_index if voi_index < len(items) else 0
    depth = int(items[index].LUTDescriptor[2])
    if depth <= 8:
        looked_up = _apply_narrow_lut(np.rint(modality).astype(np.int64), items[index], dataset)
    else:  # apply_voi indexes its LUT with integers; modality values from a rescale are integral here.
        looked_up = apply_voi(np.rint(modality).astype(np.int64), dataset, index)
    return looked_up.astype(np.float32) / np.float32(2**depth - 1)


def _apply_narrow_lut(modality: np.ndarray, item: Any, dataset: Any) -> np.ndarray:
    """A VOI LUT of 8 bits or fewer per entry.  pydicom refuses the standard packed form (one byte per
    entry in OW) and misreads the legacy form (one entry per 16-bit word), so both are read here."""
    entries, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    if first > 0x7FFF and int(dataset.get("PixelRepresentation", 0) or 0) == 1:
        first -= 0x10000  # the first mapped value is SS for signed data, often written as US
    data = item.LUTData
    if isinstance(data, bytes):
        packed = len(data) < 2 * entries
        order = ">" if dataset.get("is_little_endian") is False else "<"
        table = np.frombuffer(data, dtype=np.uint8 if packed else np.dtype(f"{order}u2"))[:entries]
    else:
        table = np.asarray(as_list(data), dtype=np.int64)[:entries]
    if table.size < entries:
        raise ValueError(f"the VOI LUT has {table.size} entries, its descriptor says {entries}")
    return np.take(table.astype(np.int64), np.clip(modality - first, 0, entries - 1))
