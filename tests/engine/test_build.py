"""`build-engine` without TensorRT: the refusals that come before TensorRT is needed, and exit code 5."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import TinyModel
from tests.engine_helpers import export_tiny_int32, no_tensorrt
from trt_mass.cli import main
from trt_mass.errors import ConfigError, ModelError


@pytest.fixture(scope="module")
def tiny_int32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_int32(tmp_path_factory.getbasetemp() / "int32-models")


@no_tensorrt
def test_build_engine_without_tensorrt_exits_5(tiny_int32: Path, tmp_path: Path) -> None:
    profile = tmp_path / "fp32-test.toml"
    profile.write_text('precisions = ["fp32"]\nworkspace_mib = 256\n')
    result = CliRunner().invoke(main, ["build-engine", str(tiny_int32), "--profile", str(profile),
                                       "-o", str(tmp_path / "tiny.plan")])
    assert result.exit_code == 5, result.output
    assert "trtmass: error: tensorrt is not installed" in result.stderr
    assert "pip install 'trt_mass[gpu]'" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "tiny.plan").exists() and not (tmp_path / "tiny.plan.json").exists()
    no_profile = CliRunner().invoke(main, ["build-engine", str(tiny_int32), "-o", str(tmp_path / "tiny.plan")])
    assert no_profile.exit_code == 5 and "tensorrt is not installed" in no_profile.stderr


def test_build_engine_refuses_before_needing_tensorrt(tiny_model: TinyModel, tiny_int32: Path,
                                                      tmp_path: Path) -> None:
    out = str(tmp_path / "x.plan")
    uint16 = CliRunner().invoke(main, ["build-engine", str(tiny_model.onnx_path), "--profile", "t400-t1000-fp16",
                                       "-o", out])
    assert uint16.exit_code == ModelError.exit_code
    assert "TensorRT has no uint16" in uint16.stderr and "--canvas-dtype int32" in uint16.stderr
    fp32 = CliRunner().invoke(main, ["build-engine", str(tiny_int32), "--profile", "a2000-ada2000-int8", "-o", out])
    assert fp32.exit_code == ModelError.exit_code
    assert "is a fp32 model but profile 'a2000-ada2000-int8' builds int8 / fp16 only" in fp32.stderr
    bad_profile = CliRunner().invoke(main, ["build-engine", str(tiny_int32), "--profile", "rtx9090", "-o", out])
    assert bad_profile.exit_code == ConfigError.exit_code and "no build profile 'rtx9090'" in bad_profile.stderr
    same = CliRunner().invoke(main, ["build-engine", str(tiny_int32), "--profile", "t400-t1000-fp16",
                                     "-o", str(tiny_int32)])
    assert same.exit_code == ConfigError.exit_code and "name the engine file" in same.stderr


def test_the_optimization_profile_spans_one_to_every_view_for_view_index() -> None:
    from trt_mass.engine.build import _profile_shapes
    from trt_mass.metadata import TensorSpec

    canvas = TensorSpec("canvas", "int32", (1, 1, 768, 672))
    assert _profile_shapes(canvas, 26, 21) == ((1, 1, 768, 672),) * 3
    assert _profile_shapes(TensorSpec("view_index", "int32", (-1,)), 26, 21) == ((1,), (21,), (26,))
    assert _profile_shapes(TensorSpec("view_index", "int32", (-1,)), 10, 21) == ((1,), (10,), (10,))
    with pytest.raises(ModelError, match="only view_index's length may vary"):
        _profile_shapes(TensorSpec("canvas", "int32", (1, 1, -1, 672)), 26, 21)
