"""The Mammography CAD SR (DICOM TID 4000) of one analysed image and its mass findings.

Rows of TID 4000 as written: language (TID 1204), the image library with the analysed image and its
acquisition context (TID 4020), the CAD processing and findings summary with one Individual Impression /
Single Image Finding per mass (TID 4003 / 4006: rendering intent, algorithm, certainty = score in %,
centre and outline as SCOORDs on the image), the summary of detections (TID 4015 / 4017) and of analyses
(not attempted).  The tests hold the result to the template and to DCMTK's dsrdump.
"""

from __future__ import annotations

import time
from typing import Any

from trt_mass.geometry import Finding
from trt_mass.outputs.dicom import (
    MANUFACTURER,
    MODEL_NAME,
    SERIES,
    ModelIdentity,
    series_and_instance_uids,
    source_laterality,
    stamp_series,
)

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
    laterality = source_laterality(source)
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


def build_cad_sr(source: Any, findings: list[Finding], model: ModelIdentity, result_stem: str | None = None) -> Any:
    """Mammography CAD SR (TID 4000) for one analysed image and its mass findings."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = _sr_document(source, model, result_stem)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("111036", "DCM", "Mammography CAD Report")])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "4000"
    ds.ContentTemplateSequence = Sequence([template])
    ds.ContentSequence = Sequence(_report_content(source, findings, model))
    stamp_series(ds, "sr", source)
    return ds


def _report_content(source: Any, findings: list[Finding], model: ModelIdentity) -> list[Any]:
    """TID 4000 rows 2-8: language, image library, findings summary, detections, analyses."""
    summary_concept = ("111017", "DCM", "CAD Processing and Findings Summary")
    summary_value = (("111242", "DCM", "All algorithms succeeded; with findings") if findings
                     else ("111241", "DCM", "All algorithms succeeded; without findings"))
    summary = _code_item("CONTAINS", summary_concept, summary_value)
    if findings:
        summary = _children(summary, [_single_image_finding(f, model) for f in findings])
    detections = _children(_code_item("CONTAINS", ("111064", "DCM", "Summary of Detections"),
                                      ("111222", "DCM", "Succeeded")), [_detections_performed(model)])
    analyses = _code_item("CONTAINS", ("111065", "DCM", "Summary of Analyses"), ("111225", "DCM", "Not Attempted"))
    library = _children(_item("CONTAINS", "CONTAINER", ("111028", "DCM", "Image Library")),
                        [_image_library_entry(source)])
    language = _code_item("HAS CONCEPT MOD", ("121049", "DCM", "Language of Content Item and Descendants"),
                          ("en-US", "RFC5646", "English (United States)"))
    return [language, library, summary, detections, analyses]


def _sr_document(source: Any, model: ModelIdentity, result_stem: str | None) -> Any:
    """File meta, the patient and study modules copied from the source, the series and SR document modules."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import UID, ExplicitVRLittleEndian

    series_uid, instance_uid = series_and_instance_uids(source, model, "sr", result_stem)
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
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([_evidence(source)])
    return ds


def _evidence(source: Any) -> Any:
    """The evidence sequence item: the analysed image, in its series, in its study."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    image = Dataset()
    image.ReferencedSOPClassUID = source.SOPClassUID
    image.ReferencedSOPInstanceUID = source.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedSOPSequence = Sequence([image])
    evidence = Dataset()
    evidence.StudyInstanceUID = source.StudyInstanceUID
    evidence.ReferencedSeriesSequence = Sequence([series])
    return evidence
