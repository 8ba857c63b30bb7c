"""DICOM results a PACS can show: a Mammography CAD SR, a GSPS with the marks, a burned-in copy.

All three go into the source study (the patient and study modules are copied from the source image:
the only place patient data is copied), each in a new series, with UIDs derived from the source SOP
Instance UID and the model hash, so that reprocessing replaces instead of duplicating.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from trt_mass import __version__
from trt_mass.errors import ConfigError, InputError
from trt_mass.geometry import Finding

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
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown:
        raise ConfigError(f"unknown DICOM output {unknown}; choose from {', '.join(OUTPUT_KINDS)}")
    return kinds


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
    for keyword in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns"):
        if not source.get(keyword):
            raise InputError(str(path), f"no {keyword}: DICOM outputs cannot reference this image")
    for keyword, value in TYPE2_DEFAULTS.items():
        if keyword not in source:
            setattr(source, keyword, value)
    return source


def _uids(source: Any, model: ModelIdentity, kind: str) -> tuple[str, str]:
    series_uid = derived_uid(str(source.StudyInstanceUID), model.weights_sha256, kind, "series")
    instance_uid = derived_uid(str(source.SOPInstanceUID), model.weights_sha256, kind, "instance")
    return series_uid, instance_uid


def _stamp(dataset: Any, kind: str, source: Any) -> None:
    dataset.SeriesDescription = SERIES[kind][1]
    if kind == "sr":
        return  # the SR Document Series has no Laterality
    # General Series Laterality (Type 2C for paired body parts): the analysed breast.
    laterality = source.get("ImageLaterality") or source.get("Laterality") or ""
    dataset.Laterality = laterality if laterality in ("L", "R") else ""


def build_gsps(source: Any, findings: list[Finding], model: ModelIdentity) -> Any:
    """Grayscale Softcopy Presentation State: each finding as a box and a score on layer TRTMASS_CAD."""
    import highdicom as hd

    series_uid, instance_uid = _uids(source, model, "gsps")
    layer = hd.pr.GraphicLayer(layer_name="TRTMASS_CAD", order=1, description="trt_mass mass detections",
                               display_color=hd.color.CIELabColor(60.0, 70.0, 50.0))
    graphics, texts = [], []
    rows, columns = int(source.Rows), int(source.Columns)
    for finding in findings:
        x1, y1, x2, y2 = finding.x1, finding.y1, finding.x2, finding.y2
        outline = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)
        graphics.append(hd.pr.GraphicObject(graphic_type="POLYLINE", graphic_data=outline, units="PIXEL"))
        top = max(0.0, y1 - 0.03 * rows)
        box = (x1, top, min(float(columns), x1 + 0.15 * columns), max(top + 1.0, y1))
        texts.append(hd.pr.TextObject(text_value=f"mass {finding.score:.2f}", units="PIXEL", bounding_box=box))
    annotations = []
    if findings:
        annotations.append(hd.pr.GraphicAnnotation(referenced_images=[source], graphic_layer=layer,
                                                   graphic_objects=graphics, text_objects=texts))
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source],
        series_instance_uid=series_uid,
        series_number=SERIES["gsps"][0],
        sop_instance_uid=instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=model.algorithm_version[:64],
        device_serial_number=model.weights_sha256[:16],
        content_label="TRTMASS_CAD",
        content_description="trt_mass mass detections",
        graphic_annotations=annotations or None,
        graphic_layers=[layer],
    )
    _stamp(gsps, "gsps", source)
    return gsps


def render_burned_in(pixels: np.ndarray, findings: list[Finding]) -> np.ndarray:
    """RGB uint8 [h, w, 3]: the image (long side <= SC_MAX_SIDE) with boxes, scores and a warning banner."""
    from trt_mass.outputs.overlay import downscaled_rgb

    picture, scale = downscaled_rgb(pixels, SC_MAX_SIDE)
    size = picture.size
    draw = ImageDraw.Draw(picture)
    line = max(2, round(max(size) / 500))
    for finding in findings:
        box = [finding.x1 * scale, finding.y1 * scale, finding.x2 * scale, finding.y2 * scale]
        draw.rectangle(box, outline=(255, 200, 0), width=line)
        draw.text((box[0] + 2, max(0, box[1] - 14)), f"mass {finding.score:.2f}", fill=(255, 200, 0))
    draw.rectangle([0, 0, size[0], 16], fill=(0, 0, 0))
    draw.text((4, 2), "DERIVED: CAD MARKS BURNED IN - NOT FOR DIAGNOSIS", fill=(255, 64, 64))
    return np.asarray(picture, dtype=np.uint8)


def build_secondary_capture(source: Any, pixels: np.ndarray, findings: list[Finding], model: ModelIdentity) -> Any:
    """Secondary Capture of the image with the marks burned in, labelled as derived and not for diagnosis."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    series_uid, instance_uid = _uids(source, model, "sc")
    rgb = render_burned_in(pixels, findings)
    orientation = tuple(source.get("PatientOrientation") or ())
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=SERIES["sc"][0],
        sop_instance_uid=instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        laterality=source.get("ImageLaterality") or source.get("Laterality") or None,
        patient_orientation=("A", "R"),  # replaced below: highdicom's enum lacks mammography's "FR" etc.
    )
    patient_orientation: Any = list(orientation) if len(orientation) == 2 else ""
    sc.PatientOrientation = patient_orientation
    sc.BurnedInAnnotation = "YES"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = "Mass detections of trt_mass burned into a downscaled copy; not for diagnosis"
    sc.ImageComments = "NOT FOR DIAGNOSIS: CAD marks burned in by trt_mass"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = Sequence([reference])
    _stamp(sc, "sc", source)
    return sc


def write_dicom_outputs(source_path: Path, pixels: np.ndarray, findings: list[Finding], model: ModelIdentity,
                        out_dir: Path, kinds: tuple[str, ...]) -> dict[str, Path]:
    """Build and write the requested objects as <SOP Instance UID of the source>.<kind>.dcm."""
    from trt_mass.outputs.overlay import write_atomic

    source = read_source(source_path)
    builders = {
        "sr": lambda: build_cad_sr(source, findings, model),
        "gsps": lambda: build_gsps(source, findings, model),
        "sc": lambda: build_secondary_capture(source, pixels, findings, model),
    }
    written = {}
    for kind in kinds:
        dataset = builders[kind]()
        import io

        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        target = out_dir / f"{source.SOPInstanceUID}.{kind}.dcm"
        write_atomic(target, buffer.getvalue())
        written[kind] = target
    return written


MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
ALGORITHM_NAME = "trt_mass RetinaNet mass detection"
# CID 6014 (Mammography Single Image Finding) has no "mass": a mass seen on one view is a density,
# (129793001, SCT, "Mammography breast density"), as other CAD SR writers encode it.
SINGLE_VIEW_MASS = ("129793001", "SCT", "Mammography breast density")
PRESENTATION_REQUIRED = ("111150", "DCM", "Presentation Required: Rendering device is expected to present")
SIDES = {"L": ("80248007", "SCT", "Left breast"), "R": ("73056007", "SCT", "Right breast"),
         "B": ("63762007", "SCT", "Both breasts")}
IMAGE_LIBRARY_ITEM = [1, 2, 1]  # ReferencedContentItemIdentifier of the analysed image in the tree


def _code(value: str, scheme: str, meaning: str) -> Any:
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _item(relationship: str | None, value_type: str, concept: tuple[str, str, str] | None, **values: Any) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    if relationship:
        item.RelationshipType = relationship
    item.ValueType = value_type
    if concept:
        item.ConceptNameCodeSequence = Sequence([_code(*concept)])
    if value_type == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _code_item(relationship: str, concept: tuple[str, str, str], value: tuple[str, str, str]) -> Any:
    from pydicom.sequence import Sequence

    return _item(relationship, "CODE", concept, ConceptCodeSequence=Sequence([_code(*value)]))


def _children(item: Any, children: list[Any]) -> Any:
    from pydicom.sequence import Sequence

    item.ContentSequence = Sequence(children)
    return item


def _num_item(relationship: str, concept: tuple[str, str, str], value: float, unit: tuple[str, str, str]) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    measured = Dataset()
    measured.NumericValue = f"{value:.6g}"
    measured.MeasurementUnitsCodeSequence = Sequence([_code(*unit)])
    return _item(relationship, "NUM", concept, MeasuredValueSequence=Sequence([measured]))


def _scoord(concept: tuple[str, str, str], graphic_type: str, points: list[float]) -> Any:
    reference = _item("SELECTED FROM", "IMAGE", None)
    del reference.ValueType  # by-reference: relationship + identifier only
    reference.ReferencedContentItemIdentifier = IMAGE_LIBRARY_ITEM
    scoord = _item("HAS PROPERTIES", "SCOORD", concept, GraphicType=graphic_type,
                   GraphicData=[float(v) for v in points])
    return _children(scoord, [reference])


def _image_library_entry(source: Any) -> Any:
    """TID 4020: the analysed image and the acquisition context copied from its header."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    image = _item("CONTAINS", "IMAGE", None, ReferencedSOPSequence=Sequence([reference]))
    context = []
    laterality = source.get("ImageLaterality")
    if laterality in SIDES:
        context.append(_code_item("HAS ACQ CONTEXT", ("111027", "DCM", "Image Laterality"), SIDES[laterality]))
    views = source.get("ViewCodeSequence")
    if views:
        view = views[0]
        context.append(_code_item("HAS ACQ CONTEXT", ("111031", "DCM", "Image View"),
                                  (view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning)))
    orientation = list(source.get("PatientOrientation") or [])
    if len(orientation) == 2:
        context.append(_item("HAS ACQ CONTEXT", "TEXT", ("111044", "DCM", "Patient Orientation Row"),
                             TextValue=str(orientation[0])))
        context.append(_item("HAS ACQ CONTEXT", "TEXT", ("111043", "DCM", "Patient Orientation Column"),
                             TextValue=str(orientation[1])))
    for keyword, concept, value_type in (("StudyDate", ("111060", "DCM", "Study Date"), "DATE"),
                                         ("StudyTime", ("111061", "DCM", "Study Time"), "TIME"),
                                         ("ContentDate", ("111018", "DCM", "Content Date"), "DATE"),
                                         ("ContentTime", ("111019", "DCM", "Content Time"), "TIME")):
        value = source.get(keyword)
        if value:
            context.append(_item("HAS ACQ CONTEXT", value_type, concept, **{value_type.title(): value}))
    spacing = source.get("ImagerPixelSpacing") or source.get("PixelSpacing")
    if spacing and len(spacing) == 2:
        millimetre = ("mm", "UCUM", "millimeter")
        # DICOM spacing is row\column: the column spacing is the horizontal one.
        context.append(_num_item("HAS ACQ CONTEXT", ("111026", "DCM", "Horizontal Pixel Spacing"),
                                 float(spacing[1]), millimetre))
        context.append(_num_item("HAS ACQ CONTEXT", ("111066", "DCM", "Vertical Pixel Spacing"),
                                 float(spacing[0]), millimetre))
    return _children(image, context) if context else image


def _algorithm(model: ModelIdentity) -> list[Any]:
    return [_item("HAS PROPERTIES", "TEXT", ("111001", "DCM", "Algorithm Name"), TextValue=ALGORITHM_NAME),
            _item("HAS PROPERTIES", "TEXT", ("111003", "DCM", "Algorithm Version"),
                  TextValue=model.algorithm_version[:64])]


def _single_image_finding(finding: Finding, model: ModelIdentity) -> Any:
    """TID 4003 + 4006: one Individual Impression holding one Single Image Finding (box, centre, score)."""
    rendering = ("111056", "DCM", "Rendering Intent")
    x1, y1, x2, y2 = finding.x1, finding.y1, finding.x2, finding.y2
    single = _children(_code_item("CONTAINS", ("111059", "DCM", "Single Image Finding"), SINGLE_VIEW_MASS), [
        _code_item("HAS CONCEPT MOD", rendering, PRESENTATION_REQUIRED),
        *_algorithm(model),
        _num_item("HAS PROPERTIES", ("111012", "DCM", "Certainty of Finding"), 100.0 * finding.score,
                  ("%", "UCUM", "Percent")),
        _scoord(("111010", "DCM", "Center"), "POINT", [(x1 + x2) / 2, (y1 + y2) / 2]),
        _scoord(("111041", "DCM", "Outline"), "POLYLINE", [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]),
    ])
    impression = _item("INFERRED FROM", "CONTAINER", ("111034", "DCM", "Individual Impression/Recommendation"))
    return _children(impression, [_code_item("HAS CONCEPT MOD", rendering, PRESENTATION_REQUIRED), single])


def _detections_performed(model: ModelIdentity) -> Any:
    """TID 4015/4017: the one detection algorithm, which ran on the analysed image."""
    reference = _item("HAS PROPERTIES", "IMAGE", None)
    del reference.ValueType
    reference.ReferencedContentItemIdentifier = IMAGE_LIBRARY_ITEM
    performed = _children(_code_item("CONTAINS", ("111022", "DCM", "Detection Performed"), SINGLE_VIEW_MASS),
                          [*_algorithm(model), reference])
    return _children(_item("INFERRED FROM", "CONTAINER", ("111063", "DCM", "Successful Detections")), [performed])


def build_cad_sr(source: Any, findings: list[Finding], model: ModelIdentity) -> Any:
    """Mammography CAD SR (TID 4000) for one analysed image and its mass findings."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import UID, ExplicitVRLittleEndian

    series_uid, instance_uid = _uids(source, model, "sr")
    summary_value = (("111242", "DCM", "All algorithms succeeded; with findings") if findings
                     else ("111241", "DCM", "All algorithms succeeded; without findings"))
    summary = _children(_code_item("CONTAINS", ("111017", "DCM", "CAD Processing and Findings Summary"),
                                   summary_value),
                        [_single_image_finding(f, model) for f in findings]) if findings else \
        _code_item("CONTAINS", ("111017", "DCM", "CAD Processing and Findings Summary"), summary_value)
    detections = _children(_code_item("CONTAINS", ("111064", "DCM", "Summary of Detections"),
                                      ("111222", "DCM", "Succeeded")), [_detections_performed(model)])
    analyses = _code_item("CONTAINS", ("111065", "DCM", "Summary of Analyses"), ("111225", "DCM", "Not Attempted"))
    library = _children(_item("CONTAINS", "CONTAINER", ("111028", "DCM", "Image Library")),
                        [_image_library_entry(source)])
    language = _code_item("HAS CONCEPT MOD", ("121049", "DCM", "Language of Content Item and Descendants"),
                          ("en-US", "RFC5646", "English (United States)"))

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(MAMMOGRAPHY_CAD_SR)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(instance_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID, ds.SOPInstanceUID = MAMMOGRAPHY_CAD_SR, instance_uid
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, keyword, source.get(keyword, ""))
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SERIES["sr"][0]
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = model.algorithm_version[:64]
    ds.InstanceNumber = 1
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ContentDate = ds.InstanceCreationDate = time.strftime("%Y%m%d")
    ds.ContentTime = ds.InstanceCreationTime = time.strftime("%H%M%S")
    ds.PerformedProcedureCodeSequence = Sequence([])
    evidence_image = Dataset()
    evidence_image.ReferencedSOPClassUID = source.SOPClassUID
    evidence_image.ReferencedSOPInstanceUID = source.SOPInstanceUID
    evidence_series = Dataset()
    evidence_series.SeriesInstanceUID = source.SeriesInstanceUID
    evidence_series.ReferencedSOPSequence = Sequence([evidence_image])
    evidence = Dataset()
    evidence.StudyInstanceUID = source.StudyInstanceUID
    evidence.ReferencedSeriesSequence = Sequence([evidence_series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("111036", "DCM", "Mammography CAD Report")])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "4000"
    ds.ContentTemplateSequence = Sequence([template])
    ds.ContentSequence = Sequence([language, library, summary, detections, analyses])
    _stamp(ds, "sr", source)
    return ds


def _concept(item: Any) -> str | None:
    sequence = item.get("ConceptNameCodeSequence")
    return str(sequence[0].CodeValue) if sequence else None


def _value(item: Any) -> str | None:
    sequence = item.get("ConceptCodeSequence")
    return str(sequence[0].CodeValue) if sequence else None


def _find(items: Any, relationship: str, value_type: str | None, concept: str) -> list[Any]:
    return [i for i in items or [] if i.get("RelationshipType") == relationship and _concept(i) == concept
            and (value_type is None or i.get("ValueType") == value_type)]


def check_cad_sr_template(sr: Any) -> list[str]:
    """The TID 4000 items this product writes, checked for presence and form; returns the problems found."""
    problems: list[str] = []

    def need(condition: bool, message: str) -> bool:
        if not condition:
            problems.append(message)
        return condition

    need(sr.get("SOPClassUID") == MAMMOGRAPHY_CAD_SR, "SOP Class is not Mammography CAD SR")
    need(sr.get("ValueType") == "CONTAINER" and _concept(sr) == "111036", "root is not (111036) Mammography CAD Report")
    templates = sr.get("ContentTemplateSequence") or []
    need(any(t.TemplateIdentifier == "4000" and t.MappingResource == "DCMR" for t in templates), "no DCMR TID 4000")
    items = list(sr.get("ContentSequence") or [])
    need(bool(items) and items[0].get("RelationshipType") == "HAS CONCEPT MOD" and _concept(items[0]) == "121049",
         "row 2: language (TID 1204) must come first")
    libraries = _find(items, "CONTAINS", "CONTAINER", "111028")
    if need(len(libraries) == 1, "row 3: one Image Library"):
        images = [i for i in libraries[0].get("ContentSequence") or [] if i.get("ValueType") == "IMAGE"]
        need(len(images) >= 1 and all("ReferencedSOPSequence" in i for i in images), "row 4: image library entries")
        for image in images:
            context = image.get("ContentSequence") or []
            need(bool(_find(context, "HAS ACQ CONTEXT", "CODE", "111027")), "TID 4020: Image Laterality")
            need(bool(_find(context, "HAS ACQ CONTEXT", "CODE", "111031")), "TID 4020: Image View")
    summaries = _find(items, "CONTAINS", "CODE", "111017")
    if need(len(summaries) == 1, "row 5: CAD Processing and Findings Summary"):
        impressions = _find(summaries[0].get("ContentSequence"), "INFERRED FROM", "CONTAINER", "111034")
        with_findings = _value(summaries[0]) == "111242"
        need(with_findings == bool(impressions), "summary value disagrees with the findings present")
        for impression in impressions:
            children = impression.get("ContentSequence") or []
            need(bool(_find(children, "HAS CONCEPT MOD", "CODE", "111056")), "TID 4003: Rendering Intent")
            singles = _find(children, "CONTAINS", "CODE", "111059")
            need(bool(singles), "TID 4003: a Single Image Finding")
            for single in singles:
                parts = single.get("ContentSequence") or []
                need(bool(_find(parts, "HAS CONCEPT MOD", "CODE", "111056")), "TID 4006: Rendering Intent")
                need(bool(_find(parts, "HAS PROPERTIES", "TEXT", "111001")), "TID 4019: Algorithm Name")
                need(bool(_find(parts, "HAS PROPERTIES", "TEXT", "111003")), "TID 4019: Algorithm Version")
                need(bool(_find(parts, "HAS PROPERTIES", "NUM", "111012")), "TID 4006: Certainty of Finding")
                for concept, graphic in (("111010", "POINT"), ("111041", "POLYLINE")):
                    coords = _find(parts, "HAS PROPERTIES", "SCOORD", concept)
                    need(len(coords) == 1 and coords[0].GraphicType == graphic, f"TID 4006: {concept} {graphic}")
                    need(bool(coords) and bool(coords[0].get("ContentSequence")), "SCOORD without its IMAGE")
    detections = _find(items, "CONTAINS", "CODE", "111064")
    if need(len(detections) == 1, "row 6: Summary of Detections"):
        performed = _find(detections[0].get("ContentSequence"), "INFERRED FROM", "CONTAINER", "111063")
        need(_value(detections[0]) == "111225" or bool(performed), "row 7: CAD Detections Performed")
    need(len(_find(items, "CONTAINS", "CODE", "111065")) == 1, "row 8: Summary of Analyses")
    need(bool(sr.get("CurrentRequestedProcedureEvidenceSequence")), "evidence sequence listing the image")
    return problems
