"""Synthetic mammogram phantoms as real MG DICOM files, with their ground truth.

Each phantom: a compressed-breast outline with a thickness fall-off and a skin line, fatty background,
fibroglandular texture from power-law (1/f^beta) noise, a pectoral muscle on MLO views, quantum
noise, and (except in normals) one to three masses -- round, oval, irregular or spiculated -- of
varied size, contrast and density; with a distortion fraction, that share of the masses are faint stellate
distortions instead (thin radiating lines around a faint or absent core, boxed by their whole extent as
film databases box spiculated lesions), the kind the demo model misses on film.
Files mix MONOCHROME1/MONOCHROME2, uncompressed and JPEG 2000 lossless, CC and MLO, left and right, and
vendor-like sizes and pixel spacings.  Deterministic for a seed.

The patient module holds obviously fake values (so tests can prove they never leak into outputs).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trt_mass.atomic import atomic_path, write_text_atomic
from trt_mass.datasets.anatomy import (
    ANATOMIES,
    Layout,
    detector_of,
    draw_breast,
    fill_layout,
    fill_pectoral,
    pick_detector,
    realistic_layout,
)
from trt_mass.errors import ConfigError
from trt_mass.progress import ProgressLine

# (manufacturer, model, rows, columns, pixel spacing mm, bits stored) -- sizes like real detectors.
VENDORS = (
    ("HOLOGIC, Inc.", "Selenia Dimensions (synthetic)", 4096, 3328, 0.065, 12),
    ("GE MEDICAL SYSTEMS", "Senographe Essential (synthetic)", 3062, 2394, 0.100, 14),
    ("SIEMENS", "Mammomat Inspiration (synthetic)", 3584, 2816, 0.085, 12),
    ("GE MEDICAL SYSTEMS", "Senographe DS (synthetic)", 2294, 1914, 0.100, 14),
    ("HOLOGIC, Inc.", "Selenia Dimensions 18x24 (synthetic)", 3328, 2560, 0.070, 12),
    ("SIEMENS", "Mammomat Revelation 18x24 (synthetic)", 2816, 2048, 0.085, 12),
)
FILL_VENDOR_COUNT = 4  # the "fill" anatomy draws from the first four, as before the 18x24 entries existed
MASS_SHAPES = ("round", "oval", "irregular", "spiculated")
DISTORTION = "distortion"  # drawn only with a distortion fraction, so that older seeds stay byte-identical
FAKE_PATIENT_NAME = "Phantom^Synthetic"
FAKE_PATIENT_ID = "SYNTH-PATIENT-"  # + a number: four images (one study) per phantom patient


@dataclass(frozen=True)
class MassTruth:
    """A mass's bounding box (xyxy, original pixels) and how it was drawn."""

    x1: float
    y1: float
    x2: float
    y2: float
    shape: str


@dataclass(frozen=True)
class Phantom:
    """One synthetic mammogram: presentation values in [0, 1] (dense bright) and its truth."""

    presentation: np.ndarray  # float32 [H, W]
    masses: tuple[MassTruth, ...]
    laterality: str
    view: str
    vendor: tuple[str, str, int, int, float, int]
    pixel_spacing_mm: float


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^beta, normalised to zero mean, unit std."""
    height, width = shape
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) * radius ** (-beta / 2)
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=shape)
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _upsample(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(field.astype(np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _mass_mask(rng: np.random.Generator, grid: np.ndarray, centre: tuple[float, float], radius_px: float,
               shape: str) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Soft mask in [0, 1] of one mass, and its core's bounding box (xyxy)."""
    yy, xx = grid
    cy, cx = centre
    pad = int(radius_px * 3.2) + 4
    y0, y1 = max(0, int(cy) - pad), min(yy.shape[0], int(cy) + pad)
    x0, x1 = max(0, int(cx) - pad), min(yy.shape[1], int(cx) + pad)
    local_y, local_x = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
    angle = np.arctan2(local_y, local_x)
    if shape == "oval":
        ratio, rotation = rng.uniform(0.5, 0.8), rng.uniform(0, math.pi)
        cos_r, sin_r = math.cos(rotation), math.sin(rotation)
        u = local_x * cos_r + local_y * sin_r
        v = -local_x * sin_r + local_y * cos_r
        distance = np.sqrt(u**2 + (v / ratio) ** 2)
        boundary = np.full_like(distance, radius_px)
    else:
        distance = np.sqrt(local_x**2 + local_y**2)
        boundary = np.full_like(distance, radius_px)
        if shape in ("irregular", "spiculated"):
            for harmonic in range(2, 7):
                amplitude = rng.uniform(0.03, 0.16) / (harmonic - 1) ** 0.5
                boundary = boundary * (1 + amplitude * np.cos(harmonic * angle + rng.uniform(0, 2 * math.pi)))
    edge = max(1.0, radius_px * rng.uniform(0.08, 0.25))
    core = 1.0 / (1.0 + np.exp(np.clip((distance - boundary) / edge, -60.0, 60.0)))
    inside = core > 0.5
    rows, cols = np.nonzero(inside)
    if len(rows) == 0:
        rows, cols = np.array([int(cy) - y0]), np.array([int(cx) - x0])
    box = (float(cols.min() + x0), float(rows.min() + y0), float(cols.max() + x0 + 1), float(rows.max() + y0 + 1))
    mask = np.zeros(yy.shape, np.float32)
    profile = core * np.sqrt(np.clip(1 - (distance / (boundary * 1.3)) ** 2, 0.05, 1))
    if shape == "spiculated":
        for _ in range(int(rng.integers(8, 20))):
            theta = rng.uniform(0, 2 * math.pi)
            length = radius_px * rng.uniform(1.4, 2.8)
            width = max(0.8, radius_px * rng.uniform(0.03, 0.07))
            along = local_x * math.cos(theta) + local_y * math.sin(theta)
            across = -local_x * math.sin(theta) + local_y * math.cos(theta)
            spicule = np.exp(-(across / width) ** 2) * np.clip(1 - along / length, 0, 1) * (along > 0)
            profile = np.maximum(profile, 0.6 * spicule)
    mask[y0:y1, x0:x1] = profile
    return mask, box


def _distortion_mask(rng: np.random.Generator, grid: np.ndarray, centre: tuple[float, float],
                     radius_px: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Soft mask in [0, 1] of a stellate distortion reaching `radius_px`, and its box (xyxy): the whole
    extent, clipped to the image, as film databases circle a spiculated lesion with its spicules."""
    yy, xx = grid
    cy, cx = centre
    pad = int(radius_px) + 4
    y0, y1 = max(0, int(cy) - pad), min(yy.shape[0], int(cy) + pad)
    x0, x1 = max(0, int(cx) - pad), min(yy.shape[1], int(cx) + pad)
    local_y, local_x = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
    distance = np.sqrt(local_x**2 + local_y**2)
    core_radius = radius_px * rng.uniform(0.08, 0.25)
    # the core: from nothing (pure architectural distortion) to a small faint density
    profile = rng.uniform(0.0, 0.6) * np.exp(-((distance / core_radius) ** 2))
    for _ in range(int(rng.integers(14, 40))):
        theta = rng.uniform(0, 2 * math.pi)
        start = rng.uniform(0, 2 * core_radius)  # radiating from around the core, not from one pixel
        start_x, start_y = start * math.cos(theta), start * math.sin(theta)
        length = radius_px * rng.uniform(0.4, 1.0)
        width = max(0.7, radius_px * rng.uniform(0.008, 0.03))
        along = (local_x - start_x) * math.cos(theta) + (local_y - start_y) * math.sin(theta)
        across = -(local_x - start_x) * math.sin(theta) + (local_y - start_y) * math.cos(theta)
        line = np.exp(-(across / width) ** 2) * np.clip(1 - along / length, 0, 1) ** 0.7 * (along > 0)
        profile = np.maximum(profile, rng.uniform(0.3, 1.0) * line)
    mask = np.zeros(yy.shape, np.float32)
    mask[y0:y1, x0:x1] = profile
    box = (max(0.0, cx - radius_px), max(0.0, cy - radius_px), min(float(yy.shape[1]), cx + radius_px),
           min(float(yy.shape[0]), cy + radius_px))
    return mask, box


def make_phantom(rng: np.random.Generator, scale: float, normal: bool, vendor_index: int | None = None,
                 shape_hw: tuple[int, int] | None = None, anatomy: str = "realistic",
                 distortion_fraction: float = 0.0) -> Phantom:
    """Draw one phantom at `scale` times a vendor's native size (spacing grows as 1/scale).

    `vendor_index` picks a vendor of VENDORS and `shape_hw` overrides the size (benchmarks); `anatomy`
    is "realistic" (breast size, then the detector that fits it: trt_mass.datasets.anatomy) or "fill"
    (the original breast filling the detector, reproducing phantoms made before the realistic one);
    `distortion_fraction` of the masses are stellate distortions (0: none, and the draws of before).
    """
    if anatomy == "fill":
        vendor, shape, spacing_mm, view, laterality, layout = _fill_draw(rng, scale, vendor_index, shape_hw)
    elif anatomy == "realistic":
        vendor, shape, spacing_mm, view, laterality, layout = _realistic_draw(rng, scale, vendor_index, shape_hw)
    else:
        raise ConfigError(f"anatomy must be one of {', '.join(ANATOMIES)}, got {anatomy!r}")
    radius, grid = layout.radius, layout.grid
    breast = radius < 1.0
    thickness = np.sqrt(np.clip(1 - radius**2, 0, 1))
    small = (max(32, shape[0] // 4), max(32, shape[1] // 4))
    texture = _upsample(power_law_noise(rng, small, beta=rng.uniform(2.6, 3.2)), shape)
    density = rng.uniform(0.15, 0.7)  # share of fibroglandular tissue (BI-RADS a..d)
    threshold = float(np.quantile(texture[breast], 1 - density)) if breast.any() else 0.0
    glandular = 1 / (1 + np.exp(-(texture - threshold) * 2.0))
    glandular *= np.clip(1.2 - radius, 0, 1)  # denser towards the centre, fatty towards the skin
    fat_level, gland_level = rng.uniform(0.22, 0.32), rng.uniform(0.25, 0.40)
    image = (fat_level + gland_level * glandular) * (0.35 + 0.65 * thickness**0.6)
    skin_mm = rng.uniform(1.0, 2.5)
    skin = (radius > 1 - skin_mm / (layout.skin_reference_px * spacing_mm * layout.skin_factor)) & breast
    image = np.where(skin, image + 0.06, image)
    if view == "MLO":
        pectoral, pectoral_w = ((layout.pectoral, layout.pectoral_width_px) if layout.pectoral is not None
                                else fill_pectoral(rng, grid, shape))
        image, breast = _with_pectoral_muscle(rng, grid, texture, image, breast, pectoral, pectoral_w)
    masses: list[MassTruth] = []
    if not normal:
        image, masses = _with_masses(rng, grid, image, breast & (radius < 0.75) & (radius > 0.15), spacing_mm,
                                     distortion_fraction)
    image = np.where(breast, image, 0.02 + 0.01 * texture)  # air: nearly black
    image = image + rng.normal(0, rng.uniform(0.004, 0.012), size=shape)
    presentation = np.clip(image, 0, 1).astype(np.float32)
    if laterality == "R":  # chest wall on the right for right breasts
        presentation = np.ascontiguousarray(presentation[:, ::-1])
        width = shape[1]
        masses = [MassTruth(width - m.x2, m.y1, width - m.x1, m.y2, m.shape) for m in masses]
    return Phantom(presentation, tuple(masses), laterality, view, vendor, spacing_mm)


Vendor = tuple[str, str, int, int, float, int]
Drawn = tuple[Vendor, tuple[int, int], float, str, str, Layout]


def _size(vendor: Vendor, scale: float, shape_hw: tuple[int, int] | None) -> tuple[tuple[int, int], float]:
    """(image rows x columns, pixel spacing mm) of `vendor` at `scale`, or at `shape_hw`."""
    _, _, rows, columns, spacing, _ = vendor
    shape = shape_hw or (max(64, round(rows * scale)), max(64, round(columns * scale)))
    return shape, spacing * rows / shape[0]


def _fill_draw(rng: np.random.Generator, scale: float, vendor_index: int | None,
               shape_hw: tuple[int, int] | None) -> Drawn:
    """The original draw order (vendor of the first four, view, side, outline): byte-identical phantoms."""
    vendor = VENDORS[int(rng.integers(FILL_VENDOR_COUNT)) if vendor_index is None else vendor_index]
    shape, spacing_mm = _size(vendor, scale, shape_hw)
    view = "CC" if rng.random() < 0.5 else "MLO"
    laterality = "L" if rng.random() < 0.5 else "R"
    return vendor, shape, spacing_mm, view, laterality, fill_layout(rng, shape, view)


def _realistic_draw(rng: np.random.Generator, scale: float, vendor_index: int | None,
                    shape_hw: tuple[int, int] | None) -> Drawn:
    """View and side, the breast in cm, a detector (and vendor) that fits it, then its outline."""
    view = "CC" if rng.random() < 0.5 else "MLO"
    laterality = "L" if rng.random() < 0.5 else "R"
    breast = draw_breast(rng, view)
    if vendor_index is None:
        detector = pick_detector(rng, breast)
        fitting = [v for v in VENDORS if detector_of(v[2], v[3], v[4]) == detector]
        vendor = fitting[int(rng.integers(len(fitting)))]
    else:
        vendor = VENDORS[vendor_index]
    shape, spacing_mm = _size(vendor, scale, shape_hw)
    return vendor, shape, spacing_mm, view, laterality, realistic_layout(rng, breast, shape, spacing_mm)


def _with_pectoral_muscle(rng: np.random.Generator, grid: np.ndarray, texture: np.ndarray, image: np.ndarray,
                          breast: np.ndarray, pectoral: np.ndarray,
                          pectoral_w: float) -> tuple[np.ndarray, np.ndarray]:
    """The MLO view's pectoral muscle (`pectoral` mask) drawn: (image, breast mask) with it."""
    xx = grid[1]
    muscle = (rng.uniform(0.42, 0.55) + 0.04 * texture) * (1 - 0.25 * np.clip(xx / pectoral_w, 0, 1))
    return np.where(pectoral, muscle, image), breast | pectoral


def _with_masses(rng: np.random.Generator, grid: np.ndarray, image: np.ndarray, allowed: np.ndarray,
                 spacing_mm: float, distortion_fraction: float = 0.0) -> tuple[np.ndarray, list[MassTruth]]:
    """One to three masses (4-15 mm radius) centred where `allowed`: (image with them, their truth boxes)."""
    masses = []
    candidates = np.argwhere(allowed)
    for _ in range(int(rng.integers(1, 4))):
        if len(candidates) == 0:
            break
        cy, cx = candidates[int(rng.integers(len(candidates)))]
        radius_px = rng.uniform(4.0, 15.0) / spacing_mm
        kind = MASS_SHAPES[int(rng.integers(len(MASS_SHAPES)))]
        if distortion_fraction > 0 and rng.random() < distortion_fraction:  # no draw at 0: older seeds unchanged
            mask, box = _distortion_mask(rng, grid, (float(cy), float(cx)), radius_px * 1.5)
            image = image + rng.uniform(0.05, 0.14) * mask  # subtle: fainter than the masses
            masses.append(MassTruth(*box, shape=DISTORTION))
            continue
        mask, box = _mass_mask(rng, grid, (float(cy), float(cx)), radius_px, kind)
        image = image + rng.uniform(0.10, 0.30) * mask
        masses.append(MassTruth(*box, shape=kind))
    return image, masses


def _uid(seed: int, index: int, what: str) -> str:
    """A deterministic UID under 2.25 (PS3.5 B.2: a UUID as an integer), from a hash of the inputs."""
    digest = hashlib.sha256(f"trt_mass synth|{seed}|{index}|{what}".encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def phantom_dataset(phantom: Phantom, seed: int, index: int, photometric: str, voi_function: str = "LINEAR") -> object:
    """A For-Presentation MG dataset (uncompressed) holding the phantom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    from trt_mass.inputs.dicom import MG_FOR_PRESENTATION

    sop_uid = UID(_uid(seed, index, "sop"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MG_FOR_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    _patient_and_study(ds, seed, index)
    _equipment_and_acquisition(ds, phantom, index)
    _view(ds, phantom)
    _pixels(ds, phantom, photometric, voi_function)
    return ds


def _patient_and_study(ds: Any, seed: int, index: int) -> None:
    """The fake patient and study (four images per study), deterministic for the seed."""
    ds.StudyInstanceUID = _uid(seed, index // 4, "study")
    ds.SeriesInstanceUID = _uid(seed, index, "series")
    ds.PatientName = FAKE_PATIENT_NAME
    ds.PatientID = f"{FAKE_PATIENT_ID}{index // 4:04d}"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "SYNTHACC0001"
    ds.StudyID = "SYNTH1"
    ds.ReferringPhysicianName = ""
    ds.StudyDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.ContentTime = "120000"


def _equipment_and_acquisition(ds: Any, phantom: Phantom, index: int) -> None:
    """The vendor, the MG image module's fixed values, the series and instance numbers."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    manufacturer, model, _, _, _, _ = phantom.vendor
    ds.Modality = "MG"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.BodyPartExamined = "BREAST"
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "76752008", "SCT", "Breast"
    ds.AnatomicRegionSequence = Sequence([region])
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.LossyImageCompression = "00"
    ds.DetectorType = "DIRECT"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.BreastImplantPresent = "NO"
    ds.OrganExposed = "BREAST"
    ds.AcquisitionContextSequence = Sequence([])
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SeriesNumber, ds.InstanceNumber = 1, index + 1


def _view(ds: Any, phantom: Phantom) -> None:
    """Laterality, view (code and position), patient orientation and pixel spacing."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.ImageLaterality = phantom.laterality
    ds.ViewPosition = phantom.view
    code = Dataset()
    code.CodeValue = "399162004" if phantom.view == "CC" else "399368009"
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = "cranio-caudal" if phantom.view == "CC" else "medio-lateral oblique"
    code.ViewModifierCodeSequence = Sequence([])
    ds.ViewCodeSequence = Sequence([code])
    ds.PatientOrientation = ["P", "L" if phantom.laterality == "R" else "R"] if phantom.view == "CC" else ["A", "FR"]
    spacing = f"{phantom.pixel_spacing_mm:.6f}"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]


def _pixels(ds: Any, phantom: Phantom, photometric: str, voi_function: str) -> None:
    """The stored values (5-95 % of the vendor's bit depth), the photometric interpretation and the VOI."""
    bits = phantom.vendor[5]
    max_value = 2**bits - 1
    low, high = int(max_value * 0.05), int(max_value * 0.95)
    values = phantom.presentation if photometric == "MONOCHROME2" else 1.0 - phantom.presentation
    stored = np.rint(low + values * (high - low)).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
    ds.WindowCenter = f"{(low + high) / 2 + 0.5:.1f}"
    # A sigmoid over the same width would lift air to 0.12; vendors using SIGMOID window tighter.
    ds.WindowWidth = str(high - low + 1) if voi_function == "LINEAR" else str(int(0.7 * (high - low)))
    ds.VOILUTFunction = voi_function
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = stored.tobytes()


def write_phantoms(out_dir: str | Path, count: int, seed: int, scale: float = 1.0,
                   normal_fraction: float = 0.3, progress: bool = False, anatomy: str = "realistic",
                   distortion_fraction: float = 0.0) -> list[Path]:
    """Write `count` phantoms as DICOM files plus OUT_DIR/truth.csv; returns the file paths.

    `distortion_fraction`: the share of masses drawn as stellate distortions (0: byte-identical to the
    phantoms of a seed made before the option existed)."""
    from pydicom.uid import JPEG2000Lossless

    if count < 1:
        raise ConfigError("count must be at least 1")
    if not 0.01 <= scale <= 1.0:
        raise ConfigError("scale must be in [0.01, 1]")
    if not 0.0 <= distortion_fraction <= 1.0:
        raise ConfigError(f"distortion fraction must be in [0, 1], got {distortion_fraction}")
    if not 0.0 <= normal_fraction <= 1.0:
        raise ConfigError(f"normal fraction must be in [0, 1], got {normal_fraction}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # truth.csv lists only this run's phantoms: older ones beyond them would be read as normal images
    stale = sorted(p.name for p in out_dir.glob("synth_*.dcm")
                   if p.stem[6:].isdigit() and int(p.stem[6:]) >= count)
    if stale:
        raise ConfigError(f"{out_dir} holds {len(stale)} phantom(s) of an earlier, larger run ({stale[0]} ...) that "
                          f"the new truth.csv would not list: use an empty folder or remove them")
    rng = np.random.default_rng(seed)
    paths = []
    rows: list[list[object]] = []
    with ProgressLine(progress) as line:
        for index in range(count):
            normal = rng.random() < normal_fraction
            phantom = make_phantom(rng, scale, normal, anatomy=anatomy, distortion_fraction=distortion_fraction)
            photometric = "MONOCHROME1" if rng.random() < 0.4 else "MONOCHROME2"
            voi_function = "SIGMOID" if rng.random() < 0.2 else "LINEAR"
            ds = phantom_dataset(phantom, seed, index, photometric, voi_function)
            if rng.random() < 0.4:
                ds.compress(JPEG2000Lossless, generate_instance_uid=False)  # type: ignore[attr-defined]
            path = out_dir / f"synth_{index:04d}.dcm"
            with atomic_path(path) as temporary:  # whole files only: the output may be a watched incoming/
                ds.save_as(temporary, enforce_file_format=True)  # type: ignore[attr-defined]
            paths.append(path)
            for mass in phantom.masses:
                rows.append([path.name, ds.SOPInstanceUID,  # type: ignore[attr-defined]
                             round(mass.x1, 1), round(mass.y1, 1), round(mass.x2, 1), round(mass.y2, 1)])
            line.update(f"synth {index + 1}/{count}")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "sop_instance_uid", "x1", "y1", "x2", "y2"])
    writer.writerows(rows)
    write_text_atomic(out_dir / "truth.csv", table.getvalue())
    return paths
