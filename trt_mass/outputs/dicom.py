"""DICOM results a PACS can show, and what they share: a Mammography CAD SR (cad_sr), a GSPS with the
marks and a burned-in Secondary Capture (presentation).

All three go into the source study (the patient and study modules are copied from the source image:
the only place patient data is copied), each in a new series, with UIDs derived from the source SOP
Instance UID and the model hash, so that reprocessing replaces instead of duplicating.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.atomic import write_atomic
from trt_mass.errors import ConfigError, InputError
from trt_mass.geometry import Finding
from trt_mass.version import __version__

OUTPUT_KINDS = ("sr", "gsps", "sc")
MANUFACTURER = "trt_mass"
MODEL_NAME = "trt_mass RetinaNet mass detector"
SERIES = {  # kind -> (series number, series description)
    "sr": (9901, "trt_mass CAD SR (mass detection, not for diagnosis alone)"),
    "gsps": (9902, "trt_mass CAD marks (presentation state)"),
    "sc": (9903, "trt_mass CAD marks burned in - NOT FOR DIAGNOSIS"),
}
SC_MAX_SIDE = 2048


def parse_kinds(text: str) -> tuple[str, ...]:
    """ "sr,gsps" -> ("sr", "gsps"); "none" or "" -> (); ConfigError for an unknown kind."""
    if text.strip().lower() == "none":
        return ()
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown:
        raise ConfigError(f"unknown DICOM output {unknown}; choose from {', '.join(OUTPUT_KINDS)}")
    return kinds


_UID_SHAPE = re.compile(r"[0-9]+(\.[0-9]+)*")


def derived_uid(*parts: str) -> str:
    """A deterministic UID under 2.25 from the given parts (same parts, same UID)."""
    digest = hashlib.sha256("|".join(("trt_mass", *parts)).encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


@dataclass(frozen=True)
class ModelIdentity:
    """What the outputs say about the algorithm."""

    weights_sha256: str
    model_id: str
    precision: str

    @property
    def algorithm_version(self) -> str:
        return f"trt_mass {__version__}; weights {self.weights_sha256[:16]}; {self.precision}"


# Type 2 attributes of the patient / study modules that anonymised sources often lack: present but empty.
TYPE2_DEFAULTS = {"PatientName": "", "PatientID": "", "PatientBirthDate": "", "PatientSex": "", "StudyID": "",
                  "StudyDate": "", "StudyTime": "", "ReferringPhysicianName": "", "AccessionNumber": ""}


def read_source(path: Path) -> Any:
    """The source image's header (no pixels): the study, patient and reference data the outputs copy."""
    import pydicom

    try:
        source = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as error:
        raise InputError(str(path), f"cannot read the source header for DICOM outputs ({error})") from error
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns"):
        if not source.get(keyword):
            raise InputError(str(path), f"no {keyword}: DICOM outputs cannot reference this image")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        uid = str(source.get(keyword))
        # Leading zeros in a component are tolerated (old units write them; PACS take them); letters, empty
        # components and over-long UIDs make the references invalid and are refused by PACS and validators.
        if len(uid) > 64 or not _UID_SHAPE.fullmatch(uid):
            raise InputError(str(path), f"its {keyword} {uid[:80]!r} is not a UID (digits and dots, at most 64 "
                                        "characters): DICOM outputs cannot reference this image")
    from trt_mass.inputs.dicom import lift_functional_groups

    lift_functional_groups(source)  # the laterality of an enhanced (Breast Projection) image
    for keyword, value in TYPE2_DEFAULTS.items():
        if keyword not in source:
            setattr(source, keyword, value)
    return source


def series_and_instance_uids(source: Any, model: ModelIdentity, kind: str,
                             result_stem: str | None = None) -> tuple[str, str]:
    """(series, instance) UIDs: the same image, model and kind give the same UIDs, so a resend replaces.

    A result filed under another stem than the source's SOP Instance UID ("<uid>-2": a second image
    that reuses the UID with other pixels) gets its own instance UID: the same one would make a PACS
    drop it as a duplicate of the first, or replace the first's marks with its own.
    """
    source_uid = str(source.SOPInstanceUID)
    variant = (result_stem,) if result_stem not in (None, source_uid) else ()
    series_uid = derived_uid(str(source.StudyInstanceUID), model.weights_sha256, kind, "series")
    instance_uid = derived_uid(source_uid, model.weights_sha256, kind, "instance", *variant)
    return series_uid, instance_uid


def source_laterality(source: Any) -> str | None:
    """Image Laterality, else the series' Laterality, else an enhanced image's Frame Laterality."""
    for keyword in ("ImageLaterality", "Laterality", "FrameLaterality"):
        value = str(source.get(keyword) or "").strip().upper()
        if value:
            return value
    return None


def stamp_series(dataset: Any, kind: str, source: Any) -> None:
    dataset.SeriesDescription = SERIES[kind][1]
    if kind == "sr":
        return  # the SR Document Series has no Laterality
    # General Series Laterality (Type 2C for paired body parts): the analysed breast.
    laterality = source_laterality(source)
    dataset.Laterality = laterality if laterality in ("L", "R") else ""


def write_dicom_outputs(source_path: Path, pixels: np.ndarray, findings: list[Finding], model: ModelIdentity,
                        out_dir: Path, kinds: tuple[str, ...], stem: str) -> dict[str, Path]:
    """Build the requested objects, then write them as <stem>.<kind>.dcm (stem: the result's name).

    Every object is built before any is written, so a header the builders refuse (a date that is no date,
    an unknown character set) leaves no partial set behind: InputError naming the file and the value.
    """
    source = read_source(source_path)
    encoded = {kind: _build(kind, source, pixels, findings, model, source_path, stem) for kind in kinds}
    written = {}
    for kind, data in encoded.items():
        target = out_dir / f"{stem}.{kind}.dcm"
        write_atomic(target, data)
        written[kind] = target
    return written


def _build(kind: str, source: Any, pixels: np.ndarray, findings: list[Finding], model: ModelIdentity,
           source_path: Path, stem: str) -> bytes:
    """The encoded object of `kind`; InputError when the source header does not make one."""
    # Imported here: the builders import this module for what the three objects share.
    from trt_mass.outputs.cad_sr import build_cad_sr
    from trt_mass.outputs.presentation import build_gsps, build_secondary_capture

    builders = {"sr": lambda: build_cad_sr(source, findings, model, stem),
                "gsps": lambda: build_gsps(source, findings, model, stem),
                "sc": lambda: build_secondary_capture(source, pixels, findings, model, stem)}
    try:
        buffer = io.BytesIO()
        builders[kind]().save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()
    except (ValueError, TypeError, AttributeError, LookupError) as error:
        raise InputError(str(source_path), f"its header cannot be copied into a DICOM {kind.upper()} "
                                           f"object: {error}") from error
