"""Research rasters (PNG / TIFF, 8- or 16-bit grayscale) as the canonical model input: uint16 H x W.

8-bit values are scaled to the full uint16 range (v * 257) so they match 16-bit sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trt_mass.errors import InputError
from trt_mass.inputs.dicom import MAX_PIXELS  # the same limit as for DICOM: checked before decoding

RASTER_SUFFIXES = (".png", ".tif", ".tiff")


def read_raster(path: str | Path) -> np.ndarray:
    """Read a grayscale PNG/TIFF as uint16 [H, W] (C-contiguous); InputError names the file and reason."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(str(path), f"{width} x {height} pixels is too large")
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image)
                if array.dtype != np.uint16:
                    array = np.clip(array, 0, 65535).astype(np.uint16)
            elif mode == "L":
                array = np.asarray(image, dtype=np.uint16) * np.uint16(257)
            elif mode in ("RGB", "RGBA", "LA", "P"):
                array = np.asarray(image.convert("L"), dtype=np.uint16) * np.uint16(257)
            else:
                raise InputError(str(path), f"unsupported image mode {mode}")
    except FileNotFoundError as error:
        raise InputError(str(path), "no such file") from error
    except Image.DecompressionBombError as error:  # Pillow's own limit, checked when the header is read
        raise InputError(str(path), f"too large ({error})") from error
    except UnidentifiedImageError as error:
        raise InputError(str(path), "not a PNG/TIFF image Pillow can read") from error
    except (OSError, ValueError) as error:
        raise InputError(str(path), f"cannot decode ({error})") from error
    return np.ascontiguousarray(array, dtype=np.uint16)
