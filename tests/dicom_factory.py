"""Build small, real MG DICOM files for the tests, in any transfer syntax the loader supports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEGLossless,
    generate_uid,
)

from trt_mass.inputs.dicom import MG_FOR_PRESENTATION

PATIENT_NAME = "Doe^Jane^Test"
PATIENT_ID = "PID-7734219"
ACCESSION = "ACC-99812"
BIRTH_DATE = "19511231"


def stored_ramp(rows: int = 48, columns: int = 40, bits: int = 12, seed: int = 0) -> np.ndarray:
    """Stored values covering the whole bit range (a ramp plus noise), uint16 [rows, columns]."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 2**bits - 1, rows * columns).reshape(rows, columns)
    noisy = ramp + rng.normal(0, 2**bits / 64, size=ramp.shape)
    return np.clip(np.rint(noisy), 0, 2**bits - 1).astype(np.uint16)


def mg_dataset(stored: np.ndarray, *, bits: int = 12, photometric: str = "MONOCHROME2",
               **attributes: Any) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.AccessionNumber = ACCESSION
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = stored.astype("<u2").tobytes()
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def encode(ds: Dataset, syntax: UID | str, **options: Any) -> Dataset:
    """Re-encode `ds` in `syntax` (pydicom's encoders, or imagecodecs for HTJ2K / JPEG lossless)."""
    syntax = UID(str(syntax))
    if syntax == ExplicitVRLittleEndian:
        return ds
    if syntax in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = syntax
        return ds
    if syntax in (HTJ2KLossless, JPEGLossless):
        import imagecodecs

        stored = ds.pixel_array
        if syntax == HTJ2KLossless:
            frame = imagecodecs.htj2k_encode(stored, reversible=True)
        else:
            frame = imagecodecs.ljpeg_encode(stored, bitspersample=int(ds.BitsStored))
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
        return ds
    ds.compress(syntax, generate_instance_uid=False, **options)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
