"""`trtmass engine-info`: the sidecar and every check, and exit code 4 when the engine may not run here."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.engine_helpers import HAS_TENSORRT, onnx_stand_in, write_engine_pair
from trt_mass.cli import main
from trt_mass.errors import ModelError
from trt_mass.metadata import file_sha256


def test_engine_info_prints_the_sidecar_and_the_checks(tmp_path: Path) -> None:
    onnx = onnx_stand_in(tmp_path)
    engine, _ = write_engine_pair(tmp_path, file_sha256(onnx))
    result = CliRunner().invoke(main, ["engine-info", str(engine)])
    assert "built for:   NVIDIA RTX A2000 12GB (compute capability 8.6), TensorRT 11.4.1.5" in result.output
    assert "[ok] location" in result.output and "[ok] sha256" in result.output
    if not HAS_TENSORRT:
        assert result.exit_code == ModelError.exit_code
        assert "[FAIL] tensorrt: tensorrt is not installed" in result.output
        assert f"to rebuild here: trtmass build-engine {onnx}" in result.output
    as_json = CliRunner().invoke(main, ["engine-info", str(engine), "--json"])
    assert '"source_onnx_sha256"' in as_json.output and '"checks"' in as_json.output
    missing = CliRunner().invoke(main, ["engine-info", str(tmp_path / "none.plan")])
    assert missing.exit_code == ModelError.exit_code and "no sidecar" in missing.stderr
