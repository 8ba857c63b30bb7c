"""The marks where any viewer shows them: a Grayscale Softcopy Presentation State (GSPS) with the boxes
and scores on a graphic layer, and a burned-in Secondary Capture labelled NOT FOR DIAGNOSIS."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import ImageDraw

from trt_mass.geometry import Finding
from trt_mass.outputs.dicom import (
    MANUFACTURER,
    MODEL_NAME,
    SC_MAX_SIDE,
    SERIES,
    ModelIdentity,
    series_and_instance_uids,
    source_laterality,
    stamp_series,
)


def build_gsps(source: Any, findings: list[Finding], model: ModelIdentity, result_stem: str | None = None) -> Any:
    """Grayscale Softcopy Presentation State: each finding as a box and a score on layer TRTMASS_CAD."""
    import highdicom as hd

    series_uid, instance_uid = series_and_instance_uids(source, model, "gsps", result_stem)
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
    stamp_series(gsps, "gsps", source)
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


def build_secondary_capture(source: Any, pixels: np.ndarray, findings: list[Finding], model: ModelIdentity,
                            result_stem: str | None = None) -> Any:
    """Secondary Capture of the image with the marks burned in, labelled as derived and not for diagnosis."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    series_uid, instance_uid = series_and_instance_uids(source, model, "sc", result_stem)
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
        laterality=source_laterality(source),
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
    stamp_series(sc, "sc", source)
    return sc
