"""The demo model shipped inside the package (see trt_mass/data/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

from trt_mass.errors import ModelError

BUNDLED_MODEL = Path(__file__).parent / "data" / "demo-model.onnx"
MODEL_CARD = Path(__file__).parent / "data" / "MODEL_CARD.md"


def default_model() -> Path:
    """The bundled demo model; ModelError when this installation has none."""
    if not BUNDLED_MODEL.is_file():
        raise ModelError(f"no --model given and no bundled model at {BUNDLED_MODEL}")
    return BUNDLED_MODEL
