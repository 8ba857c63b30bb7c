"""The DICOM loader: every transfer syntax, both photometric interpretations, each VOI variant, refusals."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from tests.dicom_factory import encode, mg_dataset, stored_ramp, write
from trt_mass.errors import InputError
from trt_mass.inputs.dicom import BREAST_TOMOSYNTHESIS, MG_FOR_PROCESSING, load_mammogram

LOSSLESS = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless,
            JPEG2000Lossless, HTJ2KLossless, JPEGLossless, JPEGLSLossless]


def linear_window(stored: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR, output normalised to 0..1."""
    x = stored.astype(np.float64)
    y = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(y, 0, 1)


def to_u16(unit: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(unit, 0, 1) * 65535).astype(np.uint16)


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda s: s.name)
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_lossless_syntaxes_decode_exactly(tmp_path: Path, syntax: str, photometric: str) -> None:
    stored = stored_ramp(bits=12)
    ds = mg_dataset(stored, photometric=photometric, WindowCenter="2048.5", WindowWidth="4096",
                    PresentationLUTShape="INVERSE" if photometric == "MONOCHROME1" else "IDENTITY")
    path = write(encode(ds, syntax), tmp_path / "a.dcm")
    mammogram = load_mammogram(path)
    expected = linear_window(stored, 2048.5, 4096)
    if photometric == "MONOCHROME1":
        expected = 1 - expected
    assert mammogram.transfer_syntax_uid == str(syntax)
    assert mammogram.pixels.dtype == np.uint16 and mammogram.pixels.flags.c_contiguous
    assert np.abs(mammogram.pixels.astype(int) - to_u16(expected).astype(int)).max() <= 1
    assert mammogram.laterality == "L" and mammogram.view == "CC" and mammogram.pixel_spacing_mm == (0.1, 0.1)


@pytest.mark.parametrize("syntax, options, tolerance", [
    (JPEG2000, {"j2k_psnr": [70]}, 0.02),
    (JPEGLSNearLossless, {"jls_error": 3}, 4 / 4095 + 1e-6),
], ids=["JPEG2000-lossy", "JPEG-LS-near-lossless"])
def test_lossy_syntaxes_decode_within_their_error(tmp_path: Path, syntax: str, options: dict, tolerance: float) -> None:
    stored = stored_ramp(bits=12)
    ds = mg_dataset(stored, WindowCenter="2048.5", WindowWidth="4096")
    mammogram = load_mammogram(write(encode(ds, syntax, **options), tmp_path / "a.dcm"))
    expected = linear_window(stored, 2048.5, 4096)
    assert np.abs(mammogram.pixels / 65535.0 - expected).max() <= tolerance


def test_voi_variants(tmp_path: Path) -> None:
    stored = stored_ramp(bits=14)
    x = stored.astype(np.float64)
    cases = {
        "linear": ({"WindowCenter": "8000", "WindowWidth": "6000"}, linear_window(stored, 8000, 6000)),
        "linear_exact": ({"WindowCenter": "8000", "WindowWidth": "6000", "VOILUTFunction": "LINEAR_EXACT"},
                         np.clip((x - (8000 - 3000)) / 6000, 0, 1)),
        "sigmoid": ({"WindowCenter": "9000", "WindowWidth": "5000", "VOILUTFunction": "SIGMOID"},
                    1 / (1 + np.exp(-4 * (x - 9000) / 5000))),
        # Several windows: the first is the default view.
        "several": ({"WindowCenter": ["5000", "12000"], "WindowWidth": ["2000", "3000"]},
                    linear_window(stored, 5000, 2000)),
        # A default window of width 0 (some units write one): the first usable one, not a refusal.
        "first_unusable": ({"WindowCenter": ["5000", "12000"], "WindowWidth": ["0", "3000"]},
                           linear_window(stored, 12000, 3000)),
        "rescaled": ({"RescaleSlope": "2", "RescaleIntercept": "-100", "WindowCenter": "15000",
                      "WindowWidth": "20000"}, linear_window(stored * 2.0 - 100, 15000, 20000)),
        "none": ({}, (x - x.min()) / (x.max() - x.min())),
    }
    for name, (attributes, expected) in cases.items():
        ds = mg_dataset(stored, bits=14, **attributes)
        mammogram = load_mammogram(write(ds, tmp_path / f"{name}.dcm"))
        assert np.abs(mammogram.pixels.astype(int) - to_u16(expected).astype(int)).max() <= 1, name


def test_voi_lut_sequence(tmp_path: Path) -> None:
    stored = stored_ramp(bits=12)
    lut = (np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)  # a gamma-like LUT, 12-bit output
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.LUTData = lut.tolist()
    ds = mg_dataset(stored, WindowCenter="100", WindowWidth="10")  # the LUT takes precedence
    ds.VOILUTSequence = Sequence([item])
    ds.VOILUTSequence[0]["LUTData"].VR = "US"
    mammogram = load_mammogram(write(ds, tmp_path / "lut.dcm"))
    expected = lut[stored] / 4095.0
    assert np.abs(mammogram.pixels.astype(int) - to_u16(expected).astype(int)).max() <= 1


def test_dense_tissue_is_bright_for_both_photometrics(tmp_path: Path) -> None:
    """The same anatomy stored as MONOCHROME1 and MONOCHROME2 loads to the same picture."""
    presentation = stored_ramp(bits=12)
    mono2 = mg_dataset(presentation, WindowCenter="2048.5", WindowWidth="4096")
    mono1 = mg_dataset((4095 - presentation).astype(np.uint16), photometric="MONOCHROME1",
                       WindowCenter="2048.5", WindowWidth="4096", PresentationLUTShape="INVERSE")
    a = load_mammogram(write(mono2, tmp_path / "m2.dcm")).pixels
    b = load_mammogram(write(mono1, tmp_path / "m1.dcm")).pixels
    # LINEAR windows are offset by half a stored step, so inversion moves values by one step (16).
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 65535 // 4095 + 1
    assert a[-1].mean() > a[0].mean()  # the ramp's bright end stays bright


def test_missing_presentation_intent_is_accepted(tmp_path: Path) -> None:
    ds = mg_dataset(stored_ramp(), PresentationIntentType=None, ImageLaterality=None, ViewPosition=None,
                    ImagerPixelSpacing=None)
    ds.Laterality = "R"
    mammogram = load_mammogram(write(ds, tmp_path / "anon.dcm"))
    assert mammogram.laterality == "R" and mammogram.view is None and mammogram.pixel_spacing_mm is None


def _refusal(tmp_path: Path, name: str, ds: Dataset) -> str:
    path = write(ds, tmp_path / f"{name}.dcm")
    with pytest.raises(InputError) as info:
        load_mammogram(path)
    assert f"{name}.dcm" in str(info.value)
    return info.value.reason


def test_refusals(tmp_path: Path) -> None:
    stored = stored_ramp()
    assert "not a mammogram" in _refusal(tmp_path, "ct", mg_dataset(stored, Modality="CT",
                                                                    SOPClassUID="1.2.840.10008.5.1.4.1.1.2"))
    assert "multi-frame" in _refusal(tmp_path, "frames", mg_dataset(np.vstack([stored] * 3), NumberOfFrames=3,
                                                                    Rows=stored.shape[0]))
    assert "tomosynthesis" in _refusal(tmp_path, "bto", mg_dataset(stored, SOPClassUID=BREAST_TOMOSYNTHESIS))
    assert "FOR PROCESSING" in _refusal(tmp_path, "proc", mg_dataset(stored, SOPClassUID=MG_FOR_PROCESSING))
    assert "FOR PROCESSING" in _refusal(tmp_path, "intent", mg_dataset(stored, PresentationIntentType="FOR PROCESSING"))
    no_pixels = mg_dataset(stored)
    del no_pixels.PixelData
    assert "no pixel data" in _refusal(tmp_path, "nopix", no_pixels)
    assert "grayscale" in _refusal(tmp_path, "rgb", mg_dataset(stored, PhotometricInterpretation="RGB"))
    for slope in ("0", "nan", "inf"):  # every pixel one value, or none at all: a blank image, not a mammogram
        assert "invalid RescaleSlope" in _refusal(tmp_path, f"slope{slope}", mg_dataset(
            stored, RescaleSlope=slope, RescaleIntercept="0"))
    assert "invalid RescaleIntercept" in _refusal(tmp_path, "intercept", mg_dataset(
        stored, RescaleSlope="1", RescaleIntercept="nan"))
    huge = mg_dataset(stored, Rows=60000, Columns=60000)
    started = time.perf_counter()
    assert "larger than any" in _refusal(tmp_path, "huge", huge)
    assert time.perf_counter() - started < 2.0


def test_not_dicom_and_truncated(tmp_path: Path) -> None:
    png = tmp_path / "image.dcm"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    with pytest.raises(InputError, match=r"image\.dcm: not a DICOM file"):
        load_mammogram(png)
    for syntax in (ExplicitVRLittleEndian, JPEG2000Lossless):
        full = write(encode(mg_dataset(stored_ramp(96, 80)), syntax), tmp_path / "full.dcm").read_bytes()
        cut = tmp_path / f"cut-{syntax.name[:8]}.dcm"
        cut.write_bytes(full[: len(full) - len(full) // 3])
        with pytest.raises(InputError) as info:
            load_mammogram(cut)
        assert cut.name in str(info.value)
    full = write(encode(mg_dataset(stored_ramp(96, 80)), JPEG2000Lossless), tmp_path / "full.dcm").read_bytes()
    for fraction in (0.6, 0.3):  # cut inside the encapsulated pixel data: pydicom gives an empty data set
        cut = tmp_path / f"cut{fraction}.dcm"
        cut.write_bytes(full[: int(len(full) * fraction)])
        with pytest.raises(InputError, match=rf"cut{fraction}\.dcm: truncated"):
            load_mammogram(cut)
    with pytest.raises(InputError, match="no such file"):
        load_mammogram(tmp_path / "missing.dcm")


def test_unsupported_syntax_names_the_decoder_package(tmp_path: Path) -> None:
    """With every JPEG 2000 decoder hidden (as on a machine without them), the refusal names the package."""
    path = write(encode(mg_dataset(stored_ramp()), JPEG2000Lossless), tmp_path / "j2k.dcm")
    code = ("import sys\nfor name in ('pylibjpeg', 'openjpeg', 'gdcm', 'PIL'):\n    sys.modules[name] = None\n"
            "from trt_mass.inputs.dicom import load_mammogram\nfrom trt_mass.errors import InputError\n"
            "try:\n    load_mammogram(sys.argv[1])\nexcept InputError as e:\n    print(e)\nelse:\n    print('LOADED')")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert "j2k.dcm" in out and "pylibjpeg-openjpeg" in out, out


def test_an_unknown_transfer_syntax_is_named(tmp_path: Path) -> None:
    known = write(encode(mg_dataset(stored_ramp()), ExplicitVRLittleEndian), tmp_path / "known.dcm").read_bytes()
    syntax = ExplicitVRLittleEndian.encode() + b"\x00"  # the same length keeps the meta group length right
    assert known.count(syntax) == 1
    (tmp_path / "private.dcm").write_bytes(known.replace(syntax, b"1.2.3.4.5.6.7.8.9.1\x00"))
    with pytest.raises(InputError, match=r"private\.dcm: Transfer Syntax UID 1\.2\.3\.4\.5\.6\.7\.8\.9\.1 is not"):
        load_mammogram(tmp_path / "private.dcm")


def test_decoder_panic_becomes_input_error(tmp_path: Path) -> None:
    """Found by the fuzz test: a corrupt RLE run makes pylibjpeg-rle (Rust) panic, a BaseException."""
    from pydicom.encaps import encapsulate, generate_frames

    ds = encode(mg_dataset(stored_ramp(40, 32)), RLELossless)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[66] = 0x81  # a replicate run that overruns the segment
    ds.PixelData = encapsulate([bytes(frame)])
    path = write(ds, tmp_path / "panic.dcm")
    with pytest.raises(InputError, match=r"panic\.dcm"):
        load_mammogram(path)


@pytest.mark.parametrize(("photometric", "shape", "inverted"), [
    ("MONOCHROME2", None, False),
    ("MONOCHROME2", "IDENTITY", False),
    ("MONOCHROME1", None, True),  # MONOCHROME1 alone: minimum is white, so invert
    ("MONOCHROME2", "INVERSE", True),  # INVERSE alone inverts too
    ("MONOCHROME1", "INVERSE", True),  # both describe the same inversion: applied once
])
def test_inversion_rule(tmp_path: Path, photometric: str, shape: str | None, inverted: bool) -> None:
    """Dense tissue comes out bright however the file says it is stored: each rule checked on its own."""
    anatomy = stored_ramp(bits=12)  # what a viewer must show: the ramp's last rows brightest
    stored = (4095 - anatomy).astype(np.uint16) if inverted else anatomy
    ds = mg_dataset(stored, photometric=photometric, WindowCenter="2048.5", WindowWidth="4096",
                    PresentationLUTShape=shape)
    pixels = load_mammogram(write(ds, tmp_path / "m.dcm")).pixels.astype(int)
    reference = load_mammogram(write(mg_dataset(anatomy, WindowCenter="2048.5", WindowWidth="4096"),
                                     tmp_path / "reference.dcm")).pixels.astype(int)
    assert np.abs(pixels - reference).max() <= 65535 // 4095 + 1
    assert pixels[-1].mean() > pixels[0].mean() + 30000


def _with_window(stored: np.ndarray, **attributes: object) -> Dataset:
    return mg_dataset(stored, WindowCenter=2048, WindowWidth=4096, **attributes)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_pixel_padding_is_air_and_out_of_the_auto_window(tmp_path: Path, photometric: str) -> None:
    """A CR-style border of Pixel Padding Value came out as a white (dense) band under MONOCHROME1 and
    stretched the auto window under either interpretation."""
    stored = np.clip(stored_ramp(48, 40), 1, 4094)  # tissue never takes the padding value
    stored[:, 30:] = 4095 if photometric == "MONOCHROME2" else 0
    padded = write(mg_dataset(stored, photometric=photometric, PixelPaddingValue=int(stored[0, 39])),
                   tmp_path / "padded.dcm")
    plain = write(mg_dataset(stored[:, :30].copy(), photometric=photometric), tmp_path / "plain.dcm")
    pixels = load_mammogram(padded).pixels
    assert not pixels[:, 30:].any(), "padding reads as air"
    np.testing.assert_array_equal(pixels[:, :30], load_mammogram(plain).pixels,
                                  err_msg="the tissue is windowed as if the padding were not there")
    ranged = stored.copy()
    ranged[:, 30:] = np.arange(10)[None, :] % 4  # a padding range 0..3, given as Value and Range Limit
    limit = write(mg_dataset(ranged, PixelPaddingValue=3, PixelPaddingRangeLimit=0), tmp_path / "range.dcm")
    assert not load_mammogram(limit).pixels[:, 30:].any()


def test_a_magnification_view_measures_at_the_breast(tmp_path: Path) -> None:
    """Imager Pixel Spacing is at the detector: a 1.5x magnification view's lesions are 1.5x smaller."""
    path = write(mg_dataset(stored_ramp(), ImagerPixelSpacing=[0.15, 0.15],
                            EstimatedRadiographicMagnificationFactor=1.5), tmp_path / "mag.dcm")
    assert load_mammogram(path).pixel_spacing_mm == pytest.approx((0.1, 0.1))
    calibrated = write(mg_dataset(stored_ramp(), PixelSpacing=[0.07, 0.07],
                                  EstimatedRadiographicMagnificationFactor=1.5), tmp_path / "cal.dcm")
    assert load_mammogram(calibrated).pixel_spacing_mm == pytest.approx((0.07, 0.07)), "calibrated already"


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless, ExplicitVRLittleEndian])
def test_bits_above_bits_stored_are_not_pixels(tmp_path: Path, syntax: str) -> None:
    """Old units keep overlays in the unused high bits; the JPEG 2000 / JPEG-LS codecs returned them."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    stored = stored_ramp()
    marked = stored.copy()
    marked[10:20, 5:30] |= 0x8000
    clean = load_mammogram(write(_with_window(stored), tmp_path / "clean.dcm")).pixels
    ds = _with_window(marked)
    if syntax == JPEG2000Lossless:
        ds.PixelData = encapsulate([imagecodecs.jpeg2k_encode(marked, level=0, bitspersample=16, codecformat="J2K")])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax == JPEGLSLossless:
        ds.BitsStored, ds.HighBit = 16, 15
        ds.compress(syntax, marked, generate_instance_uid=False)
        ds.BitsStored, ds.HighBit = 12, 11
    np.testing.assert_array_equal(load_mammogram(write(ds, tmp_path / "marked.dcm")).pixels, clean)


@pytest.mark.parametrize("form", ["packed", "per_word"])
def test_an_eight_bit_voi_lut_reads_in_both_forms(tmp_path: Path, form: str) -> None:
    """pydicom refused the standard packed form and misread one entry per 16-bit word."""
    stored = stored_ramp()
    table = np.rint(np.arange(4096) / 4095 * 255).astype(np.uint8)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 8]
    item.LUTData = table.tobytes() if form == "packed" else table.astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    path = write(mg_dataset(stored, VOILUTSequence=Sequence([item])), tmp_path / "voi8.dcm")
    expected = np.rint(table[stored].astype(np.float64) / 255 * 65535)
    np.testing.assert_array_equal(load_mammogram(path).pixels, expected)


def test_an_enhanced_breast_projection_image_reads_its_functional_groups(tmp_path: Path) -> None:
    """Window, rescale, spacing and laterality of a Breast Projection image (a synthesized 2-D view) live
    in functional groups: they were ignored (auto window, no spacing, no laterality)."""
    from trt_mass.inputs.dicom import BREAST_PROJECTION_FOR_PRESENTATION
    from trt_mass.outputs.dicom import read_source, source_laterality

    stored = stored_ramp()
    stored[:3, :3] = 4095  # a marker that would widen an auto window
    reference = load_mammogram(write(mg_dataset(stored, WindowCenter=1500, WindowWidth=1000, RescaleIntercept=-100,
                                                RescaleSlope=1, PixelSpacing=[0.07, 0.07], ImageLaterality="R"),
                                     tmp_path / "flat.dcm"))
    voi, measures, rescale, anatomy, shared = Dataset(), Dataset(), Dataset(), Dataset(), Dataset()
    voi.WindowCenter, voi.WindowWidth = 1500, 1000
    measures.PixelSpacing = [0.07, 0.07]
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -100, 1, "US"
    anatomy.FrameLaterality = "R"
    shared.FrameVOILUTSequence, shared.PixelMeasuresSequence = Sequence([voi]), Sequence([measures])
    shared.PixelValueTransformationSequence, shared.FrameAnatomySequence = Sequence([rescale]), Sequence([anatomy])
    ds = mg_dataset(stored, SOPClassUID=BREAST_PROJECTION_FOR_PRESENTATION, NumberOfFrames=1, ImageLaterality=None,
                    ImagerPixelSpacing=None, SharedFunctionalGroupsSequence=Sequence([shared]),
                    PerFrameFunctionalGroupsSequence=Sequence([Dataset()]))
    ds.file_meta.MediaStorageSOPClassUID = BREAST_PROJECTION_FOR_PRESENTATION
    path = write(ds, tmp_path / "enhanced.dcm")
    enhanced = load_mammogram(path)
    np.testing.assert_array_equal(enhanced.pixels, reference.pixels)
    assert (enhanced.pixel_spacing_mm, enhanced.laterality) == ((0.07, 0.07), "R")
    assert source_laterality(read_source(path)) == "R", "the DICOM outputs' laterality too"


def test_twelve_bit_jpeg_extended_is_read(tmp_path: Path) -> None:
    """GDCM and Pillow decline 12-bit JPEG (process 4): it was refused over three lines of plugin errors."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    from trt_mass.inputs.dicom import JPEG_EXTENDED

    stored = stored_ramp(64, 48)
    plain = load_mammogram(write(_with_window(stored), tmp_path / "plain.dcm")).pixels
    ds = _with_window(stored)
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(stored, level=98, bitspersample=12)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG_EXTENDED
    read = load_mammogram(write(ds, tmp_path / "ext12.dcm"))
    assert read.pixel_decoder == "imagecodecs-libjpeg"
    assert np.abs(read.pixels.astype(float) - plain).mean() < 0.01 * 65535, "lossy, but the same image"
    whole = imagecodecs.jpeg8_encode(stored, level=98, bitspersample=12)
    for name, frame in (("broken", b"\xff\xd8\xff\xc1" + b"\x00" * 40), ("half", whole[: len(whole) // 2])):
        ds.PixelData = encapsulate([frame])  # libjpeg-turbo fills half a stream with grey: refused, not read
        ds["PixelData"].VR = "OB"
        with pytest.raises(InputError, match=rf"{name}.dcm: truncated or corrupt pixel data \([^\n]*\)$"):
            load_mammogram(write(ds, tmp_path / f"{name}.dcm"))
