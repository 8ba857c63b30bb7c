"""`trtmass build-engine`: parse a trt_mass ONNX with TensorRT 11 and write model.plan + model.plan.json.

Written against the TensorRT 11 Python API (docs.nvidia.com/deeplearning/tensorrt/11.x):
  - strongly typed networks are the only kind: there are no FP16/INT8 builder flags and no implicit
    INT8 calibration; precision comes from the ONNX (fp16 variant, or Q/DQ nodes for int8)
    ("Migrating from TensorRT 10.x to 11.x" > "Strongly Typed Networks Are Now Required"),
  - NetworkDefinitionCreationFlag has no EXPLICIT_BATCH any more and STRONGLY_TYPED is deprecated and
    ignored, so the network is created with no flags (Python API, Core/Builder, 11.0.0).
Nothing is imported from tensorrt before the checks that need no GPU have passed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_mass.atomic import write_atomic
from trt_mass.engine.gpu import (
    GpuInfo,
    dims_tuple,
    host_memory_bytes,
    require_gpu,
    require_tensorrt_11,
    tensorrt_logger,
)
from trt_mass.engine.profiles import BuildProfile, check_model_for_profile
from trt_mass.engine.sidecar import BuildOptions, EngineSidecar, sidecar_path, write_sidecar
from trt_mass.errors import BackendUnavailableError, ConfigError, ModelError
from trt_mass.metadata import ModelMetadata, TensorSpec, file_sha256, read_onnx_metadata
from trt_mass.version import __version__

if TYPE_CHECKING:  # typed against TensorRT's own API by tests/tensorrt_api (mypy.ini), Any without it
    import tensorrt as trt

log = logging.getLogger(__name__)


def _check_gpu_for_profile(gpu: GpuInfo, profile: BuildProfile) -> None:
    if profile.compute_capabilities and gpu.compute_capability not in profile.compute_capabilities:
        raise ConfigError(
            f"profile {profile.name!r} is for compute capability {' / '.join(profile.compute_capabilities)}; this "
            f"GPU is {gpu.describe()}: choose the profile for this GPU (see build_engine/README.md)"
        )
    major, minor = (int(v) for v in gpu.compute_capability.split("."))
    if profile.hardware_compatibility == "ampere_plus" and (major, minor) < (8, 0):
        # HardwareCompatibilityLevel.AMPERE_PLUS "is only supported for engines built on NVIDIA Ampere and later
        # GPUs" (TensorRT API reference, enum HardwareCompatibilityLevel).
        raise ConfigError(f"profile {profile.name!r} asks for hardware_compatibility = 'ampere_plus', which TensorRT "
                          f"builds only on Ampere or newer GPUs; this GPU is {gpu.describe()}")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl.flock) on `path`.lock, held for the block."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_cache(path: Path) -> bytes:
    with file_lock(path):
        return path.read_bytes() if path.is_file() else b""


def _use_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    """Load the timing cache file into the builder config (an empty cache when there is none or it is stale).

    IBuilderConfig.create_timing_cache(bytes) / set_timing_cache(cache, ignore_mismatch) (Python API,
    Core/BuilderConfig; ITimingCache in Core/TimingCache): with ignore_mismatch=False a cache made by another
    TensorRT version or device is rejected instead of being used.
    """
    blob = _read_cache(path)
    cache = None
    if blob:
        try:
            cache = config.create_timing_cache(blob)
        except Exception as error:  # a damaged file must not stop the build; the cache only saves time
            log.warning("timing cache %s is unreadable (%s); starting an empty one", path, error)
            cache = None
        if cache is not None and not config.set_timing_cache(cache, ignore_mismatch=False):
            log.warning("timing cache %s was made by another TensorRT version or GPU; starting an empty one", path)
            cache = None
    if cache is None:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)


def _save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    """Merge the builder's cache with the file as it is now (another build may have added entries), write atomically.

    ITimingCache.combine(input_cache, ignore_mismatch) appends the input's entries and skips conflicting
    ones; ITimingCache.serialize() -> IHostMemory (Python API, Core/TimingCache).
    """
    ours = config.get_timing_cache()
    if ours is None:
        return
    with file_lock(path):
        on_disk = path.read_bytes() if path.is_file() else b""
        if on_disk:
            try:
                theirs = config.create_timing_cache(on_disk)
                merged = theirs is not None and ours.combine(theirs, False)
            except Exception:
                merged = False
            if not merged:
                log.warning("timing cache %s holds entries of another TensorRT version or GPU; replacing it", path)
        write_atomic(path, host_memory_bytes(ours.serialize()))


def _network_specs(network: trt.INetworkDefinition, inputs: bool) -> dict[str, tuple[str, tuple[int, ...]]]:
    import tensorrt as trt

    count = network.num_inputs if inputs else network.num_outputs
    specs = {}
    for index in range(count):
        tensor = network.get_input(index) if inputs else network.get_output(index)
        specs[tensor.name] = (np.dtype(trt.nptype(tensor.dtype)).name, dims_tuple(tensor.shape))
    return specs


def _declared(tensors: tuple[TensorSpec, ...]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {t.name: (t.dtype, t.shape) for t in tensors}


def _parse(builder: trt.Builder, logger: trt.ILogger, onnx_path: Path,
           metadata: ModelMetadata) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    """The parsed network (and its parser, which must outlive the network's use), checked against the metadata."""
    import tensorrt as trt

    # TensorRT 11: strong typing is always on; NetworkDefinitionCreationFlag.STRONGLY_TYPED is deprecated and
    # ignored and EXPLICIT_BATCH is gone (Python API 11.0.0, Core/Builder), so no creation flags.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file resolves external weight files relative to the model (Python API, Parsers/Onnx).
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser refused the model ({len(errors)} error(s)):\n  "
                         + "\n  ".join(errors or ["(no error recorded; see TensorRT's messages above)"]))
    for label, found, declared in (("inputs", _network_specs(network, True), _declared(metadata.inputs)),
                                   ("outputs", _network_specs(network, False), _declared(metadata.outputs))):
        if found != declared:
            raise ModelError(f"{onnx_path}: TensorRT parsed {label} {found}, the model's metadata declares {declared}")
    return network, parser


def _configure(builder: trt.Builder, profile: BuildProfile, metadata: ModelMetadata) -> trt.IBuilderConfig:
    import tensorrt as trt

    config = builder.create_builder_config()
    # set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes): the builder's scratch memory (Core/BuilderConfig).
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_mib << 20)
    # builder_optimization_level 0..5, default 3 (Core/BuilderConfig).
    config.builder_optimization_level = profile.builder_optimization_level
    # TF32 is on by default for fp32 tensors (BuilderFlag.TF32, "Enabled by default"); the fp32 parts of the graph
    # (box decode, merge) and fp32 models stay fp32 as exported: precision is the ONNX's, never a builder choice.
    config.clear_flag(trt.BuilderFlag.TF32)
    if profile.hardware_compatibility != "none":
        # IBuilderConfig.hardware_compatibility_level = HardwareCompatibilityLevel.AMPERE_PLUS /
        # SAME_COMPUTE_CAPABILITY (Core/BuilderConfig; Engine Compatibility > Hardware Compatibility).
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.__members__[
            profile.hardware_compatibility.upper()]
    if profile.version_compatible:
        # BuilderFlag.VERSION_COMPATIBLE embeds the lean runtime in the plan (the runtime must then allow engine
        # host code); EXCLUDE_LEAN_RUNTIME is never set, so the plan stays self-contained (Engine Compatibility >
        # Version Compatibility).
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if profile.max_aux_streams is not None:
        config.max_aux_streams = profile.max_aux_streams
    if profile.tactic_sources is not None:
        _set_tactic_sources(config, profile)
    # One optimization profile: the canvas is static, min = opt = max; the view batch is made inside the graph,
    # and with view selection view_index [K] spans 1 .. all views, tuned for the profile's opt_views
    # (Core/OptimizationProfile: IOptimizationProfile.set_shape(name, min, opt, max)).
    optimization_profile = builder.create_optimization_profile()
    for tensor in metadata.inputs:
        low, opt, high = _profile_shapes(tensor, metadata.graph_spec.geometry.num_views, profile.opt_views)
        optimization_profile.set_shape(tensor.name, trt.Dims(low), trt.Dims(opt), trt.Dims(high))
    # add_optimization_profile returns the profile's index, or -1 when the profile is invalid.
    if config.add_optimization_profile(optimization_profile) < 0:
        raise ModelError(f"TensorRT refused the optimization profile {[(t.name, t.shape) for t in metadata.inputs]} "
                         "(see TensorRT's messages above)")
    return config


def _profile_shapes(tensor: TensorSpec, num_views: int,
                    opt_views: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) of one input: its static shape, or 1 / opt_views / all views for view_index's length."""
    if all(d > 0 for d in tensor.shape):
        return tensor.shape, tensor.shape, tensor.shape
    if tensor.name != "view_index" or tensor.shape != (-1,):
        raise ModelError(f"input {tensor.name!r} has a dynamic shape {tensor.shape}; only view_index's length may vary")
    return (1,), (min(opt_views, num_views),), (num_views,)


def _set_tactic_sources(config: trt.IBuilderConfig, profile: BuildProfile) -> None:
    import tensorrt as trt

    assert profile.tactic_sources is not None
    known = list(trt.TacticSource.__members__)
    mask = 0
    for name in profile.tactic_sources:
        if name.upper() not in known:
            raise ConfigError(f"{profile.source}: tactic source {name!r} does not exist in TensorRT {trt.__version__} "
                              f"(it has {', '.join(known)}; 11.x removed CUBLAS, CUBLAS_LT, CUDNN)")
        mask |= 1 << int(trt.TacticSource.__members__[name.upper()])
    # set_tactic_sources returns False when TensorRT rejects the set.
    if not config.set_tactic_sources(mask):
        raise ConfigError(f"{profile.source}: TensorRT {trt.__version__} refused the tactic sources "
                          f"{list(profile.tactic_sources)}")


def build_engine(
    onnx_path: str | Path,
    profile: BuildProfile,
    output_path: str | Path,
    *,
    verbose: bool = False,
) -> EngineSidecar:
    """Build `output_path` (the serialized engine) and `output_path`.json (its sidecar) from a trt_mass ONNX.

    Refused before TensorRT is touched: an ONNX whose precision the profile does not allow, one
    quantized for another target, and one with a uint16 input (TensorRT has no uint16).
    Raises BackendUnavailableError without tensorrt, cuda-python or a CUDA GPU.
    """
    onnx_path, output_path = Path(onnx_path), Path(output_path)
    if output_path.suffix in (".onnx", ".json") or output_path.resolve() == onnx_path.resolve():
        raise ConfigError(f"-o {output_path}: name the engine file, e.g. {onnx_path.with_suffix('.plan').name}")
    metadata = read_onnx_metadata(onnx_path)
    check_model_for_profile(metadata, profile, onnx_path)

    tensorrt_version = str(require_tensorrt_11().__version__)
    gpu = require_gpu()
    _check_gpu_for_profile(gpu, profile)
    onnx_sha256 = file_sha256(onnx_path)
    blob, seconds = _build_plan(onnx_path, profile, metadata, verbose, gpu)
    sidecar = _sidecar(tensorrt_version, blob, onnx_path, onnx_sha256, metadata, gpu, profile, seconds)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # The engine first, then its sidecar: a crash in between leaves an engine whose hash does not match the old
    # sidecar (refused), never a sidecar vouching for the wrong engine.
    write_atomic(output_path, blob)
    write_sidecar(output_path, sidecar)
    log.info("wrote %s and %s", output_path, sidecar_path(output_path).name)
    return sidecar


def _build_plan(onnx_path: Path, profile: BuildProfile, metadata: ModelMetadata, verbose: bool,
                gpu: GpuInfo) -> tuple[bytes, float]:
    """Parse, configure and build: (the serialized engine, seconds the build took).

    The timing cache is read before the build and merged back after it.
    """
    logger = tensorrt_logger(verbose)
    builder = _builder(logger)
    network, _parser = _parse(builder, logger, onnx_path, metadata)
    config = _configure(builder, profile, metadata)
    cache_path = profile.timing_cache_path
    if cache_path is not None:
        _use_timing_cache(config, cache_path)
    log.info("building %s for %s with profile %s", onnx_path.name, gpu.describe(), profile.name)
    started = time.perf_counter()
    # build_serialized_network(network, config) -> IHostMemory, or None on failure (Core/Builder).
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if plan is None:
        raise ModelError(f"{onnx_path}: TensorRT could not build an engine with profile {profile.name!r} (see "
                         "TensorRT's messages above; a too small workspace_mib is a common cause)")
    if cache_path is not None:
        _save_timing_cache(config, cache_path)
    return host_memory_bytes(plan), seconds


def _builder(logger: trt.ILogger) -> trt.Builder:
    """trt.Builder, or BackendUnavailableError when TensorRT cannot make one (no usable GPU or libraries)."""
    import tensorrt as trt

    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as error:  # the bindings raise when the C++ factory returns nothing
        raise BackendUnavailableError(f"TensorRT could not create a builder ({error}); see its messages above") \
            from error
    if builder is None:
        raise BackendUnavailableError("TensorRT could not create a builder; see its messages above")
    return builder


def _sidecar(tensorrt_version: str, blob: bytes, onnx_path: Path, onnx_sha256: str, metadata: ModelMetadata,
             gpu: GpuInfo, profile: BuildProfile, seconds: float) -> EngineSidecar:
    return EngineSidecar(
        engine_sha256=hashlib.sha256(blob).hexdigest(),
        engine_bytes=len(blob),
        source_onnx=onnx_path.name,
        source_onnx_sha256=onnx_sha256,
        model_metadata=metadata,
        tensorrt_version=tensorrt_version,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        gpu_driver_version=gpu.driver_version,
        gpu_memory_mib=gpu.total_memory_mib,
        build=BuildOptions(
            profile_name=profile.name,
            profile=profile.to_dict(),
            hardware_compatibility_level=profile.hardware_compatibility,
            version_compatible=profile.version_compatible,
            tf32=False,
            build_seconds=round(seconds, 1),
        ),
        trt_mass_version=__version__,
    )
