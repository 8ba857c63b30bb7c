"""Backend selection (--backend auto / trt / ort): which backend and artifact are picked, and why.

The selection logic is tested two ways: on this machine as it is (no TensorRT here: ONNX Runtime with the
reason), and with an injected TensorRTEnvironment (a GPU and a TensorRT version as data, no fake tensorrt
module) against real sidecar files, so the TensorRT branches are covered without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.conftest import TinyModel
from tests.engine_helpers import A2000, ADA2000, T1000, TRT, no_tensorrt, onnx_stand_in, write_engine_pair
from trt_mass.cli import main
from trt_mass.engine.gpu import TensorRTEnvironment
from trt_mass.errors import BackendUnavailableError, ConfigError
from trt_mass.metadata import file_sha256
from trt_mass.pipeline import Detector
from trt_mass.runners.ort import OnnxRuntimeRunner
from trt_mass.runners.select import BackendOptions, choose_backend, open_runner

HERE = TensorRTEnvironment(TRT, A2000)


# ------------------------------------------------------------------------------------- this machine
@no_tensorrt
def test_auto_without_tensorrt_is_onnxruntime(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    assert choose_backend("auto", onnx) == ("ort", onnx, "tensorrt is not installed")
    # a real sidecar and engine bytes for this very ONNX change nothing without TensorRT
    write_engine_pair(tmp_path, file_sha256(onnx))
    assert choose_backend("auto", onnx) == ("ort", onnx, "tensorrt is not installed")
    assert choose_backend("auto", onnx)[0] == "ort"


@no_tensorrt
def test_backend_trt_without_tensorrt_fails_with_the_reason(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    write_engine_pair(tmp_path, file_sha256(onnx))
    with pytest.raises(BackendUnavailableError, match="--backend trt: tensorrt is not installed"):
        choose_backend("trt", onnx)
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        open_runner(choose_backend("trt", onnx)).activate()
    # an engine given directly goes to the TensorRT runner, which needs tensorrt to load anything
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        open_runner(choose_backend("trt", tmp_path / "model.plan")).activate()


def test_explicit_backends(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    assert choose_backend("ort", onnx) == ("ort", onnx, "requested with --backend ort")
    with pytest.raises(ConfigError, match="is a TensorRT engine"):
        choose_backend("ort", tmp_path / "model.plan")
    with pytest.raises(ConfigError, match="unknown backend 'tensorflow'"):
        choose_backend("tensorflow", onnx)
    assert choose_backend("auto", tmp_path / "model.plan", environment=HERE)[:2] == ("trt", tmp_path / "model.plan")


# ------------------------------------------------------------------------- injected environments
def test_auto_picks_the_matching_engine(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    engine, _ = write_engine_pair(tmp_path, file_sha256(onnx))
    backend, artifact, reason = choose_backend("auto", onnx, environment=HERE)
    assert (backend, artifact) == ("trt", engine)
    assert reason.startswith("TensorRT engine model.plan matches this GPU (NVIDIA RTX A2000 12GB")


def test_auto_explains_every_fallback(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    no_gpu = TensorRTEnvironment(None, None, "no CUDA GPU (no CUDA GPU found)")
    assert choose_backend("auto", onnx, environment=no_gpu) == ("ort", onnx, "no CUDA GPU (no CUDA GPU found)")
    assert choose_backend("auto", onnx, environment=HERE) == ("ort", onnx, f"no engine for this model in {tmp_path}")
    # an engine of another ONNX is not this model's engine
    write_engine_pair(tmp_path, "99" * 32, name="other.plan")
    assert choose_backend("auto", onnx, environment=HERE)[2] == f"no engine for this model in {tmp_path}"
    # a broken sidecar is skipped, not fatal
    (tmp_path / "junk.plan").write_bytes(b"x")
    (tmp_path / "junk.plan.json").write_text("{broken")
    assert choose_backend("auto", onnx, environment=HERE)[0] == "ort"
    # this model's engine, built for another GPU
    write_engine_pair(tmp_path, file_sha256(onnx), gpu=T1000)
    backend, artifact, reason = choose_backend("auto", onnx, environment=HERE)
    assert (backend, artifact) == ("ort", onnx)
    assert reason.startswith("engine model.plan was built for NVIDIA T1000 8GB (compute capability 7.5")
    rebuild = f"rebuild with: trtmass build-engine {onnx} --profile a2000-ada2000-int8 -o {tmp_path / 'model.plan'}"
    assert rebuild in reason


def test_auto_prefers_a_usable_engine_among_several(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    write_engine_pair(tmp_path, file_sha256(onnx), name="a-t1000.plan", gpu=T1000)
    good, _ = write_engine_pair(tmp_path, file_sha256(onnx), name="b-ada.plan", gpu=ADA2000)
    assert choose_backend("auto", onnx, environment=TensorRTEnvironment(TRT, ADA2000))[:2] == ("trt", good)


def test_auto_checks_tensorrt_version_hash_and_host_code(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    engine, _ = write_engine_pair(tmp_path, file_sha256(onnx), tensorrt_version="11.3.0.1")
    assert "TensorRT 11.4.1.5" in choose_backend("auto", onnx, environment=HERE)[2]
    engine, _ = write_engine_pair(tmp_path, file_sha256(onnx), version_compatible=True)
    assert "--allow-engine-host-code" in choose_backend("auto", onnx, environment=HERE)[2]
    allowed = BackendOptions(allow_engine_host_code=True)
    assert choose_backend("auto", onnx, allowed, environment=HERE)[0] == "trt"
    engine.write_bytes(b"tampered")
    assert "differs from the sidecar" in choose_backend("auto", onnx, allowed, environment=HERE)[2]


def test_auto_looks_in_the_model_directory(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path / "onnx")
    engine, _ = write_engine_pair(tmp_path / "engines", file_sha256(onnx))
    assert choose_backend("auto", onnx, environment=HERE)[0] == "ort"
    engines = BackendOptions(model_dir=tmp_path / "engines")
    assert choose_backend("auto", onnx, engines, environment=HERE)[:2] == ("trt", engine)


# ---------------------------------------------------------------------------- runners and detector
@no_tensorrt
def test_open_runner_and_detector_auto(tiny_model: TinyModel) -> None:
    options = BackendOptions(threads=1, model_dir=tiny_model.onnx_path.parent, allow_engine_host_code=False)
    runner = open_runner(choose_backend("auto", tiny_model.onnx_path, options), options)
    assert runner.backend == "ort"
    detector = Detector(tiny_model.onnx_path, backend="auto", threads=1)
    assert detector.runner.backend == detector.backend == "ort"
    assert detector.backend_reason == "tensorrt is not installed"
    assert Detector(tiny_model.onnx_path).backend_reason == "requested with --backend ort"


# ------------------------------------------------------------------------------------------- CLI
@no_tensorrt
def test_detect_auto_prints_the_backend_and_why(tiny_model: TinyModel, tmp_path: Path) -> None:
    image = tmp_path / "in" / "mammo.png"
    image.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, size=(300, 200), dtype=np.uint8)).save(image)
    result = CliRunner().invoke(main, ["detect", str(image.parent), "--model", str(tiny_model.onnx_path),
                                       "--backend", "auto", "--out", str(tmp_path / "out"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "backend: ort (tensorrt is not installed)" in result.stderr
    assert (tmp_path / "out" / "mammo.json").is_file()
    refused = CliRunner().invoke(main, ["detect", str(image.parent), "--model", str(tiny_model.onnx_path),
                                        "--backend", "trt", "--out", str(tmp_path / "out2")])
    assert refused.exit_code == BackendUnavailableError.exit_code
    assert "--backend trt: tensorrt is not installed" in refused.stderr


def test_backend_table(tiny_model: TinyModel) -> None:
    assert open_runner(choose_backend("auto", tiny_model.onnx_path)).backend == "ort"
    with pytest.raises(ConfigError, match="unknown backend"):
        choose_backend("tensorflow", tiny_model.onnx_path)


@no_tensorrt
def test_auto_falls_back_when_its_engine_will_not_load(tiny_model: TinyModel, tmp_path: Path) -> None:
    """An engine that passes every sidecar check but cannot be loaded (here: no tensorrt to load it; on a
    reading-room PC: out of GPU memory, driver trouble) gives way to ONNX Runtime under `auto`, with the reason."""
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(tiny_model.onnx_path.read_bytes())
    write_engine_pair(tmp_path, file_sha256(onnx), metadata=OnnxRuntimeRunner(onnx).activate().metadata)
    detector = Detector(onnx, backend="auto", threads=1, environment=HERE)
    assert detector.backend == "trt", "the engine passes every check on the (described) machine"
    with detector:
        assert detector.backend == "ort" and detector.runner.backend == "ort"
        assert detector.backend_reason.startswith("TensorRT engine model.plan matches this GPU")
        assert "could not be loaded (tensorrt is not installed" in detector.backend_reason
        assert detector.backend_reason.endswith("ONNX Runtime instead")
        image = np.random.default_rng(0).integers(0, 65535, size=(300, 200), dtype=np.uint16)
        assert detector.detect(image).letterbox.original_hw == (300, 200)
    explicit = Detector(onnx, backend="trt", environment=HERE)
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        explicit.open()
