"""TensorRT for real: build an engine from a tiny int32-canvas model, run it, compare with ONNX Runtime.

Marked `tensorrt`; skipped (with the reason) unless tensorrt imports and a CUDA GPU is there.  No fake
tensorrt module anywhere: without TensorRT these tests do not run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.engine_helpers import export_tiny_int32
from tests.helpers import match_as_sets
from trt_mass.engine.gpu import probe_gpu
from trt_mass.engine.sidecar import read_sidecar, sidecar_path
from trt_mass.errors import ModelError


def _unavailable() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception as error:
        return f"tensorrt is not installed ({error})"
    gpu, why = probe_gpu()
    return None if gpu is not None else f"no CUDA GPU ({why})"


REASON = _unavailable()
pytestmark = [pytest.mark.tensorrt, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from trt_mass.engine.build import build_engine
    from trt_mass.engine.profiles import load_profile

    models = tmp_path_factory.mktemp("trt-models")
    source = export_tiny_int32(tmp_path_factory.getbasetemp() / "int32-models")
    onnx = models / "tiny.onnx"
    onnx.write_bytes(source.read_bytes())
    profile_path = models.parent / "fp32-test.toml"
    cache = models.parent / "timing.cache"
    profile_path.write_text(f'precisions = ["fp32"]\nworkspace_mib = 1024\ntiming_cache = "{cache}"\n')
    engine = models / "tiny.plan"
    build_engine(onnx, load_profile(profile_path), engine)
    return {"models": models, "onnx": onnx, "engine": engine, "cache": cache}


def _build(models: Path, onnx: Path, name: str) -> Path:
    from trt_mass.engine.build import build_engine
    from trt_mass.engine.profiles import load_profile

    profile_path = models.parent / "fp32-test.toml"
    cache = models.parent / "timing.cache"
    profile_path.write_text(f'precisions = ["fp32"]\nworkspace_mib = 1024\ntiming_cache = "{cache}"\n')
    engine = models / f"{name}.plan"
    build_engine(onnx, load_profile(profile_path), engine)
    return engine


def _canvas(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Blobs over a faint texture (no constant regions: exact score ties may order differently per backend)."""
    _, _, height, width = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = rng.uniform(0.02, 0.08, size=(height, width))
    for _ in range(12):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, 80)
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    return (np.clip(image, 0, 1) * 65535).astype(np.int32).reshape(shape)


def test_build_writes_engine_sidecar_and_timing_cache(built: dict[str, Path]) -> None:
    import tensorrt

    sidecar = read_sidecar(built["engine"])
    gpu, _ = probe_gpu()
    assert gpu is not None
    assert sidecar.tensorrt_version == tensorrt.__version__
    assert (sidecar.gpu_name, sidecar.compute_capability) == (gpu.name, gpu.compute_capability)
    assert sidecar.source_onnx == "tiny.onnx" and sidecar.model_metadata.graph_spec.canvas_dtype == "int32"
    assert sidecar.build.profile["precisions"] == ["fp32"] and not sidecar.build.version_compatible
    assert built["cache"].is_file() and built["cache"].stat().st_size > 0
    assert sidecar_path(built["engine"]).is_file()


def test_engine_matches_onnxruntime(built: dict[str, Path]) -> None:
    from trt_mass.runners.ort import OnnxRuntimeRunner
    from trt_mass.runners.trt import TensorRTRunner

    with OnnxRuntimeRunner(built["onnx"], threads=2) as reference, TensorRTRunner(built["engine"]) as engine:
        assert engine.metadata == reference.metadata
        for seed in (3, 4):
            canvas = _canvas(reference.metadata.inputs[0].shape, seed)
            want = reference.infer({"canvas": canvas})
            got = engine.infer({"canvas": canvas})
            assert set(engine.last_stage_ms) == {"h2d", "inference", "d2h"}
            assert all(value >= 0 for value in engine.last_stage_ms.values())
            assert np.count_nonzero(want["scores"]) > 3, "the test needs detections to compare"
            # fp32 on both sides (TF32 is off in the build); GPU and CPU kernels still round differently.
            match_as_sets(got["boxes"], got["scores"], want["boxes"], want["scores"], box_tol=0.5, score_tol=1e-3)


def test_auto_picks_the_engine_and_detects(built: dict[str, Path]) -> None:
    from trt_mass.pipeline import Detector

    with Detector(built["onnx"], backend="auto") as detector:
        assert detector.runner.backend == "trt"
        assert detector.backend_reason.startswith("TensorRT engine tiny.plan matches this GPU")
        image = np.random.default_rng(1).integers(1000, 60000, size=(900, 700), dtype=np.uint16)
        result = detector.detect(image)
        assert all(f.score > 0 for f in result.findings)


def test_tampered_engine_is_refused_before_deserializing(built: dict[str, Path], tmp_path: Path) -> None:
    from trt_mass.runners.trt import TensorRTRunner

    copy = tmp_path / "tiny.plan"
    blob = bytearray(built["engine"].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    copy.write_bytes(bytes(blob))
    sidecar_path(copy).write_bytes(sidecar_path(built["engine"]).read_bytes())
    with pytest.raises(ModelError, match=r"refused \(sha256\)"):
        TensorRTRunner(copy).activate()
    with pytest.raises(ModelError, match=r"refused \(location\)"):
        TensorRTRunner(built["engine"], model_dir=tmp_path).activate()


def test_nothing_above_the_threshold_gives_no_findings_and_no_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The quiet model: NonMaxSuppression's output is empty on the GPU too; zero findings, no error."""
    from trt_mass.pipeline import Detector

    models = tmp_path_factory.mktemp("trt-quiet")
    onnx = models / "quiet.onnx"
    onnx.write_bytes(export_tiny_int32(tmp_path_factory.getbasetemp() / "int32-models", quiet=True).read_bytes())
    _build(models, onnx, "quiet")
    with Detector(onnx, backend="trt") as detector:
        assert detector.backend == "trt"
        image = np.random.default_rng(2).integers(1000, 60000, size=(900, 700), dtype=np.uint16)
        assert detector.detect(image).findings == []
        raw = detector.runner.infer({"canvas": _canvas(detector.metadata.inputs[0].shape, 5)})
        assert not raw["scores"].any()

