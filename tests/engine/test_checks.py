"""The checks run before an engine is loaded: location, hash, GPU, TensorRT, host code (real files, no GPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine_helpers import A2000, ADA2000, T1000, TRT, write_engine_pair
from trt_mass.engine.checks import LoadContext, check_engine, engine_checks, rebuild_command
from trt_mass.engine.gpu import GpuInfo
from trt_mass.engine.sidecar import EngineSidecar, read_sidecar, sidecar_path
from trt_mass.errors import ModelError

ONNX_SHA = "12" * 32


def _check(engine: Path, sidecar: EngineSidecar, models: Path, engine_bytes: bytes | None = None,
           **overrides: object) -> None:
    options: dict = {"gpu": A2000, "tensorrt_version": TRT, "model_dir": models, "allow_engine_host_code": False}
    options.update(overrides)
    check_engine(sidecar, engine, LoadContext(**options), engine_bytes=engine_bytes)


def test_matching_engine_passes_every_check(tmp_path: Path) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA)
    _check(engine, sidecar, tmp_path)
    checks = engine_checks(sidecar, engine, LoadContext(A2000, TRT, tmp_path))
    assert [c.name for c in checks] == ["location", "sha256", "platform", "gpu", "tensorrt", "host_code"]
    assert all(c.ok for c in checks), checks


def test_hash_mismatch_is_refused_with_the_rebuild_command(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA)
    engine.write_bytes(b"a different engine of the same size, replaced after the build...")
    with pytest.raises(ModelError, match=r"refused \(sha256\).*differs from the sidecar") as refused:
        _check(engine, sidecar, tmp_path)
    assert f"trtmass build-engine {tmp_path / 'model.onnx'} --profile a2000-ada2000-int8 -o {engine}" in str(
        refused.value)


def test_the_hash_is_of_the_bytes_given_and_comes_before_the_gpu(tmp_path: Path) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA)
    _check(engine, sidecar, tmp_path, engine_bytes=engine.read_bytes())
    with pytest.raises(ModelError, match="sha256"):
        _check(engine, sidecar, tmp_path, engine_bytes=b"other bytes than the file")
    with pytest.raises(ModelError, match=r"\(sha256\)"):  # both wrong: the hash is reported first
        _check(engine, sidecar, tmp_path, engine_bytes=b"x", gpu=T1000)


@pytest.mark.parametrize(("level", "gpu", "ok"), [
    ("none", A2000, True),
    ("none", GpuInfo("NVIDIA RTX A2000", "8.6"), False),       # another model, same compute capability
    ("none", ADA2000, False),
    ("same_compute_capability", GpuInfo("NVIDIA RTX A2000", "8.6"), True),
    ("same_compute_capability", ADA2000, False),
    ("ampere_plus", ADA2000, True),
    ("ampere_plus", GpuInfo("NVIDIA A100-SXM4-40GB", "8.0"), True),
    ("ampere_plus", T1000, False),                             # Turing is older than Ampere
    ("none", None, False),
])
def test_gpu_and_hardware_compatibility(tmp_path: Path, level: str, gpu: GpuInfo | None, ok: bool) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA, hardware_compatibility=level)
    if ok:
        _check(engine, sidecar, tmp_path, gpu=gpu)
        return
    with pytest.raises(ModelError, match=r"refused \(gpu\)") as refused:
        _check(engine, sidecar, tmp_path, gpu=gpu)
    message = str(refused.value)
    assert "rebuild it on this machine: trtmass build-engine" in message
    assert ("no CUDA GPU" in message) if gpu is None else (gpu.name in message)


@pytest.mark.parametrize(("built", "version_compatible", "running", "ok"), [
    ("11.4.1.5", False, "11.4.1.5", True),
    ("11.4.1.5", False, "11.4.1.7", False),    # the build number counts too (TensorRT's support policy)
    ("11.4.1", False, "11.4.1.7", True),       # ... when both versions state it
    ("11.4.1.5", False, "11.4.2.1", False),
    ("11.4.1.5", False, "11.5.0.3", False),
    ("11.4.1.5", False, "10.16.1.11", False),
    ("11.0.0.8", True, "11.4.1.5", True),      # version compatible: later 11.x runs it
    ("11.4.1.5", True, "11.3.0.1", False),     # ... but not an older one
    ("11.4.1.5", True, "12.0.0.1", False),     # ... nor another major
    ("11.4.1.5", False, None, False),          # tensorrt not installed
])
def test_tensorrt_version(tmp_path: Path, built: str, version_compatible: bool, running: str | None,
                          ok: bool) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA, tensorrt_version=built,
                                        version_compatible=version_compatible)
    if ok:
        _check(engine, sidecar, tmp_path, tensorrt_version=running, allow_engine_host_code=True)
        return
    with pytest.raises(ModelError, match=r"refused \(tensorrt\)"):
        _check(engine, sidecar, tmp_path, tensorrt_version=running, allow_engine_host_code=True)


def test_version_compatible_engines_need_host_code_allowed_explicitly(tmp_path: Path) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA, version_compatible=True)
    with pytest.raises(ModelError, match=r"refused \(host_code\).*lean runtime.*--allow-engine-host-code"):
        _check(engine, sidecar, tmp_path)
    _check(engine, sidecar, tmp_path, allow_engine_host_code=True)
    plain, plain_sidecar = write_engine_pair(tmp_path / "plain", ONNX_SHA)
    _check(plain, plain_sidecar, tmp_path / "plain")  # no host code: nothing to allow


def test_engine_outside_the_model_directory_is_refused(tmp_path: Path) -> None:
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir()
    engine, sidecar = write_engine_pair(elsewhere, ONNX_SHA)
    with pytest.raises(ModelError, match=r"refused \(location\).*outside the model directory"):
        _check(engine, sidecar, models)
    dotted = models / ".." / "elsewhere" / "model.plan"
    with pytest.raises(ModelError, match=r"refused \(location\)"):
        _check(dotted, sidecar, models)
    checks = engine_checks(sidecar, engine, LoadContext(A2000, TRT, models))
    assert not checks[1].ok and "not checked" in checks[1].detail  # not even hashed


def test_symlinks_are_resolved_before_the_location_check(tmp_path: Path) -> None:
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir()
    target, sidecar = write_engine_pair(elsewhere, ONNX_SHA)
    link = models / "model.plan"
    os.symlink(target, link)
    os.symlink(sidecar_path(target), sidecar_path(link))
    assert read_sidecar(link) == sidecar
    with pytest.raises(ModelError, match=r"refused \(location\).*elsewhere"):
        _check(link, sidecar, models)
    # an engine inside, with its sidecar linked from outside, is refused too
    inside_engine, inside_sidecar = write_engine_pair(models / "sub", ONNX_SHA, name="other.plan")
    sidecar_path(inside_engine).unlink()
    os.symlink(sidecar_path(target), sidecar_path(inside_engine))
    with pytest.raises(ModelError, match=r"refused \(location\)"):
        _check(inside_engine, inside_sidecar, models)
    # a symlinked model directory is fine: both sides are resolved
    alias = tmp_path / "alias"
    os.symlink(elsewhere, alias)
    _check(alias / "model.plan", sidecar, alias)


def test_missing_engine_is_refused(tmp_path: Path) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA)
    engine.unlink()
    with pytest.raises(ModelError, match=r"refused \(location\): no engine file"):
        _check(engine, sidecar, tmp_path)


def test_rebuild_command(tmp_path: Path) -> None:
    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA)
    expected = f"trtmass build-engine model.onnx --profile a2000-ada2000-int8 -o {engine}"
    assert rebuild_command(sidecar, engine) == expected
    (tmp_path / "model.onnx").write_bytes(b"x")
    assert rebuild_command(sidecar, engine).startswith(f"trtmass build-engine {tmp_path / 'model.onnx'} ")


def test_an_engine_built_on_another_platform_is_refused(tmp_path: Path) -> None:
    """x86-64 and aarch64 (Jetson), Linux and Windows: an engine runs only where it was built."""
    import dataclasses

    from trt_mass.engine.sidecar import this_platform, write_sidecar

    engine, sidecar = write_engine_pair(tmp_path, ONNX_SHA)
    assert sidecar.platform == this_platform() and "-" in sidecar.platform
    _check(engine, sidecar, tmp_path, platform=sidecar.platform)
    with pytest.raises(ModelError, match=r"refused \(platform\): built on Linux-aarch64; this is Windows-AMD64"):
        _check(engine, dataclasses.replace(sidecar, platform="Linux-aarch64"), tmp_path, platform="Windows-AMD64")
    write_sidecar(engine, dataclasses.replace(sidecar, platform=None))  # a sidecar from before platforms were kept
    with pytest.raises(ModelError, match=r"refused \(platform\): the sidecar does not say which platform"):
        _check(engine, read_sidecar(engine), tmp_path)
