"""TensorRT 11.4's real Python bindings, imported against stand-in libraries in a subprocess.

Every enum member our profiles, builder and runner name must exist in the real API; and a machine where
tensorrt imports but no GPU is usable must fall back to ONNX Runtime (auto) and refuse to build (exit 5),
each with its reason.  The bindings and stand-ins come from `python -m tests.tensorrt_api.build`
(`make test` runs it); nothing here is installed where anything else could import it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_helpers import write_engine_pair
from tests.tensorrt_api.build import TENSORRT_VERSION, environment, ready
from trt_mass.engine.profiles import load_profile
from trt_mass.engine.sidecar import HARDWARE_COMPATIBILITY_LEVELS

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "build" / "trt-stubs"
pytestmark = pytest.mark.skipif(not ready(STUBS), reason="build/trt-stubs is missing: `make trt-stubs` (make test "
                                                          "runs it) downloads the bindings and builds the stand-ins")
ENUMS = ("HardwareCompatibilityLevel", "TacticSource", "MemoryPoolType", "BuilderFlag", "EngineStat", "TensorIOMode",
         "NetworkDefinitionCreationFlag")


def _python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], env=environment(STUBS), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trt_mass.cli", *args], env=environment(STUBS), capture_output=True,
                          text=True, timeout=300)


def test_every_name_we_use_exists_in_tensorrt_11_4() -> None:
    code = ("import json, tensorrt as trt\n"
            f"enums = {{name: list(getattr(trt, name).__members__) for name in {list(ENUMS)!r}}}\n"
            "print(json.dumps({'version': trt.__version__, 'enums': enums,\n"
            "                  'severity': [hasattr(trt.Logger, s) for s in ('WARNING', 'VERBOSE')]}))\n")
    api = json.loads(_python(code))
    assert api["version"] == TENSORRT_VERSION and api["severity"] == [True, True]
    enums = api["enums"]
    assert {level.upper() for level in HARDWARE_COMPATIBILITY_LEVELS} <= set(enums["HardwareCompatibilityLevel"])
    assert "WORKSPACE" in enums["MemoryPoolType"] and "TOTAL_WEIGHTS_SIZE" in enums["EngineStat"]
    assert {"TF32", "VERSION_COMPATIBLE"} <= set(enums["BuilderFlag"]) and "INPUT" in enums["TensorIOMode"]
    # Docs and the builder's message say 11.x removed these tactic sources, and EXPLICIT_BATCH with them.
    assert not {"CUBLAS", "CUBLAS_LT", "CUDNN"} & set(enums["TacticSource"]), enums["TacticSource"]
    assert "EXPLICIT_BATCH" not in enums["NetworkDefinitionCreationFlag"]
    for profile_file in sorted((REPO / "build_engine").glob("*.toml")):
        profile = load_profile(profile_file)
        assert profile.hardware_compatibility.upper() in enums["HardwareCompatibilityLevel"], profile_file.name
        assert {name.upper() for name in profile.tactic_sources or ()} <= set(enums["TacticSource"]), profile_file.name


def test_tensorrt_without_a_usable_gpu(tmp_path: Path) -> None:
    """tensorrt imports, but there is no GPU to run on: auto says why it runs ONNX Runtime."""
    from trt_mass.datasets.synth import write_phantoms

    write_phantoms(tmp_path / "in", 1, seed=3, scale=0.05, normal_fraction=1.0)
    run = _cli("detect", str(tmp_path / "in"), "--backend", "auto", "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("backend: ")]
    assert line.startswith("backend: ort (") and "tensorrt is not installed" not in line, line
    gpu_here = "NVIDIA" in _python("from trt_mass.engine.gpu import probe_gpu; print(probe_gpu()[0])")
    reasons = ("no engine for this model",) if gpu_here else ("cuda-python is not installed", "no CUDA GPU (",
                                                              "CUDA 13 (R580")
    assert any(why in line for why in reasons), line
    engine, _ = write_engine_pair(tmp_path / "engines", "12" * 32)
    info = _cli("engine-info", str(engine))
    assert f"TensorRT {TENSORRT_VERSION}" in info.stdout, info.stdout + info.stderr


def test_build_engine_with_tensorrt_but_no_gpu_exits_5(tiny_int32: Path, tmp_path: Path) -> None:
    profile = tmp_path / "fp32.toml"
    profile.write_text('precisions = ["fp32"]\nworkspace_mib = 256\n')
    run = _cli("build-engine", str(tiny_int32), "--profile", str(profile), "-o", str(tmp_path / "tiny.plan"))
    gpu_here = "NVIDIA" in _python("from trt_mass.engine.gpu import probe_gpu; print(probe_gpu()[0])")
    if gpu_here:  # a GPU machine: the stand-in libraries cannot build; the reason is TensorRT's refusal
        assert run.returncode in (4, 5), run.stderr
    else:
        assert run.returncode == 5, run.stderr
        assert "trtmass: error: no CUDA GPU" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "tiny.plan").exists()


@pytest.fixture(scope="module")
def tiny_int32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engine_helpers import export_tiny_int32

    pytest.importorskip("torch")
    return export_tiny_int32(tmp_path_factory.getbasetemp() / "int32-models")
