"""Inputs of detect/watch: DICOM mammograms and research rasters, both as a Mammogram."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_mass.errors import InputError
from trt_mass.inputs.dicom import Mammogram, is_dicom_file, load_mammogram
from trt_mass.inputs.raster import RASTER_SUFFIXES, read_raster

if TYPE_CHECKING:
    from trt_mass.inputs.decoders import PixelDecoder

DICOM_SUFFIXES = (".dcm", ".dicom")


def is_candidate(path: Path) -> bool:
    """Files a folder scan picks up: DICOM/PNG/TIFF by suffix, else any file with the DICOM preamble (PACS
    exports are often named by their UID: "1.2.840.113619.2.5.1762" has the "suffix" .1762)."""
    if path.name.startswith(".") or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or suffix in RASTER_SUFFIXES:
        return True
    return is_dicom_file(path)


def collect_inputs(items: list[Path] | tuple[Path, ...]) -> list[Path]:
    """Expand folders (recursively, sorted); files given by name are kept even with other suffixes."""
    files: list[Path] = []
    for item in items:
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if is_candidate(p)))
        else:
            files.append(item)
    return files


def read_image(path: Path, raster_bits: int | None = None, decoder: PixelDecoder | None = None) -> Mammogram:
    """Load a DICOM or raster file as a Mammogram (InputError names the file and the reason).

    `raster_bits`: the significant bits of 16-bit PNG/TIFF files that neither say nor show them
    (trt_mass.inputs.raster); DICOM files and 8-bit images ignore it.
    `decoder`: decodes DICOM pixel data (trt_mass.inputs.decoders.open_decoder); None: pydicom's plugins.
    """
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        pixels, scaling = read_raster(path, raster_bits)
        return Mammogram(pixels=pixels, source=path.name, raster_scaling=scaling)
    if suffix in DICOM_SUFFIXES or is_dicom_file(path):
        return load_mammogram(path, decoder=decoder)
    if not path.exists():
        raise InputError(str(path), "no such file")
    raise InputError(str(path), "neither DICOM (no DICM preamble) nor a PNG/TIFF file")


def read_truth(path: Path) -> dict[str, np.ndarray]:
    """truth.csv (file, sop_instance_uid, x1, y1, x2, y2; original pixels) -> boxes [K, 4] per file name
    and per SOP Instance UID."""
    boxes: dict[str, list[list[float]]] = {}
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                box = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
                for key in (row.get("file"), row.get("sop_instance_uid")):
                    if key:
                        boxes.setdefault(key, []).append(box)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(str(path), f"not a truth CSV with file, sop_instance_uid, x1, y1, x2, y2 ({error})") from error
    return {key: np.asarray(value, dtype=np.float64).reshape(-1, 4) for key, value in boxes.items()}
