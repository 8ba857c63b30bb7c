"""Fuzzing the loader: mutated bytes and headers give a valid image or our InputError, never anything else."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom.uid import JPEG2000Lossless, RLELossless

from tests.dicom_factory import ACCESSION, PATIENT_ID, PATIENT_NAME, encode, mg_dataset, stored_ramp
from trt_mass.errors import InputError
from trt_mass.inputs.dicom import load_mammogram


def _valid_bytes(syntax: str | None) -> bytes:
    ds = mg_dataset(stored_ramp(40, 32), WindowCenter="2048.5", WindowWidth="4096")
    if syntax:
        ds = encode(ds, syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


SEEDS = {name: _valid_bytes(syntax) for name, syntax in
         (("native", None), ("j2k", JPEG2000Lossless), ("rle", RLELossless))}


def _check(path: Path) -> None:
    try:
        mammogram = load_mammogram(path)
    except InputError as error:
        message = str(error)
        assert path.name in message
        for value in (PATIENT_NAME, PATIENT_ID, ACCESSION):
            assert value not in message
        return
    pixels = mammogram.pixels
    assert pixels.dtype == np.uint16 and pixels.ndim == 2 and pixels.flags.c_contiguous


mutation = st.tuples(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=255))


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(sorted(SEEDS)), flips=st.lists(mutation, max_size=12),
       cut=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
       insert=st.one_of(st.none(), st.tuples(st.integers(min_value=0, max_value=10**7), st.binary(max_size=64))))
def test_mutated_bytes(tmp_path: Path, seed: str, flips: list, cut: float | None, insert: tuple | None) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in flips:
        data[position % len(data)] = value
    if insert is not None:
        position = insert[0] % len(data)
        data[position:position] = insert[1]
    if cut is not None:
        data = data[: int(len(data) * cut)]
    path = tmp_path / "fuzz.dcm"
    path.write_bytes(bytes(data))
    _check(path)


HEADER_VALUES = {
    "Rows": st.integers(min_value=-5, max_value=70000),
    "Columns": st.integers(min_value=-5, max_value=70000),
    "BitsAllocated": st.sampled_from([0, 1, 8, 12, 16, 32, 64]),
    "BitsStored": st.integers(min_value=0, max_value=40),
    "HighBit": st.integers(min_value=0, max_value=40),
    "PixelRepresentation": st.sampled_from([0, 1, 2]),
    "SamplesPerPixel": st.integers(min_value=0, max_value=4),
    "NumberOfFrames": st.sampled_from(["0", "1", "2", "-1", "abc", "99999999"]),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", ""]),
    "WindowCenter": st.sampled_from(["0", "-1e30", "nan", "2048", "1e400", ""]),
    "WindowWidth": st.sampled_from(["0", "-5", "1", "nan", "4096", "inf", ""]),
    "VOILUTFunction": st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID", "WEIRD"]),
    "RescaleSlope": st.sampled_from(["1", "0", "-1", "nan", "1e308"]),
    "RescaleIntercept": st.sampled_from(["0", "-1e308", "inf"]),
    "ImagerPixelSpacing": st.sampled_from([["0.1", "0.1"], ["0", "0"], ["nan", "1"], ["-1", "2"], ["0.1"]]),
    "Modality": st.sampled_from(["MG", "CT", ""]),
}


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(sorted(SEEDS)),
       changes=st.dictionaries(st.sampled_from(sorted(HEADER_VALUES)), st.none(), max_size=5).flatmap(
           lambda keys: st.fixed_dictionaries({key: HEADER_VALUES[key] for key in keys})))
def test_mutated_headers(tmp_path: Path, seed: str, changes: dict) -> None:
    ds = pydicom.dcmread(io.BytesIO(SEEDS[seed]))
    for keyword, value in changes.items():
        try:
            setattr(ds, keyword, value)
        except (ValueError, TypeError, OverflowError):
            assume(False)  # pydicom will not even hold that value
    path = tmp_path / "header.dcm"
    try:
        ds.save_as(path, enforce_file_format=True)
    except Exception:
        assume(False)  # pydicom cannot write this combination: not an input a file could hold
    _check(path)


def test_a_swallowing_uid_is_not_echoed(tmp_path: Path) -> None:
    """Regression (found by test_mutated_bytes in CI): a corrupt length made SOP Class UID swallow the
    patient's name, and the "not a mammogram" message printed it."""
    ds = mg_dataset(stored_ramp(40, 32))
    ds.SOPClassUID = f"1.2.840.10008.5.1.4.1.1.1.2\x00\x08\x00PN {PATIENT_NAME} {PATIENT_ID}"
    del ds.Modality
    path = tmp_path / "swallowed.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError) as raised:
        load_mammogram(path)
    message = str(raised.value)
    assert "not a mammogram" in message and "malformed" in message and path.name in message
    assert PATIENT_NAME not in message and PATIENT_ID not in message
