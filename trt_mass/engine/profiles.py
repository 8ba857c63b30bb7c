"""Engine build profiles: build_engine/NAME.toml, one per GPU class and precision.

A profile says which ONNX variants it accepts (precision comes from the ONNX, made by `trtmass
quantize`; TensorRT 11 has no precision builder flags) and how the builder is configured for that
class of GPU: workspace, optimization level, timing cache, hardware/version compatibility.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from trt_mass.engine.sidecar import HARDWARE_COMPATIBILITY_LEVELS
from trt_mass.errors import ConfigError, ModelError
from trt_mass.metadata import ModelMetadata

PRECISIONS = ("fp32", "fp16", "int8")
# Targets of `trtmass quantize` whose Q/DQ layout TensorRT takes ("any": the plain fp32/fp16 export).
TENSORRT_TARGETS = ("any", "tensorrt")
PROFILE_DIR_NAME = "build_engine"


@dataclass(frozen=True)
class BuildProfile:
    """How to build engines for one class of GPU (keys of build_engine/NAME.toml).

    Attributes:
        name: the profile's name (the file stem unless given).
        description: which GPUs, and why the settings are what they are.
        precisions: precisions of the ONNX variants this profile accepts (e.g. ["fp16"] or ["int8", "fp16"]).
        workspace_mib: limit of the builder's scratch memory pool (MemoryPoolType.WORKSPACE).
        builder_optimization_level: 0..5 (TensorRT's default 3; higher searches longer for faster kernels).
        hardware_compatibility: "none" (only the GPU model it is built on), "ampere_plus" (Ampere and newer,
            slower kernels; only when built on Ampere+), "same_compute_capability" (GPUs of the build GPU's
            compute capability).
        version_compatible: build a version-compatible engine (embeds the lean runtime: loading it runs
            engine host code and must be allowed explicitly).
        compute_capabilities: the build GPU must have one of these (empty: any); protects against
            building a profile on the wrong card.
        timing_cache: file of the tactic timing cache ("~" expanded; relative to the working
            directory); None: no cache.
        max_aux_streams: auxiliary streams TensorRT may use inside the engine (None: TensorRT's choice).
        tactic_sources: names of tensorrt.TacticSource members to enable (None: TensorRT's default).
        opt_views: for a model with view selection, the number of views TensorRT tunes its kernels for
            (the optimization profile of view_index is 1 .. all views, this one optimal); a letterboxed
            mammogram has tissue in about 16-24 of the 26 views.
        source: the file the profile was read from.
    """

    name: str
    precisions: tuple[str, ...]
    workspace_mib: int
    description: str = ""
    builder_optimization_level: int = 3
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    compute_capabilities: tuple[str, ...] = ()
    timing_cache: str | None = None
    max_aux_streams: int | None = None
    tactic_sources: tuple[str, ...] | None = None
    opt_views: int = 21
    source: str = "<profile>"

    def __post_init__(self) -> None:
        where = f"{self.source}: "
        if not self.name:
            raise ConfigError(where + "name must not be empty")
        if not self.precisions or any(p not in PRECISIONS for p in self.precisions):
            raise ConfigError(where + f"precisions must be a non-empty list of {', '.join(PRECISIONS)}; "
                              f"got {list(self.precisions)}")
        if self.workspace_mib < 16:
            raise ConfigError(where + f"workspace_mib must be at least 16, got {self.workspace_mib}")
        if not 0 <= self.builder_optimization_level <= 5:
            raise ConfigError(where + f"builder_optimization_level must be in 0..5, got "
                              f"{self.builder_optimization_level}")
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY_LEVELS:
            raise ConfigError(where + "hardware_compatibility must be one of "
                              f"{', '.join(HARDWARE_COMPATIBILITY_LEVELS)}, got {self.hardware_compatibility!r}")
        if self.opt_views < 1:
            raise ConfigError(where + f"opt_views must be at least 1, got {self.opt_views}")
        if self.max_aux_streams is not None and self.max_aux_streams < 0:
            raise ConfigError(where + f"max_aux_streams must be >= 0, got {self.max_aux_streams}")
        for capability in self.compute_capabilities:
            parts = capability.split(".")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ConfigError(where + f"compute_capabilities entries look like '8.6', got {capability!r}")

    @property
    def timing_cache_path(self) -> Path | None:
        return Path(self.timing_cache).expanduser() if self.timing_cache else None

    def with_overrides(self, *, workspace_mib: int | None = None, builder_optimization_level: int | None = None,
                       timing_cache: str | Path | None = None) -> BuildProfile:
        """The profile with command-line overrides applied (None: keep the profile's value)."""
        changes: dict[str, Any] = {}
        if workspace_mib is not None:
            changes["workspace_mib"] = workspace_mib
        if builder_optimization_level is not None:
            changes["builder_optimization_level"] = builder_optimization_level
        if timing_cache is not None:
            changes["timing_cache"] = str(timing_cache)
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """The full resolved content (recorded in the engine's sidecar)."""
        data = dataclasses.asdict(self)
        for key in ("precisions", "compute_capabilities", "tactic_sources"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data


FIELDS = {f.name for f in dataclasses.fields(BuildProfile)} - {"source"}


def profile_search_dirs() -> list[Path]:
    """Where a bare NAME is looked up: ./build_engine, then the build_engine/ of this source tree."""
    dirs = [Path.cwd() / PROFILE_DIR_NAME, Path(__file__).resolve().parents[2] / PROFILE_DIR_NAME]
    unique: list[Path] = []
    for folder in dirs:
        if folder not in unique:
            unique.append(folder)
    return unique


def find_profile(spec: str | Path) -> Path:
    """A profile file from a path (…/NAME.toml) or a bare NAME."""
    text = str(spec)
    candidate = Path(text).expanduser()
    if text.endswith(".toml") or "/" in text or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: no such build profile")
        return candidate
    for folder in profile_search_dirs():
        path = folder / f"{text}.toml"
        if path.is_file():
            return path
    available = sorted({p.stem for folder in profile_search_dirs() if folder.is_dir() for p in folder.glob("*.toml")})
    raise ConfigError(f"no build profile {text!r} (looked in {', '.join(str(d) for d in profile_search_dirs())}); "
                      f"available: {', '.join(available) or 'none'}")


def load_profile(spec: str | Path) -> BuildProfile:
    """Read a profile (path or NAME); unknown keys and wrong types are ConfigErrors naming the file and key."""
    path = find_profile(spec)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the build profile ({error})") from error
    return profile_from_dict(data, path.stem, str(path))


def pick_profile(metadata: ModelMetadata, compute_capability: str) -> BuildProfile:
    """The profile for this GPU and this variant, when --profile is not given.

    Candidates: every profile in the search folders that lists `compute_capability` and accepts the
    model's precision; the first by name wins, and the choice is printed by the CLI.  None fitting is
    a ConfigError naming what was looked for.
    """
    seen: set[str] = set()
    fitting = []
    for folder in profile_search_dirs():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            profile = load_profile(path)
            if compute_capability in profile.compute_capabilities and metadata.precision in profile.precisions:
                fitting.append(profile)
    if not fitting:
        raise ConfigError(f"no build profile lists compute capability {compute_capability} with precision "
                          f"{metadata.precision} (looked at: {', '.join(sorted(seen)) or 'none'}); "
                          "give --profile, or write one (build_engine/README.md)")
    return fitting[0]


def profile_from_dict(data: dict[str, Any], default_name: str, source: str) -> BuildProfile:
    for key in data:
        if key not in FIELDS:
            raise ConfigError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(FIELDS))})")
    values: dict[str, Any] = {"name": default_name, "source": source}
    for key, value in data.items():
        values[key] = _typed(key, value, source)
    for key in ("precisions", "workspace_mib"):
        if key not in values:
            raise ConfigError(f"{source}: missing key {key!r}")
    return BuildProfile(**values)


_INT_KEYS = ("workspace_mib", "builder_optimization_level", "max_aux_streams", "opt_views")
_LIST_KEYS = ("precisions", "compute_capabilities", "tactic_sources")
_STR_KEYS = ("name", "description", "hardware_compatibility", "timing_cache")


def _typed(key: str, value: Any, source: str) -> Any:
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if key in _LIST_KEYS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {key} must be a list of strings, got {value!r}")
        return tuple(v.strip().lower() if key == "precisions" else v.strip() for v in value)
    if key == "version_compatible":
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if key in _STR_KEYS:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return (value or None) if key == "timing_cache" else value
    raise ConfigError(f"{source}: unknown key {key!r}")  # pragma: no cover - FIELDS guards this


def check_model_for_profile(metadata: ModelMetadata, profile: BuildProfile, onnx_path: str | Path) -> None:
    """Refuse (never convert) an ONNX this profile must not build: its precision, target or input types."""
    onnx_path = Path(onnx_path)
    for tensor in metadata.inputs:
        if tensor.dtype == "uint16":
            raise ModelError(
                f"{onnx_path}: input {tensor.name!r} is uint16 and TensorRT has no uint16 tensors; re-export the "
                "model with an int32 canvas: trtmass export ... --canvas-dtype int32 (then quantize that export "
                "again if you need an fp16/int8 variant)"
            )
    if metadata.precision not in profile.precisions:
        raise ModelError(
            f"{onnx_path} is a {metadata.precision} model but profile {profile.name!r} builds "
            f"{' / '.join(profile.precisions)} only; build-engine never changes precision: make the variant with "
            f"`trtmass quantize {onnx_path.name} --precision {profile.precisions[0]} --target tensorrt ...` or "
            "choose a profile made for this precision"
        )
    if metadata.target not in TENSORRT_TARGETS:
        remedy = ("build from the fp32 export it was made from (TensorRT chooses its own convolution algorithms)"
                  if metadata.precision == "fp32" else
                  f"make the TensorRT variant with `trtmass quantize ... --precision {metadata.precision} "
                  "--target tensorrt`")
        raise ModelError(f"{onnx_path} was made for target {metadata.target!r}, not for TensorRT; {remedy}")
