"""trt_mass: deploy a RetinaNet mammogram mass detector (ONNX Runtime on CPU, TensorRT on GPU).

Public API (no torch needed):

    from trt_mass import Detector
    with Detector("model.onnx") as detector:
        result = detector.detect(image_uint16)          # findings in original pixels
        for finding in result.findings: print(finding.to_dict())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trt_mass.version import __version__

if TYPE_CHECKING:
    from trt_mass.geometry import Finding
    from trt_mass.pipeline import DetectionResult, Detector

__all__ = ["DetectionResult", "Detector", "Finding", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import trt_mass` (and `trtmass --help`) stays light.
    if name in ("Detector", "DetectionResult"):
        from trt_mass import pipeline

        return getattr(pipeline, name)
    if name == "Finding":
        from trt_mass.geometry import Finding

        return Finding
    raise AttributeError(name)
