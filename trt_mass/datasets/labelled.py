"""Labelled data sets for training and evaluation, and patient-wise K-fold splits.

Specs (`--data`):
- `DIR` or `csv:DIR`: images (DICOM/PNG/TIFF) with DIR/truth.csv (file, sop_instance_uid, x1, y1, x2, y2,
  optional patient_id; `trtmass synth` writes it). `file` is the path relative to DIR; every row must
  match an image and hold a finite box with area, once. Images without rows are normals.
- `mias:DIR`: the mini-MIAS layout (images/, images.csv, mass_boxes.csv).
- `inbreast:DIR`: INbreast (AllDICOMs/*.dcm, AllXML/*.xml); masses only; boxes from the ROI polygons'
  min/max, enlarged by 10 % in width and height as the paper does.
Boxes are xyxy in original pixels.
"""

from __future__ import annotations

import csv
import hashlib
import math
import plistlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trt_mass.errors import ConfigError, InputError
from trt_mass.inputs.files import collect_inputs

MIAS_PIXEL_SPACING_MM = 0.2  # mini-MIAS: 200 um


@dataclass
class Sample:
    """One labelled image.

    Attributes:
        boxes: [G, 4] xyxy original pixels (masses); empty for images without a mass.
        normal: True when the image has no finding at all (used for FP-per-normal-image figures).
        pixel_spacing_mm: for sources that carry none (rasters); DICOM files use their own.
    """

    path: Path
    image_id: str
    patient_id: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    normal: bool = True
    pixel_spacing_mm: float | None = None


MIN_INSIDE_FRACTION = 0.5  # annotations drawn a little past the skin line are common; half outside is not


def check_boxes_on_image(sample: Sample, height: int, width: int) -> None:
    """Refuse truth that does not lie on its image (height x width original pixels).

    A box mostly outside (another coordinate origin, another image's size, x and y swapped) can never be
    hit: it would count as a missed mass and lower TPR, or teach training a mass that is not there.
    """
    for box in np.asarray(sample.boxes, dtype=np.float64).reshape(-1, 4):
        inside_w = max(0.0, min(box[2], width) - max(box[0], 0.0))
        inside_h = max(0.0, min(box[3], height) - max(box[1], 0.0))
        area = (box[2] - box[0]) * (box[3] - box[1])
        if inside_w * inside_h < MIN_INSIDE_FRACTION * area:
            corners = ", ".join(f"{v:g}" for v in box)
            raise InputError(str(sample.path), f"its truth box ({corners}) (x1, y1, x2, y2 in original pixels) lies "
                             f"mostly outside the {width}x{height} image: check the coordinate origin and that the "
                             "row belongs to this image")


DATA_SET_KINDS = ("csv", "mias", "inbreast")


@dataclass(frozen=True)
class DataSpec:
    """A data set spec split: `kind` is one of DATA_SET_KINDS; `labelled_by_kind` is whether the spec named
    its kind (`mias:DIR`) rather than being a bare folder (read as csv when it holds truth.csv)."""

    kind: str
    folder: Path
    labelled_by_kind: bool

    @property
    def key(self) -> tuple[str, str]:
        """(kind, resolved folder): one data set under two spellings is one set."""
        return self.kind, str(self.folder.resolve())


def parse_data_spec(spec: str) -> DataSpec:
    """`csv:DIR`, `mias:DIR`, `inbreast:DIR` or a bare DIR (csv); a folder named like a kind stays a folder."""
    kind, colon, location = spec.partition(":")
    if colon and kind in DATA_SET_KINDS:
        return DataSpec(kind, Path(location), True)
    return DataSpec("csv", Path(spec), False)


def load_dataset(spec: str) -> list[Sample]:
    parsed = parse_data_spec(spec)
    kind, root = parsed.kind, parsed.folder
    if not root.is_dir():
        raise ConfigError(f"data set folder {root} does not exist")
    loaders = {"csv": _load_csv, "mias": _load_mias, "inbreast": _load_inbreast}
    samples = loaders[kind](root)
    if not samples:
        raise ConfigError(f"no images found for data set {spec}")
    return samples


def _dicom_patient(path: Path) -> str | None:
    from trt_mass.inputs.dicom import is_dicom_file

    if not is_dicom_file(path):
        return None
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID", "StudyInstanceUID"])
    except Exception:
        return None
    # Patient ID only groups images for splits; it is hashed so it never travels further.
    value = str(header.get("PatientID") or header.get("StudyInstanceUID") or "")
    return hashlib.sha256(value.encode()).hexdigest()[:16] if value else None


TRUTH_COLUMNS = ("file", "x1", "y1", "x2", "y2")


def _load_csv(root: Path) -> list[Sample]:
    """Images under `root` with the boxes of root/truth.csv; its `file` is the path relative to `root`.

    Every row must name an image that is there, with a finite box of positive width and height, once:
    a row that matches nothing would silently turn a mass into a normal image.
    """
    truth_path = root / "truth.csv"
    if not truth_path.is_file():
        raise ConfigError(f"{root}: no truth.csv (file, sop_instance_uid, x1, y1, x2, y2[, patient_id])")
    boxes, patients, lines = _read_truth_rows(truth_path)
    samples = []
    for path in collect_inputs([root]):
        key = path.relative_to(root).as_posix()
        patient = patients.get(key) or _dicom_patient(path) or path.stem
        found = np.asarray(boxes.pop(key, []), dtype=np.float64).reshape(-1, 4)
        samples.append(Sample(path, key, patient, found, normal=len(found) == 0))
    if boxes:
        unmatched = ", ".join(f"{name!r} (line {lines[name]})" for name in sorted(boxes)[:5])
        more = f" and {len(boxes) - 5} more" if len(boxes) > 5 else ""
        raise InputError(str(truth_path), f"{len(boxes)} file name(s) match no image under {root}: {unmatched}{more} "
                                          "(paths relative to that folder, case-sensitive)")
    return samples


def _read_truth_rows(truth_path: Path) -> tuple[dict[str, list[list[float]]], dict[str, str], dict[str, int]]:
    """({file: boxes}, {file: patient id}, {file: its first line}) of a truth CSV; InputError names the line."""
    boxes: dict[str, list[list[float]]] = {}
    patients: dict[str, str] = {}
    lines: dict[str, int] = {}
    seen: dict[tuple[str, tuple[float, ...]], int] = {}
    try:
        with open(truth_path, newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's BOM
            reader = csv.DictReader(handle)
            missing = [c for c in TRUTH_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(str(truth_path), f"no column {', '.join(missing)} in its header (needs "
                                                  f"{', '.join(TRUTH_COLUMNS)})" if reader.fieldnames else
                                 "empty: not even a header row")
            for row in reader:
                line = reader.line_num
                name, box = _truth_row(truth_path, row, line)
                if (name, box) in seen:
                    raise InputError(str(truth_path), f"line {line} repeats the box of line {seen[name, box]}")
                seen[name, box] = line
                boxes.setdefault(name, []).append(list(box))
                lines.setdefault(name, line)
                if row.get("patient_id"):
                    patients[name] = str(row["patient_id"])
    except UnicodeDecodeError as error:
        raise InputError(str(truth_path), f"not UTF-8 text ({error})") from error
    return boxes, patients, lines


def _truth_row(truth_path: Path, row: dict[str, str | None], line: int) -> tuple[str, tuple[float, ...]]:
    name = (row.get("file") or "").strip()
    if not name:
        raise InputError(str(truth_path), f"line {line}: no file name")
    values = []
    for column in ("x1", "y1", "x2", "y2"):
        text = row.get(column)
        try:
            value = float(text) if text is not None else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(str(truth_path), f"line {line}: {column} {text!r} is not a finite number")
        values.append(value)
    x1, y1, x2, y2 = values
    if not (x2 > x1 and y2 > y1):
        raise InputError(str(truth_path), f"line {line}: the box {x1:g}, {y1:g}, {x2:g}, {y2:g} has no area "
                                          "(needs x1 < x2 and y1 < y2, original pixels)")
    return name, (x1, y1, x2, y2)


def _load_mias(root: Path) -> list[Sample]:
    for name in ("mass_boxes.csv", "images.csv"):
        if not (root / name).is_file():
            raise ConfigError(f"{root}: no {name} (the mini-MIAS layout: images/, images.csv, mass_boxes.csv)")
    boxes: dict[str, list[list[float]]] = {}
    samples = []
    try:
        with open(root / "mass_boxes.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                boxes.setdefault(row["image"], []).append([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
        with open(root / "images.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                found = np.asarray(boxes.get(row["image"], []), dtype=np.float64).reshape(-1, 4)
                samples.append(Sample(root / "images" / f"{row['image']}.png", row["image"], str(row["patient"]),
                                      found, normal=row["findings"].strip().upper() == "NORM",
                                      pixel_spacing_mm=MIAS_PIXEL_SPACING_MM))
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise InputError(str(root), f"malformed mini-MIAS CSV ({type(error).__name__}: {error})") from error
    return samples


def inbreast_mass_boxes(xml_path: Path, enlarge: float = 0.1) -> np.ndarray:
    """Mass boxes [K, 4] of one INbreast XML (plist): ROI polygon min/max, enlarged by `enlarge` per side pair."""
    try:
        with open(xml_path, "rb") as handle:
            document = plistlib.load(handle)
        rois = document["Images"][0]["ROIs"]
    except (OSError, plistlib.InvalidFileException, KeyError, IndexError, ValueError) as error:
        raise InputError(str(xml_path), f"not an INbreast ROI file ({error})") from error
    result = []
    for roi in rois:
        if str(roi.get("Name", "")).strip().lower() != "mass":
            continue
        points = np.array([[float(v) for v in p.strip("() ").split(",")[:2]] for p in roi.get("Point_px", [])])
        if len(points) == 0:
            continue
        x1, y1 = points.min(axis=0)
        x2, y2 = points.max(axis=0)
        dx, dy = (x2 - x1) * enlarge / 2, (y2 - y1) * enlarge / 2
        result.append([x1 - dx, y1 - dy, x2 + dx, y2 + dy])
    return np.asarray(result, dtype=np.float64).reshape(-1, 4)


def _load_inbreast(root: Path) -> list[Sample]:
    samples = []
    for path in sorted((root / "AllDICOMs").glob("*.dcm")):
        number, patient = path.stem.split("_")[:2]
        xml = root / "AllXML" / f"{number}.xml"
        found = inbreast_mass_boxes(xml) if xml.exists() else np.zeros((0, 4))
        samples.append(Sample(path, path.name, patient, found, normal=not xml.exists()))
    return samples


def patient_fold(patient_id: str, folds: int, seed: int = 0) -> int:
    """The fold of a patient: a hash, so it does not depend on which other data sets are combined."""
    digest = hashlib.sha256(f"{seed}|{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def patient_folds(samples: list[Sample], folds: int, fold: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(train, test) for fold `fold` of `folds`: every patient's images fall on one side only."""
    if not 0 <= fold < folds or folds < 2:
        raise ConfigError(f"fold must be in 0..{folds - 1} with at least 2 folds")
    test = [s for s in samples if patient_fold(s.patient_id, folds, seed) == fold]
    train = [s for s in samples if patient_fold(s.patient_id, folds, seed) != fold]
    return train, test
