"""Build profiles (build_engine/*.toml) and what a build refuses before TensorRT is touched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.engine_helpers import make_metadata
from trt_mass.engine.profiles import (
    BuildProfile,
    check_model_for_profile,
    find_profile,
    load_profile,
    pick_profile,
    profile_from_dict,
)
from trt_mass.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("t400-t1000-fp16", "a2000-ada2000-int8", "jetson-orin-fp16", "jetson-orin-int8")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.source == str(REPO / "build_engine" / f"{name}.toml")
    assert profile.description and profile.workspace_mib >= 256
    assert not profile.version_compatible  # no engine host code unless someone opts in
    assert profile.hardware_compatibility == "none"
    assert profile.timing_cache and "~" not in str(profile.timing_cache_path)
    expected = {"t400-t1000-fp16": (("fp16",), ("7.5",)), "a2000-ada2000-int8": (("int8", "fp16"), ("8.6", "8.9")),
                "jetson-orin-fp16": (("fp16",), ("8.7",)), "jetson-orin-int8": (("int8", "fp16"), ("8.7",))}
    assert (profile.precisions, profile.compute_capabilities) == expected[name]
    assert "fp32" not in profile.precisions
    assert load_profile(REPO / "build_engine" / f"{name}.toml") == profile
    assert set(profile.to_dict()) >= {"name", "precisions", "workspace_mib", "builder_optimization_level",
                                      "hardware_compatibility", "version_compatible", "timing_cache"}


def test_every_toml_in_build_engine_is_a_valid_profile() -> None:
    found = sorted(p.stem for p in (REPO / "build_engine").glob("*.toml"))
    assert found == sorted(SHIPPED)


def _write(tmp_path: Path, text: str, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, 'precisions = ["fp16"]\nworkspace_mib = 512\nfp16 = true\n')
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'fp16'"):
        load_profile(path)


@pytest.mark.parametrize(("body", "match"), [
    ('precisions = ["fp16"]\nworkspace_mib = "big"', "workspace_mib must be an integer"),
    ('precisions = ["fp16"]\nworkspace_mib = true', "workspace_mib must be an integer"),
    ('precisions = "fp16"\nworkspace_mib = 512', "precisions must be a list"),
    ('precisions = ["bf16"]\nworkspace_mib = 512', "precisions must be a non-empty list"),
    ('precisions = []\nworkspace_mib = 512', "precisions must be a non-empty list"),
    ('precisions = ["fp16"]', "missing key 'workspace_mib'"),
    ('workspace_mib = 512', "missing key 'precisions'"),
    ('precisions = ["fp16"]\nworkspace_mib = 8', "at least 16"),
    ('precisions = ["fp16"]\nworkspace_mib = 512\nbuilder_optimization_level = 6', "0..5"),
    ('precisions = ["fp16"]\nworkspace_mib = 512\nhardware_compatibility = "all"', "hardware_compatibility must"),
    ('precisions = ["fp16"]\nworkspace_mib = 512\nversion_compatible = "yes"', "true or false"),
    ('precisions = ["fp16"]\nworkspace_mib = 512\ncompute_capabilities = ["sm_86"]', "look like '8.6'"),
    ('precisions = ["fp16"]\nworkspace_mib = 512\nmax_aux_streams = -1', "max_aux_streams"),
    ('precisions = ["fp16"]\nworkspace_mib = 512\nopt_views = 0', "opt_views must be at least 1"),
    ('precisions = ["fp16"\nworkspace_mib = 512', "cannot read the build profile"),
])
def test_bad_values_are_config_errors_naming_the_file(tmp_path: Path, body: str, match: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=match) as refused:
        load_profile(path)
    assert str(path) in str(refused.value)


def test_lookup_by_name_path_and_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_profile("jetson-orin-fp16") == REPO / "build_engine" / "jetson-orin-fp16.toml"
    with pytest.raises(ConfigError, match=r"no build profile 'rtx9090'.*available: a2000-ada2000-int8"):
        find_profile("rtx9090")
    with pytest.raises(ConfigError, match="no such build profile"):
        find_profile(tmp_path / "missing.toml")
    # ./build_engine in the working directory comes first
    (tmp_path / "build_engine").mkdir()
    _write(tmp_path / "build_engine", 'precisions = ["fp32"]\nworkspace_mib = 64\nname = "site"', "jetson-orin-fp16")
    monkeypatch.chdir(tmp_path)
    assert load_profile("jetson-orin-fp16").name == "site"


def test_overrides_and_resolved_content(tmp_path: Path) -> None:
    profile = load_profile("t400-t1000-fp16")
    assert profile.with_overrides() is profile
    changed = profile.with_overrides(workspace_mib=256, builder_optimization_level=5,
                                     timing_cache=tmp_path / "cache.bin")
    assert (changed.workspace_mib, changed.builder_optimization_level) == (256, 5)
    assert changed.timing_cache_path == tmp_path / "cache.bin"
    assert changed.to_dict()["workspace_mib"] == 256 and changed.to_dict()["precisions"] == ["fp16"]
    none = profile_from_dict({"precisions": ["fp16"], "workspace_mib": 64, "timing_cache": ""}, "x", "x.toml")
    assert none.timing_cache_path is None


def test_a_profile_refuses_other_precisions_and_targets_loudly() -> None:
    t400 = load_profile("t400-t1000-fp16")
    a2000 = load_profile("a2000-ada2000-int8")
    check_model_for_profile(make_metadata("fp16"), t400, "model-fp16.onnx")
    check_model_for_profile(make_metadata("int8"), a2000, "model-int8.onnx")
    check_model_for_profile(make_metadata("fp16"), a2000, "model-fp16.onnx")
    with pytest.raises(ModelError, match=r"int8 model but profile 't400-t1000-fp16' builds fp16 only.*never changes "
                                         r"precision.*trtmass quantize model-int8.onnx --precision fp16"):
        check_model_for_profile(make_metadata("int8"), t400, "model-int8.onnx")
    with pytest.raises(ModelError, match="fp32 model"):
        check_model_for_profile(make_metadata("fp32"), a2000, "model.onnx")
    with pytest.raises(ModelError, match=r"made for target 'cpu'.*--target tensorrt"):
        check_model_for_profile(make_metadata("int8", target="cpu"), a2000, "model-int8-cpu.onnx")
    any_precision = BuildProfile(name="any", precisions=("fp32", "fp16", "int8"), workspace_mib=64)
    with pytest.raises(ModelError, match=r"made for target 'cpu'.*build from the fp32 export"):
        check_model_for_profile(dataclasses.replace(make_metadata("fp32"), target="cpu"), any_precision,
                                "model-fp32-cpu.onnx")


def test_a_uint16_canvas_is_refused_with_the_export_hint() -> None:
    profile = BuildProfile(name="any", precisions=("fp32", "fp16", "int8"), workspace_mib=64)
    with pytest.raises(ModelError, match=r"uint16.*TensorRT has no uint16.*--canvas-dtype int32"):
        check_model_for_profile(make_metadata("fp16", canvas_dtype="uint16"), profile, "model.onnx")


def test_without_profile_the_one_for_this_gpu_and_precision_is_picked() -> None:
    assert pick_profile(make_metadata("int8"), "8.6").name == "a2000-ada2000-int8"
    assert pick_profile(make_metadata("fp16"), "7.5").name == "t400-t1000-fp16"
    with pytest.raises(ConfigError, match=r"compute capability 7\.5 with precision int8"):
        pick_profile(make_metadata("int8"), "7.5")  # T400/T1000: fp16 only
