"""The JSON sidecar beside every engine (model.plan -> model.plan.json) and the checks run before loading.

A TensorRT engine is tied to the GPU (architecture / compute capability) and the TensorRT version it
was built with, and a serialized engine is code-like: deserializing an untrusted one is running
untrusted code.  So an engine is loaded only when:

  - it lies (symlinks resolved) inside the configured model directory,
  - its SHA-256 equals the sidecar's (checked on the bytes that will be deserialized, before that),
  - this GPU is the one it was built for (name and compute capability), unless it was built with a
    hardware-compatibility level that covers this GPU,
  - this TensorRT is the one it was built with (major.minor.patch.build), unless it is version-compatible
    (same major, this one not older),
  - it needs no engine host code (a version-compatible engine embeds TensorRT's lean runtime, which
    runs as host code when deserialized), or the user allowed that explicitly.

Everything here is pure Python; the GPU query goes through cuda-python only when it is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trt_mass.errors import ModelError, TrtMassError
from trt_mass.metadata import ModelMetadata, file_sha256

SIDECAR_FORMAT = 1
SIDECAR_KIND = "trt_mass.engine"
SIDECAR_SUFFIX = ".json"
HARDWARE_COMPATIBILITY_LEVELS = ("none", "ampere_plus", "same_compute_capability")


# ----------------------------------------------------------------------------------------------- GPU
@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or run on.

    Attributes:
        name: the device name as CUDA reports it (e.g. "NVIDIA RTX A2000 12GB").
        compute_capability: "major.minor" (e.g. "8.6").
        driver_version: the CUDA driver API version ("13.0"), when known.
        total_memory_mib: device memory (shared with the CPU on Jetson), when known.
        integrated: True for an integrated GPU (Jetson).
    """

    name: str
    compute_capability: str
    driver_version: str | None = None
    total_memory_mib: int | None = None
    integrated: bool = False

    def describe(self) -> str:
        return f"{self.name} (compute capability {self.compute_capability})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability,
                "driver_version": self.driver_version, "total_memory_mib": self.total_memory_mib,
                "integrated": self.integrated}


def probe_gpu(device: int = 0) -> tuple[GpuInfo | None, str]:
    """(GpuInfo, "") for CUDA device `device`, or (None, why not) without cuda-python, driver or GPU."""
    from trt_mass.engine.gpu import cuda_call, import_cudart

    try:
        cudart = import_cudart()
    except TrtMassError:
        return None, "cuda-python is not installed"
    try:
        count = cuda_call(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if not count or device >= int(count):
            return None, "no CUDA GPU found"
        # cudaGetDeviceProperties -> cudaDeviceProp (name, major, minor, totalGlobalMem, integrated), as in
        # the CUDA runtime API reference; cuda-python returns it as (error, prop).
        prop = cuda_call(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        driver = cuda_call(cudart, cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")
    except Exception as error:  # no driver, no device node, a container without the GPU: all mean "no GPU"
        return None, f"no usable CUDA GPU ({error})"
    raw_name = prop.name
    if isinstance(raw_name, bytes | bytearray):
        raw_name = bytes(raw_name).split(b"\0", 1)[0].decode(errors="replace")
    driver_text = f"{int(driver) // 1000}.{int(driver) % 1000 // 10}" if driver else None
    return GpuInfo(
        name=str(raw_name).strip(),
        compute_capability=f"{int(prop.major)}.{int(prop.minor)}",
        driver_version=driver_text,
        total_memory_mib=int(prop.totalGlobalMem) // (1 << 20),
        integrated=bool(getattr(prop, "integrated", False)),
    ), ""


def query_gpu(device: int = 0) -> GpuInfo | None:
    """The GPU, or None without cuda-python, a driver or a CUDA device."""
    return probe_gpu(device)[0]


# ------------------------------------------------------------------------------------------- sidecar
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` under a unique temporary name in the same folder, fsync, then rename over `path`."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    atomic_write(path, sidecar.to_json().encode())
    return path


# -------------------------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Check:
    """One condition for loading an engine: its name, whether it holds, and why."""

    name: str
    ok: bool
    detail: str


def version_tuple(version: str) -> tuple[int, ...]:
    """"11.4.1.5" -> (11, 4, 1, 5); stops at the first part that is not a number."""
    parts = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts)


def _capability(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def rebuild_command(sidecar: EngineSidecar, engine_path: str | Path, model_dir: str | Path | None = None) -> str:
    """The build-engine command that makes this engine again, for the machine it runs on."""
    onnx: Path | str = sidecar.source_onnx
    folder = Path(model_dir) if model_dir is not None else Path(engine_path).parent
    if (folder / sidecar.source_onnx).exists():
        onnx = folder / sidecar.source_onnx
    return f"trtmass build-engine {onnx} --profile {sidecar.build.profile_name} -o {engine_path}"


def inside(path: Path, folder: Path) -> bool:
    """True when `path`, every symlink resolved, lies inside `folder` (also resolved)."""
    try:
        return path.resolve(strict=True).is_relative_to(folder.resolve(strict=True))
    except OSError:
        return False


def engine_checks(
    sidecar: EngineSidecar,
    engine_path: str | Path,
    *,
    gpu: GpuInfo | None,
    tensorrt_version: str | None,
    model_dir: str | Path,
    allow_engine_host_code: bool = False,
    engine_bytes: bytes | None = None,
) -> list[Check]:
    """Every condition for loading the engine, in order: location, hash, GPU, TensorRT, host code.

    `engine_bytes`: the exact bytes that would be deserialized (hash them, not the file again).
    Nothing here deserializes anything.
    """
    engine_path = Path(engine_path)
    model_dir = Path(model_dir)
    checks: list[Check] = []

    located = inside(engine_path, model_dir) and inside(sidecar_path(engine_path), model_dir)
    if located:
        detail = f"{engine_path} and its sidecar lie in the model directory {model_dir}"
    elif not engine_path.is_file():
        detail = f"no engine file {engine_path}"
    else:
        detail = (f"{engine_path} (or its sidecar) resolves to {_resolved(engine_path)}, outside the model "
                  f"directory {model_dir} (symlinks are followed); engines are loaded only from the model directory")
    checks.append(Check("location", located, detail))

    if not located:
        checks.append(Check("sha256", False, "not checked: the engine lies outside the model directory"))
    else:
        digest = hashlib.sha256(engine_bytes).hexdigest() if engine_bytes is not None else file_sha256(engine_path)
        same = digest == sidecar.engine_sha256
        checks.append(Check("sha256", same, f"engine SHA-256 {digest[:16]}… matches the sidecar" if same else
                            f"engine SHA-256 {digest[:16]}… differs from the sidecar's "
                            f"{sidecar.engine_sha256[:16]}… (the engine was replaced or damaged)"))

    checks.append(_gpu_check(sidecar, gpu))
    checks.append(_tensorrt_check(sidecar, tensorrt_version))

    if sidecar.build.version_compatible and not allow_engine_host_code:
        checks.append(Check("host_code", False,
                            "the engine is version-compatible: it embeds TensorRT's lean runtime, host code that "
                            "runs when the engine is loaded; allow it explicitly (--allow-engine-host-code) only "
                            "for engines you built yourself"))
    else:
        checks.append(Check("host_code", True, "engine host code explicitly allowed"
                            if sidecar.build.version_compatible else "no engine host code"))
    return checks


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve(strict=False))
    except OSError:
        return str(path)


def _gpu_check(sidecar: EngineSidecar, gpu: GpuInfo | None) -> Check:
    built = f"{sidecar.gpu_name} (compute capability {sidecar.compute_capability})"
    if gpu is None:
        return Check("gpu", False, f"no CUDA GPU here; the engine was built for {built}")
    level = sidecar.build.hardware_compatibility_level
    here = gpu.describe()
    if level == "ampere_plus":
        # HardwareCompatibilityLevel.AMPERE_PLUS: "compatible with Ampere and newer GPUs" (compute capability
        # >= 8.0); TensorRT API reference, enum HardwareCompatibilityLevel.
        ok = _capability(gpu.compute_capability) >= (8, 0)
        return Check("gpu", ok, f"built for Ampere and newer (from {built}); this GPU is {here}"
                     + ("" if ok else ": older than Ampere"))
    if level == "same_compute_capability":
        ok = gpu.compute_capability == sidecar.compute_capability
        return Check("gpu", ok, f"built for compute capability {sidecar.compute_capability} (on {built}); "
                     f"this GPU is {here}")
    ok = gpu.name == sidecar.gpu_name and gpu.compute_capability == sidecar.compute_capability
    return Check("gpu", ok, f"built for {built}; this GPU is {here}"
                 + ("" if ok else " (engines without hardware compatibility run only on the GPU model they were "
                                  "built on)"))


def _tensorrt_check(sidecar: EngineSidecar, tensorrt_version: str | None) -> Check:
    if tensorrt_version is None:
        return Check("tensorrt", False, f"tensorrt is not installed; the engine needs TensorRT "
                     f"{sidecar.tensorrt_version}")
    built, here = version_tuple(sidecar.tensorrt_version), version_tuple(tensorrt_version)
    if sidecar.build.version_compatible:
        # Version-compatible engines run on the same or a later TensorRT of the same major version
        # (TensorRT 11 docs, "Engine Compatibility" > "Version Compatibility").
        ok = bool(built) and bool(here) and here[0] == built[0] and here >= built
        return Check("tensorrt", ok, f"version-compatible engine built with TensorRT {sidecar.tensorrt_version}; "
                     f"this is TensorRT {tensorrt_version}" + ("" if ok else " (needs the same major version, "
                                                                 "not older)"))
    # "To reuse plan files and timing caches, a version compatible engine must be used, otherwise version numbers
    # must match across major, minor, patch, and build versions" (TensorRT docs, Reference > Support Policies).
    # Every part both versions state is compared (pip wheels state all four: 11.4.1.5).
    shared = min(len(built), len(here))
    ok = shared >= 3 and built[:shared] == here[:shared]
    return Check("tensorrt", ok, f"built with TensorRT {sidecar.tensorrt_version}; this is TensorRT "
                 f"{tensorrt_version}" + ("" if ok else " (an engine runs only on the TensorRT version that built "
                                                        "it: major, minor, patch and build)"))


def check_engine(
    sidecar: EngineSidecar,
    engine_path: str | Path,
    gpu: GpuInfo | None,
    tensorrt_version: str | None,
    model_dir: str | Path,
    allow_engine_host_code: bool = False,
    engine_bytes: bytes | None = None,
) -> None:
    """Raise ModelError, with the reason and the command to rebuild, unless the engine may be loaded here."""
    for check in engine_checks(sidecar, engine_path, gpu=gpu, tensorrt_version=tensorrt_version,
                               model_dir=model_dir, allow_engine_host_code=allow_engine_host_code,
                               engine_bytes=engine_bytes):
        if check.ok:
            continue
        if check.name == "location":
            target = Path(model_dir) / Path(engine_path).name
            fix = f"build it into the model directory: {rebuild_command(sidecar, target, model_dir)}"
        elif check.name == "host_code":
            fix = ("or rebuild it without version compatibility: "
                   + rebuild_command(sidecar, engine_path, model_dir))
        else:
            fix = "rebuild it on this machine: " + rebuild_command(sidecar, engine_path, model_dir)
        raise ModelError(f"{engine_path}: refused ({check.name}): {check.detail}; {fix}")
