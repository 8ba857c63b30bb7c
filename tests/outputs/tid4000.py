"""A checker of the TID 4000 items trt_mass's CAD SR writes (presence and form), for the tests.

Not a full template validator: dciodvfy checks the IOD and DCMTK's dsrdump reads the tree; this checks
the rows of TID 4000 that trt_mass.outputs.cad_sr promises, and notices when one goes missing.
"""

from __future__ import annotations

from typing import Any

from trt_mass.outputs.cad_sr import MAMMOGRAPHY_CAD_SR


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
