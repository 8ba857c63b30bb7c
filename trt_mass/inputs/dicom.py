"""Mammograms from DICOM files, read as a PACS viewer shows them.

Pipeline: checks on the header (before any pixel is decoded) -> decode (trt_mass.inputs.decoders:
nvImageCodec or OpenJPEG for JPEG 2000 / HTJ2K, else pydicom.pixels and its plugins) -> modality LUT
-> VOI (window centre/width LINEAR / LINEAR_EXACT / SIGMOID, or the VOI LUT Sequence) -> MONOCHROME1 /
Presentation LUT Shape INVERSE inversion -> presentation values scaled to the full uint16 range (dense
tissue bright).  The steps after decoding are one lookup table (trt_mass.inputs.pixels).  PNG/TIFF
rasters use the same canonical range (trt_mass.inputs.raster), so a model trained on either sees the
same thing.

Patient-identifying attributes are never read into the Mammogram, logged or printed.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_mass.errors import InputError
from trt_mass.inputs.pixels import as_list as _as_list
from trt_mass.inputs.pixels import header_text as _text
from trt_mass.inputs.pixels import to_presentation

if TYPE_CHECKING:
    from trt_mass.inputs.decoders import PixelDecoder
    from trt_mass.inputs.raster import RasterScaling

# SOP classes (PS3.4 B.5)
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
BREAST_PROJECTION_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"
BREAST_PROJECTION_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.13.1.5"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MAMMOGRAPHY_SOP_CLASSES = {MG_FOR_PRESENTATION, BREAST_PROJECTION_FOR_PRESENTATION}
FOR_PROCESSING_SOP_CLASSES = {MG_FOR_PROCESSING, DX_FOR_PROCESSING, BREAST_PROJECTION_FOR_PROCESSING}

# pydicom's warnings about odd values may quote header values (patient data): silenced for the whole
# process, once, here.  Not by warnings.catch_warnings around each read: its filter list is
# process-wide, and the daemon reads files in several threads at once.
warnings.filterwarnings("ignore", module="pydicom")

# Refuse absurd headers before allocating (the largest FFDM detectors are about 5900 x 4700).
MAX_SIDE = 12000
MAX_PIXELS = 50_000_000

# Transfer syntax -> what decodes it, for the refusal message when no plugin is installed.
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (JPEG 2000 lossless)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (JPEG 2000)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg>=2.4 (HTJ2K lossless)",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg>=2.4 (HTJ2K lossless RPCL)",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg>=2.4 (HTJ2K)",
    "1.2.840.10008.1.2.4.57": "python-gdcm (JPEG Lossless, process 14)",
    "1.2.840.10008.1.2.4.70": "python-gdcm (JPEG Lossless SV1, process 14)",
    "1.2.840.10008.1.2.4.80": "pyjpegls (JPEG-LS lossless)",
    "1.2.840.10008.1.2.4.81": "pyjpegls (JPEG-LS near-lossless)",
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg or python-gdcm (JPEG baseline)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg or python-gdcm (JPEG extended)",
    "1.2.840.10008.1.2.5": "pydicom (RLE, built in)",
}


@dataclass(frozen=True)
class Mammogram:
    """One mammogram as the model takes it, with the metadata findings need (no patient data).

    Attributes:
        pixels: uint16 [H, W], C-contiguous, presentation values scaled to 0..65535, dense bright.
        source: the file name it came from (for messages).
        pixel_spacing_mm: (row, column) spacing in mm, or None when the file gives none.
        raster_scaling: for PNG/TIFF, the significant bits their values were scaled from and the rule that
            found them (None for DICOM, whose values the modality LUT and VOI map).
        pixel_decoder: for DICOM, what decoded the pixel data (nvimgcodec, openjpeg, openjph or pydicom).
    """

    pixels: np.ndarray
    source: str
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    study_instance_uid: str | None = None
    sop_class_uid: str | None = None
    laterality: str | None = None
    view: str | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    manufacturer: str | None = None
    photometric_interpretation: str | None = None
    transfer_syntax_uid: str | None = None
    raster_scaling: RasterScaling | None = None
    pixel_decoder: str | None = None

    def describe(self) -> dict[str, Any]:
        """Non-identifying metadata for results and logs."""
        return {
            "source": self.source,
            "sop_instance_uid": self.sop_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "laterality": self.laterality,
            "view": self.view,
            "pixel_spacing_mm": None if self.pixel_spacing_mm is None else list(self.pixel_spacing_mm),
            "manufacturer": self.manufacturer,
            "image_hw": [int(self.pixels.shape[0]), int(self.pixels.shape[1])],
            "raster_scaling": None if self.raster_scaling is None else self.raster_scaling.to_dict(),
            "pixel_decoder": self.pixel_decoder,
        }


def is_dicom_file(path: str | Path) -> bool:
    """True when the file has the DICOM preamble magic ("DICM" at offset 128)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_mammogram(path: str | Path, voi_index: int = 0, decoder: PixelDecoder | None = None) -> Mammogram:
    """Read a DICOM mammogram; InputError (naming the file and the reason) for anything unusable.

    Args:
        path: the .dcm file (Part 10, with preamble).
        voi_index: which of several VOI windows / LUTs to apply (0: the first, the default view).
        decoder: decodes the pixel data (trt_mass.inputs.decoders); None: pydicom's plugins.
    """
    source = str(path)
    try:
        return _load(Path(path), voi_index, decoder)
    except InputError:
        raise
    except MemoryError as error:
        raise InputError(source, "not enough memory to decode the pixel data") from error
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as error:
        # A malformed file must never escape as another exception type; that includes decoder
        # plugins written in Rust, whose panics (pyo3 PanicException) derive from BaseException.
        raise InputError(source, f"malformed DICOM ({type(error).__name__}: {error})") from error


def _load(path: Path, voi_index: int, decoder: PixelDecoder | None) -> Mammogram:
    import pydicom
    from pydicom.errors import InvalidDicomError

    source = str(path)
    check_regular_file(path)
    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError as error:
        raise InputError(source, "not a DICOM file (no DICM preamble)") from error
    except (EOFError, OSError) as error:
        raise InputError(source, f"truncated or unreadable DICOM file ({error})") from error
    if len(dataset) == 0:  # pydicom reads a file cut inside its first element as an empty data set
        raise InputError(source, "truncated DICOM file (no data element could be read after the preamble)")
    lift_functional_groups(dataset)
    _check_header(dataset, source)
    stored, decoded_by = _decode(dataset, source, decoder)
    presentation = to_presentation(stored, dataset, voi_index)
    return Mammogram(
        pixels=presentation,
        source=path.name,
        sop_instance_uid=_text(dataset, "SOPInstanceUID"),
        series_instance_uid=_text(dataset, "SeriesInstanceUID"),
        study_instance_uid=_text(dataset, "StudyInstanceUID"),
        sop_class_uid=_text(dataset, "SOPClassUID"),
        laterality=_laterality(dataset),
        view=_view(dataset),
        pixel_spacing_mm=_pixel_spacing(dataset),
        manufacturer=_text(dataset, "Manufacturer"),
        photometric_interpretation=_text(dataset, "PhotometricInterpretation"),
        transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
        pixel_decoder=decoded_by,
    )


# Enhanced IODs (Breast Projection X-Ray) keep these in functional group macros, not at the top level.
_FUNCTIONAL_GROUP_ATTRIBUTES = {
    "PixelMeasuresSequence": ("PixelSpacing",),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction", "WindowCenterWidthExplanation"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameAnatomySequence": ("FrameLaterality",),
}


def lift_functional_groups(dataset: Any) -> None:
    """Copy the first frame's pixel measures, VOI, rescale and laterality (per-frame before shared) to
    the top level, where the single-frame reader looks; attributes already there are kept."""
    groups = [group[0] for group in (dataset.get("PerFrameFunctionalGroupsSequence"),
                                     dataset.get("SharedFunctionalGroupsSequence")) if group]
    for group in groups:
        for macro, keywords in _FUNCTIONAL_GROUP_ATTRIBUTES.items():
            items = group.get(macro)
            if not items:
                continue
            for keyword in keywords:
                if keyword in items[0] and keyword not in dataset:
                    dataset[keyword] = items[0][keyword]


_SHOWABLE = re.compile(r"[A-Za-z0-9 ._\-]{1,64}")


def _shown(value: object) -> str:
    """A header value fit for an error message: short and of a code's alphabet, else only its length.

    A corrupt length field makes one element swallow the next ones (patient name, IDs): echoing such a
    value would put patient data into logs.
    """
    text = str(value).strip()
    return text if _SHOWABLE.fullmatch(text) else f"<malformed, {len(text)} characters>"


def check_regular_file(path: Path) -> None:
    """InputError unless `path` is a regular file (a FIFO would block the reader forever)."""
    if not path.exists():
        raise InputError(str(path), "no such file")
    if not path.is_file():
        raise InputError(str(path), "not a regular file (a folder, FIFO or device)")


def _check_rescale(dataset: Any, source: str) -> None:
    """A slope of 0 or NaN would map every pixel to one value: a blank image, not a mammogram."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = dataset.get(keyword)
        if value in (None, ""):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise InputError(source, f"invalid {keyword} {_shown(value)}") from error
        if not math.isfinite(number) or (keyword == "RescaleSlope" and number == 0):
            raise InputError(source, f"invalid {keyword} {_shown(value)}")


def _check_header(dataset: Any, source: str) -> None:
    sop_class = _text(dataset, "SOPClassUID") or ""
    modality = (_text(dataset, "Modality") or "").upper()
    if sop_class == BREAST_TOMOSYNTHESIS:
        raise InputError(source, "breast tomosynthesis (multi-frame) is not supported; send the 2-D views")
    if sop_class in FOR_PROCESSING_SOP_CLASSES:
        raise InputError(source, "a FOR PROCESSING image (raw detector data); send the FOR PRESENTATION image")
    intent = (_text(dataset, "PresentationIntentType") or "").upper()
    if intent == "FOR PROCESSING":
        raise InputError(source, "Presentation Intent Type is FOR PROCESSING; send the FOR PRESENTATION image")
    if sop_class not in MAMMOGRAPHY_SOP_CLASSES and modality != "MG":
        raise InputError(
            source, f"not a mammogram (modality {_shown(modality) if modality else 'missing'}, "
                    f"SOP class {_shown(sop_class) if sop_class else 'missing'})"
        )
    if "PixelData" not in dataset:
        for keyword in ("FloatPixelData", "DoubleFloatPixelData"):
            if keyword in dataset:
                raise InputError(source, f"{keyword} is not supported (integer pixel data only)")
        raise InputError(source, "no pixel data")
    frames = dataset.get("NumberOfFrames")
    try:
        frame_count = int(frames) if frames not in (None, "") else 1
    except (TypeError, ValueError) as error:
        raise InputError(source, f"invalid Number of Frames {_shown(frames)}") from error
    if frame_count != 1:
        raise InputError(source, f"multi-frame image ({frame_count} frames); one 2-D view per file is supported")
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    if not isinstance(rows, int) or not isinstance(columns, int) or rows < 1 or columns < 1:
        raise InputError(source, f"invalid image size Rows={_shown(rows)} Columns={_shown(columns)}")
    if rows > MAX_SIDE or columns > MAX_SIDE or rows * columns > MAX_PIXELS:
        raise InputError(source, f"image of {rows} x {columns} pixels is larger than any mammography detector")
    if dataset.get("SamplesPerPixel", 1) != 1:
        samples = _shown(dataset.get("SamplesPerPixel"))
        raise InputError(source, f"{samples} samples per pixel; a mammogram is grayscale")
    photometric = _text(dataset, "PhotometricInterpretation")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(source, f"photometric interpretation {_shown(photometric)} is not grayscale")
    bits_allocated, bits_stored = dataset.get("BitsAllocated"), dataset.get("BitsStored")
    if bits_allocated not in (8, 16) or not isinstance(bits_stored, int) or not 1 <= bits_stored <= bits_allocated:
        raise InputError(source, f"unsupported bit depth (allocated {_shown(bits_allocated)}, "
                                 f"stored {_shown(bits_stored)})")
    _check_rescale(dataset, source)
    _check_decoder(dataset, source)


def _check_decoder(dataset: Any, source: str) -> None:
    from pydicom.pixels import get_decoder

    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is None:
        raise InputError(source, "no Transfer Syntax UID in the file meta information")
    if not syntax.is_transfer_syntax:  # a private one pydicom was never told about, or no transfer syntax at all
        raise InputError(source, f"Transfer Syntax UID {_shown(syntax)} is not a transfer syntax pydicom knows")
    if not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
        available = decoder.is_available
    except NotImplementedError as error:
        raise InputError(source, f"transfer syntax {_shown(syntax)} ({_shown(syntax.name)}) is not "
                                 "supported") from error
    except ImportError as error:  # a plugin that is installed but broken
        raise InputError(source, _missing_decoder(syntax)) from error
    if not available:
        raise InputError(source, _missing_decoder(syntax))


def _missing_decoder(syntax: Any) -> str:
    package = DECODER_PACKAGES.get(str(syntax), "a pydicom decoder plugin")
    return f"transfer syntax {syntax.name} needs a decoder plugin: {package}"


def _decode(dataset: Any, source: str, decoder: PixelDecoder | None) -> tuple[np.ndarray, str]:
    from pydicom.pixels import pixel_array

    try:
        stored, decoded_by = decoder.decode(dataset) if decoder is not None else (pixel_array(dataset), "pydicom")
    except ImportError as error:  # a plugin that is listed but cannot be imported
        raise InputError(source, _missing_decoder(dataset.file_meta.TransferSyntaxUID)) from error
    except (ValueError, EOFError, KeyError, IndexError, RuntimeError, TypeError, AttributeError) as error:
        fallback = _decode_jpeg_extended(dataset)
        if fallback is None:
            reason = " ".join(str(error).split())  # plugins list their failures over several lines
            raise InputError(source, f"truncated or corrupt pixel data ({reason})") from error
        stored, decoded_by = fallback
    if stored.ndim != 2 or stored.shape != (dataset.Rows, dataset.Columns):
        raise InputError(source, f"decoded pixel data has shape {stored.shape}, expected one 2-D frame")
    return _only_stored_bits(stored, dataset), decoded_by


def _decode_jpeg_extended(dataset: Any) -> tuple[np.ndarray, str] | None:
    """12-bit JPEG (process 4), which GDCM and Pillow decline, through libjpeg-turbo in imagecodecs.

    Only whole streams: libjpeg-turbo fills a cut-off stream with grey instead of failing."""
    if str(dataset.file_meta.TransferSyntaxUID) != JPEG_EXTENDED or int(dataset.get("BitsStored", 8) or 8) <= 8:
        return None
    try:
        import imagecodecs
        from pydicom.encaps import get_frame

        frame = get_frame(dataset.PixelData, 0, number_of_frames=1)
        if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):  # no End Of Image marker: truncated
            return None
        decoded = np.asarray(imagecodecs.jpeg8_decode(frame))
    except Exception:  # no imagecodecs, or a stream it cannot read either: the first error stands
        return None
    if decoded.shape != (dataset.Rows, dataset.Columns) or decoded.dtype.kind != "u":
        return None
    return decoded.astype(np.uint16 if int(dataset.BitsAllocated) > 8 else np.uint8), "imagecodecs-libjpeg"


def _only_stored_bits(stored: np.ndarray, dataset: Any) -> np.ndarray:
    """Bits above Bits Stored are not pixel data (old units keep overlays there); pydicom masks them in
    native data, but JPEG 2000 and JPEG-LS codecs return them as encoded."""
    try:
        bits = int(dataset.BitsStored)
    except (AttributeError, TypeError, ValueError):
        return stored
    width = 8 * stored.dtype.itemsize
    if stored.dtype.kind not in "iu" or not 0 < bits < width:
        return stored
    if stored.dtype.kind == "u":
        return np.bitwise_and(stored, np.array((1 << bits) - 1, dtype=stored.dtype))
    shift = width - bits  # signed: shift the sign bit up and back to extend it
    return np.right_shift(np.left_shift(stored, shift), shift)


def _laterality(dataset: Any) -> str | None:
    for keyword in ("ImageLaterality", "Laterality", "FrameLaterality"):
        value = (_text(dataset, keyword) or "").upper()
        if value in ("L", "R", "B", "U"):
            return value
    return None


VIEW_CODES = {  # SNOMED / DCM codes of ViewCodeSequence (CID 4014) -> ACR MQCM abbreviations
    "R-10242": "CC", "399162004": "CC",
    "R-10226": "MLO", "399368009": "MLO",
    "R-10224": "ML", "399260004": "ML",
    "R-10228": "LM", "399352003": "LM",
    "R-10230": "XCCL", "399192003": "XCCL",
    "R-1024A": "XCCM", "399101009": "XCCM",
}


def _view(dataset: Any) -> str | None:
    position = (_text(dataset, "ViewPosition") or "").upper()
    if position:
        return position
    sequence = dataset.get("ViewCodeSequence")
    if sequence:
        code = _text(sequence[0], "CodeValue") or ""
        return VIEW_CODES.get(code, _text(sequence[0], "CodeMeaning"))
    return None


def _pixel_spacing(dataset: Any) -> tuple[float, float] | None:
    """(row, column) mm at the breast.  Pixel Spacing is calibrated there when present; Imager Pixel
    Spacing is at the detector, so it is divided by the Estimated Radiographic Magnification Factor
    (1.5-1.8 on a magnification view: the lesion is that much smaller than its shadow)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        values = _as_list(dataset.get(keyword))
        if len(values) != 2:
            continue
        try:
            row, column = float(values[0]), float(values[1])
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(v) and 0 < v < 10 for v in (row, column)):
            magnification = _magnification(dataset) if keyword == "ImagerPixelSpacing" else 1.0
            return row / magnification, column / magnification
    return None


def _magnification(dataset: Any) -> float:
    values = _as_list(dataset.get("EstimatedRadiographicMagnificationFactor"))
    try:
        factor = float(values[0]) if values else 1.0
    except (TypeError, ValueError):
        return 1.0
    return factor if math.isfinite(factor) and 1.0 <= factor <= 5.0 else 1.0
