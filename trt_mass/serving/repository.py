"""`trtmass triton-repo`: a model repository for a stock Triton Inference Server.

    REPO/NAME/config.pbtxt        written from the model's metadata (trt_mass.serving.config)
    REPO/NAME/1/model.onnx        platform onnxruntime_onnx, or
    REPO/NAME/1/model.plan        platform tensorrt_plan: only an engine whose sidecar says it was built
                                  from this very ONNX and whose bytes are the ones the sidecar hashed

A plan runs only on the GPU model and TensorRT version it was built with: the sidecar's facts go into
the configuration (parameter trt_mass.engine) so a reader sees them, but whether the server matches can
only be seen on the server (Triton refuses to load a plan from another TensorRT).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from trt_mass.atomic import atomic_path, fsync_folder, write_text_atomic
from trt_mass.errors import ConfigError, ModelError
from trt_mass.metadata import ModelMetadata, file_sha256, read_onnx_metadata
from trt_mass.serving.config import INSTANCE_KINDS, config_parameters, model_config_text

ONNX_PLATFORM = "onnxruntime_onnx"
PLAN_PLATFORM = "tensorrt_plan"
DEFAULT_MODEL_NAME = "trt_mass"


@dataclass(frozen=True)
class RepositoryConfig:
    """What `trtmass triton-repo` writes.

    Attributes:
        onnx: the engine-graph ONNX (its metadata is the configuration's source).
        out: the repository folder (created; other models in it are left alone).
        engine: a TensorRT plan built from `onnx` by `trtmass build-engine` (with its sidecar), served instead.
        name: the model name clients ask for.
        instances: model instances (Triton's instance_group count).
        device: "auto" (Triton's KIND_AUTO: GPU when there is one), "gpu" or "cpu"; a plan needs a GPU.
        force: replace an existing NAME/ folder.
    """

    onnx: Path
    out: Path
    engine: Path | None = None
    name: str = DEFAULT_MODEL_NAME
    instances: int = 1
    device: str = "auto"
    force: bool = False

    def __post_init__(self) -> None:
        if self.device not in INSTANCE_KINDS:
            raise ConfigError(f"device must be one of {', '.join(INSTANCE_KINDS)}, got {self.device!r}")
        if self.engine is not None and self.device == "cpu":
            raise ConfigError("a TensorRT plan runs on a GPU: --device cpu serves the .onnx instead (without --engine)")
        if self.instances < 1:
            raise ConfigError(f"--instances must be at least 1, got {self.instances}")
        if not self.name or any(c in self.name for c in "/\\ ") or self.name.startswith("."):
            raise ConfigError(f"model name {self.name!r}: use letters, digits, '.', '_' or '-'")


@dataclass(frozen=True)
class Repository:
    """What was written: the model folder, its configuration and the served file."""

    model_dir: Path
    config_path: Path
    model_path: Path
    platform: str
    metadata: ModelMetadata


def write_repository(config: RepositoryConfig) -> Repository:
    """Write REPO/NAME (see the module docstring); ModelError when the engine is not this ONNX's."""
    metadata = read_onnx_metadata(config.onnx)
    if metadata.kind != "engine_graph":
        raise ModelError(f"{config.onnx} is a {metadata.kind} export; a server runs the engine graph")
    onnx_sha256 = file_sha256(config.onnx)
    engine_facts = None if config.engine is None else _checked_engine(config.engine, config.onnx, onnx_sha256)
    model_dir = config.out / config.name
    if model_dir.exists() and any(model_dir.iterdir()) and not config.force:
        raise ConfigError(f"{model_dir} exists; use --force to replace it")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True)
    source = config.engine if config.engine is not None else config.onnx
    platform = PLAN_PLATFORM if config.engine is not None else ONNX_PLATFORM
    model_path = version_dir / ("model.plan" if config.engine is not None else "model.onnx")
    with atomic_path(model_path) as temporary:
        shutil.copyfile(source, temporary)
    text = model_config_text(config.name, metadata, instances=config.instances,
                             kind="gpu" if config.engine is not None and config.device == "auto" else config.device,
                             parameters=config_parameters(metadata, onnx_sha256, engine_facts), platform=platform)
    config_path = model_dir / "config.pbtxt"
    write_text_atomic(config_path, text)
    fsync_folder(config.out)
    return Repository(model_dir, config_path, model_path, platform, metadata)


def _checked_engine(engine: Path, onnx: Path, onnx_sha256: str) -> dict[str, object]:
    """The sidecar facts of an engine built from exactly this ONNX, with exactly its recorded bytes."""
    from trt_mass.engine.sidecar import read_sidecar

    sidecar = read_sidecar(engine)  # ModelError naming the file when missing or malformed
    if sidecar.source_onnx_sha256 != onnx_sha256:
        raise ModelError(f"{engine} was built from {sidecar.source_onnx} (SHA-256 {sidecar.source_onnx_sha256[:12]}…), "
                         f"not from {onnx} ({onnx_sha256[:12]}…); rebuild it with trtmass build-engine {onnx}")
    engine_sha256 = file_sha256(engine)
    if engine_sha256 != sidecar.engine_sha256:
        raise ModelError(f"{engine}: SHA-256 {engine_sha256[:12]}… differs from its sidecar's "
                         f"{sidecar.engine_sha256[:12]}… (the engine was replaced or damaged)")
    return {"engine_sha256": sidecar.engine_sha256, "tensorrt_version": sidecar.tensorrt_version,
            "gpu_name": sidecar.gpu_name, "compute_capability": sidecar.compute_capability,
            "platform": sidecar.platform, "profile": sidecar.build.profile_name,
            "version_compatible": sidecar.build.version_compatible,
            "hardware_compatibility_level": sidecar.build.hardware_compatibility_level}
