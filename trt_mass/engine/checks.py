"""The checks an engine must pass before anything of it is deserialized, and the engine lookup of `auto`.

A serialized engine is code-like: deserializing an untrusted one is running untrusted code.  So an
engine is loaded only when:

  - it lies (symlinks resolved) inside the configured model directory,
  - its SHA-256 equals the sidecar's (checked on the bytes that will be deserialized, before that),
  - it was built on this platform (operating system and CPU architecture: engines are not portable),
  - this GPU is the one it was built for (name and compute capability), unless it was built with a
    hardware-compatibility level that covers this GPU,
  - this TensorRT is the one it was built with (major.minor.patch.build), unless it is version-compatible
    (same major, this one not older),
  - it needs no engine host code (a version-compatible engine embeds TensorRT's lean runtime, which
    runs as host code when deserialized), or the user allowed that explicitly.

Pure Python: the GPU and the TensorRT version come in as data (LoadContext), so every branch is tested
without a GPU.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from trt_mass.engine.gpu import GpuInfo, version_tuple
from trt_mass.engine.sidecar import SIDECAR_SUFFIX, EngineSidecar, read_sidecar, sidecar_path, this_platform
from trt_mass.errors import ModelError
from trt_mass.metadata import file_sha256


@dataclass(frozen=True)
class Check:
    """One condition for loading an engine: its name, whether it holds, and why."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class LoadContext:
    """Where and on what an engine would be loaded.

    Attributes:
        gpu: this machine's GPU (None: no usable CUDA GPU).
        tensorrt_version: the installed TensorRT (None: not installed).
        model_dir: the only folder engines may be loaded from.
        allow_engine_host_code: version-compatible engines (their lean runtime runs as host code) allowed.
        platform: this machine's operating system and CPU architecture ("Linux-x86_64").
    """

    gpu: GpuInfo | None
    tensorrt_version: str | None
    model_dir: Path
    allow_engine_host_code: bool = False
    platform: str = field(default_factory=this_platform)


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


def engine_checks(sidecar: EngineSidecar, engine_path: str | Path, context: LoadContext,
                  engine_bytes: bytes | None = None) -> list[Check]:
    """Every condition for loading the engine, in order: location, hash, platform, GPU, TensorRT, host code.

    `engine_bytes`: the exact bytes that would be deserialized (hash them, not the file again).
    Nothing here deserializes anything.
    """
    engine_path = Path(engine_path)
    location = _location_check(engine_path, Path(context.model_dir))
    return [
        location,
        _hash_check(sidecar, engine_path, engine_bytes) if location.ok else
        Check("sha256", False, "not checked: the engine lies outside the model directory"),
        _platform_check(sidecar, context.platform),
        _gpu_check(sidecar, context.gpu),
        _tensorrt_check(sidecar, context.tensorrt_version),
        _host_code_check(sidecar, context.allow_engine_host_code),
    ]


def _location_check(engine_path: Path, model_dir: Path) -> Check:
    located = inside(engine_path, model_dir) and inside(sidecar_path(engine_path), model_dir)
    if located:
        detail = f"{engine_path} and its sidecar lie in the model directory {model_dir}"
    elif not engine_path.is_file():
        detail = f"no engine file {engine_path}"
    else:
        detail = (f"{engine_path} (or its sidecar) resolves to {_resolved(engine_path)}, outside the model "
                  f"directory {model_dir} (symlinks are followed); engines are loaded only from the model directory")
    return Check("location", located, detail)


def _hash_check(sidecar: EngineSidecar, engine_path: Path, engine_bytes: bytes | None) -> Check:
    digest = hashlib.sha256(engine_bytes).hexdigest() if engine_bytes is not None else file_sha256(engine_path)
    same = digest == sidecar.engine_sha256
    return Check("sha256", same, f"engine SHA-256 {digest[:16]}… matches the sidecar" if same else
                 f"engine SHA-256 {digest[:16]}… differs from the sidecar's {sidecar.engine_sha256[:16]}… (the "
                 "engine was replaced or damaged)")


def _platform_check(sidecar: EngineSidecar, here: str) -> Check:
    if sidecar.platform is None:
        return Check("platform", False, "the sidecar does not say which platform the engine was built on (written by "
                                        "an older trt_mass)")
    ok = sidecar.platform == here
    return Check("platform", ok, f"built on {sidecar.platform}; this is {here}" + (
        "" if ok else " (engines run only on the operating system and CPU architecture they were built on)"))


def _host_code_check(sidecar: EngineSidecar, allowed: bool) -> Check:
    if sidecar.build.version_compatible and not allowed:
        return Check("host_code", False,
                     "the engine is version-compatible: it embeds TensorRT's lean runtime, host code that runs when "
                     "the engine is loaded; allow it explicitly (--allow-engine-host-code) only for engines you "
                     "built yourself")
    return Check("host_code", True, "engine host code explicitly allowed" if sidecar.build.version_compatible
                 else "no engine host code")


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


def check_engine(sidecar: EngineSidecar, engine_path: str | Path, context: LoadContext,
                 engine_bytes: bytes | None = None) -> None:
    """Raise ModelError, with the reason and the command to rebuild, unless the engine may be loaded here."""
    model_dir = context.model_dir
    for check in engine_checks(sidecar, engine_path, context, engine_bytes):
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


def find_engine(onnx_path: str | Path, context: LoadContext) -> tuple[Path | None, str]:
    """The engine in `context.model_dir` built from this ONNX (sidecar's source_onnx_sha256) that may run here.

    Returns (engine, "") or (None, why not): no engine for this model, or the first candidate's failed
    check with the command that rebuilds it.
    """
    model_dir = Path(context.model_dir)
    candidates = _engines_built_from(file_sha256(onnx_path), model_dir)
    if not candidates:
        return None, f"no engine for this model in {model_dir}"
    problems = []
    for engine, sidecar in candidates:
        failed = [check for check in engine_checks(sidecar, engine, context) if not check.ok]
        if not failed:
            return engine, ""
        problems.append(f"engine {engine.name} was built for {sidecar.gpu_name} (compute capability "
                        f"{sidecar.compute_capability}, TensorRT {sidecar.tensorrt_version}): {failed[0].detail} "
                        f"(rebuild with: {rebuild_command(sidecar, engine, model_dir)})")
    return None, problems[0]


def _engines_built_from(onnx_sha256: str, model_dir: Path) -> list[tuple[Path, EngineSidecar]]:
    """Engines in `model_dir` whose readable sidecar names this ONNX as their source, by file name."""
    found = []
    for side in sorted(model_dir.glob(f"*{SIDECAR_SUFFIX}")):
        engine = side.with_name(side.name[: -len(SIDECAR_SUFFIX)])
        if not engine.is_file() or engine.suffix == ".onnx":
            continue
        try:
            sidecar = read_sidecar(engine)
        except ModelError:
            continue
        if sidecar.source_onnx_sha256 == onnx_sha256:
            found.append((engine, sidecar))
    return found
