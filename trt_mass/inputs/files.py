"""Inputs of detect/watch: DICOM mammograms and research rasters, both as a Mammogram."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_mass.errors import ConfigError, InputError
from trt_mass.inputs.dicom import Mammogram, check_regular_file, is_dicom_file, load_mammogram
from trt_mass.inputs.raster import RASTER_SUFFIXES, read_raster

if TYPE_CHECKING:
    from trt_mass.inputs.decoders import PixelDecoder

DICOM_SUFFIXES = (".dcm", ".dicom")
MIN_SIDE = 16  # pixels; real views have hundreds


def is_candidate(path: Path) -> bool:
    """Files a folder scan picks up: DICOM/PNG/TIFF by suffix, else any file with the DICOM preamble (PACS
    exports are often named by their UID: "1.2.840.113619.2.5.1762" has the "suffix" .1762)."""
    if path.name.startswith(".") or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or suffix in RASTER_SUFFIXES:
        return True
    return is_dicom_file(path)


def collect_inputs(items: list[Path] | tuple[Path, ...], out_dir: Path | None = None) -> list[Path]:
    """Expand folders (recursively, sorted); files given by name are kept even with other suffixes.

    `out_dir`: the run's output folder; a folder scan skips what lies in it (earlier results and their
    DICOM objects are not mammograms to detect on), and it must not be one of the input folders, where
    results would mix with the inputs and an overlay could replace an input of the same name (ConfigError).
    """
    outputs = out_dir.resolve() if out_dir is not None else None
    files: list[Path] = []
    for item in items:
        if not item.is_dir():
            files.append(item)
            continue
        if outputs is not None and item.resolve() == outputs:
            raise ConfigError(f"--out {out_dir} is the input folder {item}: results would mix with the inputs; "
                              f"give a folder of its own (e.g. {item / 'results'})")
        found = (p for p in item.rglob("*") if is_candidate(p))
        files.extend(sorted(p for p in found if outputs is None or not p.resolve().is_relative_to(outputs)))
    return files


def read_image(path: Path, raster_bits: int | None = None, decoder: PixelDecoder | None = None) -> Mammogram:
    """Load a DICOM or raster file as a Mammogram (InputError names the file and the reason).

    `raster_bits`: the significant bits of 16-bit PNG/TIFF files that neither say nor show them
    (trt_mass.inputs.raster); DICOM files and 8-bit images ignore it.
    `decoder`: decodes DICOM pixel data (trt_mass.inputs.decoders.open_decoder); None: pydicom's plugins.
    """
    check_regular_file(path)
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        pixels, scaling = read_raster(path, raster_bits)
        return _with_content(Mammogram(pixels=pixels, source=path.name, raster_scaling=scaling), path)
    if suffix in DICOM_SUFFIXES or is_dicom_file(path):
        return _with_content(load_mammogram(path, decoder=decoder), path)
    raise InputError(str(path), "neither DICOM (no DICM preamble) nor a PNG/TIFF file")


def _with_content(mammogram: Mammogram, path: Path) -> Mammogram:
    """The mammogram, unless it is a sliver or every pixel is one value: a blank image (zero pixel data, a
    window far off the data) would come back as a result without findings, which a reader takes for a
    negative."""
    pixels = mammogram.pixels
    if min(pixels.shape) < MIN_SIDE:
        raise InputError(str(path), f"{pixels.shape[0]} x {pixels.shape[1]} pixels is too small for a mammogram")
    if pixels.min() == pixels.max():
        raise InputError(str(path), f"blank image: every pixel is {int(pixels.flat[0])} of 65535 after the "
                                    "modality and VOI transforms; nothing to read")
    return mammogram


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
