"""The JSON sidecar beside every engine (model.plan -> model.plan.json): what the engine is and what it
may run on.

A TensorRT engine is tied to the GPU (architecture / compute capability) and the TensorRT version it
was built with, and a serialized engine is code-like, so an engine is never loaded without its
sidecar; the conditions themselves are checked in trt_mass.engine.checks.  Pure Python.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trt_mass.atomic import write_text_atomic
from trt_mass.errors import ModelError
from trt_mass.metadata import ModelMetadata

SIDECAR_FORMAT = 1
SIDECAR_KIND = "trt_mass.engine"
SIDECAR_SUFFIX = ".json"
HARDWARE_COMPATIBILITY_LEVELS = ("none", "ampere_plus", "same_compute_capability")


def this_platform() -> str:
    """The operating system and CPU architecture an engine is built or loaded on, e.g. "Linux-x86_64"."""
    return f"{platform.system()}-{platform.machine()}"


@dataclass(frozen=True)
class BuildOptions:
    """How the engine was built: the profile (name and full resolved content) and the flags it set."""

    profile_name: str
    profile: dict[str, Any]
    hardware_compatibility_level: str = "none"
    version_compatible: bool = False
    tf32: bool = False
    build_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.hardware_compatibility_level not in HARDWARE_COMPATIBILITY_LEVELS:
            raise ModelError(f"unknown hardware compatibility level {self.hardware_compatibility_level!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"profile_name": self.profile_name, "profile": self.profile,
                "hardware_compatibility_level": self.hardware_compatibility_level,
                "version_compatible": self.version_compatible, "tf32": self.tf32,
                "build_seconds": self.build_seconds}


@dataclass(frozen=True)
class EngineSidecar:
    """What an engine is and what it may run on; written as JSON beside the engine (model.plan.json)."""

    engine_sha256: str
    source_onnx: str
    source_onnx_sha256: str
    model_metadata: ModelMetadata
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build: BuildOptions
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    trt_mass_version: str = ""
    gpu_driver_version: str | None = None
    gpu_memory_mib: int | None = None
    engine_bytes: int | None = None
    # Engines are not portable across platforms (x86-64 vs aarch64/Jetson, Linux vs Windows).
    platform: str | None = field(default_factory=this_platform)

    def __post_init__(self) -> None:
        for name in ("engine_sha256", "source_onnx_sha256"):
            if not re.fullmatch(r"[0-9a-f]{64}", getattr(self, name)):
                raise ModelError(f"{name} must be a lower-case hex SHA-256, got {getattr(self, name)!r}")
        if not re.fullmatch(r"\d+\.\d+", self.compute_capability):
            raise ModelError(f"compute_capability must look like '8.6', got {self.compute_capability!r}")
        if Path(self.source_onnx).name != self.source_onnx:
            raise ModelError(f"source_onnx must be a file name, got {self.source_onnx!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SIDECAR_FORMAT,
            "kind": SIDECAR_KIND,
            "engine_sha256": self.engine_sha256,
            "engine_bytes": self.engine_bytes,
            "source_onnx": self.source_onnx,
            "source_onnx_sha256": self.source_onnx_sha256,
            "model_metadata": json.loads(self.model_metadata.to_json()),
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "gpu_driver_version": self.gpu_driver_version,
            "gpu_memory_mib": self.gpu_memory_mib,
            "build": self.build.to_dict(),
            "created": self.created,
            "trt_mass_version": self.trt_mass_version,
            "platform": self.platform,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<sidecar>") -> EngineSidecar:
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if data.get("kind") != SIDECAR_KIND:
                raise ValueError(f"kind is {data.get('kind')!r}, expected {SIDECAR_KIND!r}")
            if data.get("format") != SIDECAR_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this trt_mass reads {SIDECAR_FORMAT}")
            build = data["build"]
            if not isinstance(build, dict) or not isinstance(build["profile"], dict):
                raise TypeError("build must be an object with a profile object")
            return cls(
                engine_sha256=_text(data, "engine_sha256"),
                source_onnx=_text(data, "source_onnx"),
                source_onnx_sha256=_text(data, "source_onnx_sha256"),
                model_metadata=ModelMetadata.from_json(json.dumps(data["model_metadata"]), source),
                tensorrt_version=_text(data, "tensorrt_version"),
                gpu_name=_text(data, "gpu_name"),
                compute_capability=_text(data, "compute_capability"),
                build=BuildOptions(
                    profile_name=_text(build, "profile_name"),
                    profile=dict(build["profile"]),
                    hardware_compatibility_level=_text(build, "hardware_compatibility_level"),
                    version_compatible=_flag(build, "version_compatible"),
                    tf32=_flag(build, "tf32"),
                    build_seconds=build.get("build_seconds"),
                ),
                created=_text(data, "created"),
                trt_mass_version=str(data.get("trt_mass_version", "")),
                gpu_driver_version=data.get("gpu_driver_version"),
                gpu_memory_mib=data.get("gpu_memory_mib"),
                engine_bytes=data.get("engine_bytes"),
                platform=data.get("platform"),
            )
        except ModelError as error:
            raise ModelError(f"{source}: malformed engine sidecar ({error})") from error
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{source}: malformed engine sidecar ({type(error).__name__}: {error})") from error


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be true or false")
    return value


def sidecar_path(engine_path: str | Path) -> Path:
    """model.plan -> model.plan.json"""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def read_sidecar(engine_path: str | Path) -> EngineSidecar:
    """The sidecar of `engine_path`; ModelError (with how to rebuild) when missing or malformed."""
    path = sidecar_path(engine_path)
    hint = f"rebuild the engine with: trtmass build-engine MODEL.onnx --profile PROFILE -o {engine_path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{engine_path}: no sidecar {path.name} beside the engine; an engine without its "
                         f"sidecar is never loaded; {hint}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read the engine sidecar ({error}); {hint}") from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ModelError(f"{path}: malformed engine sidecar (not JSON: {error}); {hint}") from error
    try:
        return EngineSidecar.from_dict(data, str(path))
    except ModelError as error:
        raise ModelError(f"{error}; {hint}") from error


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    write_text_atomic(path, sidecar.to_json())
    return path
