"""`bench --compare-decoders`: disagreements between decoders are reported, never hidden."""

from __future__ import annotations

import numpy as np

from trt_mass.bench.decoders import _disagreements


def test_a_different_image_or_a_refusal_is_a_disagreement() -> None:
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    other = image.copy()
    other[0, 0] += 1
    assert _disagreements("a.dcm", {"pydicom": (image, "pydicom"), "openjpeg x2": (image.copy(), "openjpeg")}) == []
    found = _disagreements("a.dcm", {"pydicom": (image, "pydicom"), "openjpeg x2": (other, "openjpeg"),
                                     "nvimgcodec": (None, "refused: corrupt")})
    assert found == ["a.dcm: openjpeg x2 (openjpeg) differs from pydicom (pydicom)",
                     "a.dcm: nvimgcodec refused: corrupt, pydicom pydicom"]
    both_refuse = {"pydicom": (None, "refused: x"), "openjpeg x1": (None, "refused: x")}
    assert _disagreements("b.dcm", both_refuse) == []
