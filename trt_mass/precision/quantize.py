"""FP16 and INT8 variants of an exported fp32 model (TensorRT 11 takes precision from the ONNX).

Only the network (backbone, FPN, heads: the nodes from the first to the last Conv) changes
precision; canvas handling, anchor decode, NMS and the cross-view merge stay fp32, because decoded
coordinates in fp16 step by 2 px at 2048 px.  Every variant is a normal ONNX file that ONNX Runtime
runs, so its accuracy is measured on the CPU (`trtmass compare`).

Needs onnx and onnxruntime (its quantization tools); not torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.atomic import atomic_path
from trt_mass.errors import ConfigError, ModelError
from trt_mass.metadata import ModelMetadata, file_sha256, metadata_from_map
from trt_mass.precision.calib import CalibrationSet, CanvasReader
from trt_mass.precision.sensitivity import (
    AutoChoice,
    KeepFp32,
    choose_auto,
    kept_nodes,
    layer_groups,
    resolve,
    score_taps,
)
from trt_mass.precision.winograd import WinogradRule, require_rewrites, rewrite_model
from trt_mass.version import package_versions

PRECISIONS = ("fp32", "fp16", "int8")
TARGETS = ("tensorrt", "cpu")
METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Int8Scheme:
    """How INT8 is laid out for one target, and why."""

    activation_type: str  # "QInt8" | "QUInt8"
    weight_type: str
    per_channel: bool
    activation_symmetric: bool
    quantize_bias: bool
    why: str


# One table of targets; quantize never rewrites what it says (a user who wants another scheme picks another target).
INT8_SCHEMES: dict[str, Int8Scheme] = {
    "tensorrt": Int8Scheme(
        "QInt8", "QInt8", per_channel=True, activation_symmetric=True, quantize_bias=False,
        why="TensorRT explicit quantization: symmetric int8 (every zero point 0), per-channel weight scales; "
            "biases stay float (TensorRT has no int32 Q/DQ and fuses float biases itself)",
    ),
    "cpu": Int8Scheme(
        "QUInt8", "QInt8", per_channel=True, activation_symmetric=False, quantize_bias=True,
        why="ONNX Runtime on x86: u8 activations x s8 weights fuse into QLinearConv (about 3x fp32 here); "
            "s8 x s8 activations barely beat fp32",
    ),
}


@dataclass(frozen=True)
class QuantizeOptions:
    """What variant to make.

    Attributes:
        precision: "fp16", "int8", or "fp32" (cpu target only: 3x3 convolutions by Winograd F(4x4,3x3)).
        target: "tensorrt" (the ONNX an engine is built from) or "cpu" (ONNX Runtime).
        method: INT8 activation calibration: "minmax", "entropy" or "percentile".
        reduce_range: INT8 for CPUs without VNNI (7-bit weights, avoids u8 x s8 saturation).
        cache_dir: where calibration ranges are cached (None: no cache).
        keep_fp32: network layer groups left in fp32 in an INT8 variant (names, and/or `auto`).
    """

    precision: str
    target: str
    method: str = "minmax"
    reduce_range: bool = False
    cache_dir: Path | None = None
    winograd: WinogradRule = field(default_factory=WinogradRule)
    keep_fp32: KeepFp32 = field(default_factory=KeepFp32)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.target not in TARGETS:
            raise ConfigError(f"target {self.target!r}: choose one of {', '.join(TARGETS)}")
        if self.method not in METHODS:
            raise ConfigError(f"calibration method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.precision == "fp32" and self.target != "cpu":
            raise ConfigError("--precision fp32 exists for --target cpu only: for TensorRT the fp32 export is the "
                              "model to build from (TensorRT chooses its own convolution algorithms)")
        if self.reduce_range and (self.precision != "int8" or self.target != "cpu"):
            raise ConfigError("--reduce-range applies to --precision int8 --target cpu only")
        if self.keep_fp32.requested and self.precision != "int8":
            raise ConfigError("--keep-fp32 applies to --precision int8 only")


def network_node_names(graph: Any) -> set[str]:
    """Names of the network's nodes: every node on a path from the first Conv to the last.

    That is backbone, FPN and heads (Conv, Relu, Add, MaxPool, Resize); the view slicing before
    and the reshapes, decode, NMS and merge after are not in it.
    """
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    convs = [node for node in graph.node if node.op_type == "Conv"]
    if not convs:
        raise ModelError("the model has no Conv node: not a trt_mass RetinaNet graph")

    def reach(step: Callable[[Any], Iterable[Any]]) -> set[str]:
        seen: set[str] = set()
        stack = list(convs)
        while stack:
            node = stack.pop()
            if node.name not in seen:
                seen.add(node.name)
                stack.extend(step(node))
        return seen

    upstream = reach(lambda n: [producers[i] for i in n.input if i in producers])
    downstream = reach(lambda n: [c for o in n.output for c in consumers[o]])
    return upstream & downstream


def _name_nodes(model: Any) -> None:
    """Give every node a unique name (quantization selects nodes by name)."""
    used: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in used:
            node.name = f"{node.op_type}_trtmass_{index}"
        used.add(node.name)


def _source_metadata(model: Any, source: Path) -> ModelMetadata:
    entries = {prop.key: prop.value for prop in model.metadata_props}
    metadata = metadata_from_map(entries, str(source))
    if metadata.precision != "fp32" or metadata.target != "any":
        raise ModelError(f"{source} is already a {metadata.precision} variant for {metadata.target}; "
                         "make variants from the fp32 export")
    return metadata


def _write_metadata(model: Any, metadata: ModelMetadata) -> None:
    del model.metadata_props[:]
    for key, value in metadata.flat_entries().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def quantize_model(source: Path, output: Path, options: QuantizeOptions,
                   calibration: CalibrationSet | None = None, progress: bool = False) -> ModelMetadata:
    """Write the `options.precision` variant of the fp32 model `source` to `output`; return its metadata.

    INT8 needs a calibration set (verified against its manifest first); FP16 and FP32 (cpu) take none.
    """
    import onnx

    if options.precision == "int8" and calibration is None:
        raise ConfigError("--precision int8 needs a calibration set (--calib calib/NAME.toml; make one with "
                          "`trtmass calib make`)")
    if options.precision != "int8" and calibration is not None:
        raise ConfigError(f"--precision {options.precision} takes no calibration set; drop --calib")
    if not source.is_file():
        raise ModelError(f"{source}: no such model file")
    model = _load_onnx(source)
    metadata = _source_metadata(model, source)
    if options.precision == "int8" and metadata.kind != "engine_graph":
        raise ConfigError(f"{source} is a {metadata.kind} export: INT8 calibration feeds canvases, which only the "
                          "engine graph takes (export without --network-only)")
    _name_nodes(model)
    network_nodes = network_node_names(model.graph)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Never a half-made variant beside the real ones: everything happens on the temporary file.
    with atomic_path(output, suffix=".onnx") as tmp:
        if options.precision == "fp16":
            quantization = _to_fp16(model, network_nodes, tmp)
        elif options.precision == "fp32":
            quantization = _to_fp32_cpu(model, options.winograd, source, tmp)
        else:
            assert calibration is not None
            calibration.verify()
            quantization = _to_int8(model, metadata, network_nodes, options, calibration, source, tmp, progress)
        quantization["source_onnx_sha256"] = file_sha256(source)
        variant = onnx.load(str(tmp))
        if options.precision == "int8" and options.target == "tensorrt":
            float_convs = kept_nodes(layer_groups(model.graph, network_nodes), quantization["keep_fp32"]["groups"])
            problems = tensorrt_qdq_problems(variant, float_convs)
            if problems:
                raise ModelError(f"the INT8 graph is not TensorRT explicit quantization: {problems[:3]}")
        variant_metadata = dataclasses.replace(
            metadata,
            precision=options.precision,
            target=options.target,
            quantization=quantization,
            calibration_sha256=calibration.content_sha256 if calibration else None,
            versions={**metadata.versions, **package_versions(("onnx", "onnxruntime"))},
            operating_points=None,  # measured on the source; measure the variant's own with eval
        )
        _write_metadata(variant, variant_metadata)
        onnx.save(variant, str(tmp))
        _check_loads(tmp, metadata)
    return variant_metadata


def _to_fp16(model: Any, network_nodes: set[str], path: Path) -> dict[str, Any]:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep_fp32 = [node.name for node in model.graph.node if node.name not in network_nodes]
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep_fp32)
    onnx.save(converted, str(path))
    return {"tool": "onnxruntime.transformers.float16", "fp16_nodes": len(network_nodes),
            "fp32_nodes": len(keep_fp32), "scope": "backbone, FPN and heads in fp16; decode, NMS, merge in fp32"}


def _to_fp32_cpu(model: Any, rule: WinogradRule, source: Path, path: Path) -> dict[str, Any]:
    import onnx

    report = rewrite_model(model, rule)
    require_rewrites(report, str(source))
    onnx.save(model, str(path))
    return {**report, "scope": "3x3 convolutions of the rule by Winograd in fp32; everything else as exported",
            "why": "ONNX Runtime's CPU convolutions are direct and already at the FMA peak; Winograd needs "
                   "4x fewer multiplications on the large 3x3 convolutions"}


@contextmanager
def _quiet_ort_advice() -> Any:
    """ONNX Runtime's quantizer logs advice to pre-process on the root logger; our graph is already optimised."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-process" not in record.getMessage()

    drop = _Drop()
    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _to_int8(model: Any, metadata: ModelMetadata, network_nodes: set[str], options: QuantizeOptions,
             calibration: CalibrationSet, source: Path, path: Path, progress: bool) -> dict[str, Any]:
    import onnx

    scheme = INT8_SCHEMES[options.target]
    cache = _cache_path(options, calibration, source, scheme)
    from trt_mass.tissue import all_views

    spec = metadata.graph_spec
    reader = CanvasReader(calibration, spec.geometry, spec.canvas_dtype, metadata.inputs[0].name, progress,
                          all_views(spec.geometry) if spec.selects_views else None)
    named = path.with_name(path.name + ".named.onnx")
    if cache is not None and cache.is_file() and not _readable_json(cache):
        # A cache cut short (a full disk, a copy interrupted) would fail every run the same way
        print(f"trtmass: warning: calibration cache {cache} is unreadable; the ranges are measured again",
              file=sys.stderr)
        cache.unlink()
    cached = cache is not None and cache.is_file()
    groups = layer_groups(model.graph, network_nodes)
    kept = resolve(groups, options.keep_fp32.names)  # before anything is written: a bad name leaves nothing
    auto = None
    onnx.save(model, str(named))
    try:
        # Ranges cached for every method when layers are kept automatically: the sensitivity pass quantizes
        # once per layer group and must reuse the ranges of the whole network.
        if cache is None and (options.method == "minmax" or options.keep_fp32.auto):
            cache = path.with_name(path.name + ".ranges.json")
        if options.method == "minmax" and not cached:
            # ONNX Runtime's MinMax calibrator runs the augmented graph unoptimised (all 26 views of every
            # intermediate tensor in separate buffers: > 24 GB for resnet50 at 768x640); our own pass keeps the
            # optimised session and writes the same ranges into the calibration cache quantize_static reads.
            assert cache is not None
            _save_minmax_ranges(model, network_nodes, reader, cache)
        with _quiet_ort_advice():
            if options.keep_fp32.auto:
                if not (cache is not None and cache.is_file()):  # entropy/percentile: ranges of the whole network
                    _quantize_static(named, path, reader, cache, network_nodes, options, scheme)
                auto = _choose_auto(model, named, path, reader, cache, groups, network_nodes, kept, options, scheme,
                                    progress)
                kept += auto.chosen
            _quantize_static(named, path, reader, cache, network_nodes - kept_nodes(groups, kept), options, scheme)
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"{source}: ONNX Runtime quantization failed ({error})") from error
    finally:
        named.unlink(missing_ok=True)
        path.with_name(path.name + ".sensitivity.onnx").unlink(missing_ok=True)
        if options.cache_dir is None and cache is not None:
            cache.unlink(missing_ok=True)
        if progress and not cached:
            print(file=sys.stderr)
    return {**_int8_report(options, scheme, calibration, cached),
            "keep_fp32": {"names": list(options.keep_fp32.names), "auto": auto.report() if auto else None,
                          "groups": kept, "layer_groups": len(groups)}}


def _choose_auto(model: Any, named: Path, path: Path, reader: CanvasReader, cache: Path | None,
                 groups: dict[str, list[str]], network_nodes: set[str], kept: list[str], options: QuantizeOptions,
                 scheme: Int8Scheme, progress: bool) -> AutoChoice:
    """The sensitivity pass on the first calibration images (trt_mass.precision.sensitivity)."""
    reader.set_range(0, min(options.keep_fp32.images, len(reader)))
    feeds = []
    while (feed := reader.get_next()) is not None:
        feeds.append(feed)

    def quantize(nodes: set[str], out: Path) -> None:
        _quantize_static(named, out, reader, cache, nodes, options, scheme)

    taps = score_taps(model.graph, network_nodes, groups)
    return choose_auto(quantize, named, feeds, groups, network_nodes, kept, taps, options.keep_fp32,
                       path.with_name(path.name + ".sensitivity.onnx"), progress)


def _load_onnx(source: Path) -> Any:
    """The ONNX model of `source`; ModelError when it is not one."""
    import onnx

    try:
        return onnx.load(str(source))
    except Exception as error:  # protobuf's DecodeError and friends: the file is not a model
        raise ModelError(f"{source}: not an ONNX model ({type(error).__name__}: {error})") from error


def _readable_json(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _quantize_static(named: Path, path: Path, reader: CanvasReader, cache: Path | None, network_nodes: set[str],
                     options: QuantizeOptions, scheme: Int8Scheme) -> None:
    """ONNX Runtime's quantize_static with our scheme; the ranges come from `cache` when it exists."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[options.method]
    quantize_static(
        str(named), str(path), None if cache is not None and cache.is_file() else reader,
        quant_format=QuantFormat.QDQ,
        per_channel=scheme.per_channel,
        reduce_range=options.reduce_range,
        activation_type=getattr(QuantType, scheme.activation_type),
        weight_type=getattr(QuantType, scheme.weight_type),
        nodes_to_quantize=sorted(network_nodes),
        calibrate_method=method,
        calibration_cache_path=str(cache) if cache else None,
        extra_options={
            "ActivationSymmetric": scheme.activation_symmetric,
            "WeightSymmetric": True,
            "QuantizeBias": scheme.quantize_bias,
            # one image per calibration pass: bounded memory for entropy/percentile histograms
            "CalibStridedMinMax": 1,
        },
    )


def _int8_report(options: QuantizeOptions, scheme: Int8Scheme, calibration: CalibrationSet,
                 cached: bool) -> dict[str, Any]:
    """What the int8 variant's metadata says about its quantization."""
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "method": options.method,
        "activation_type": scheme.activation_type,
        "weight_type": scheme.weight_type,
        "per_channel": scheme.per_channel,
        "activation_symmetric": scheme.activation_symmetric,
        "weight_symmetric": True,
        "quantize_bias": scheme.quantize_bias,
        "reduce_range": options.reduce_range,
        "why": scheme.why,
        "calibration_set": calibration.name,
        "calibration_images": len(calibration.images),
        "calibration_cache": "hit" if cached else ("written" if options.cache_dir is not None else "none"),
        "quantized_scope": "backbone, FPN and heads; decode, NMS, merge in fp32",
    }


def _save_minmax_ranges(model: Any, network_nodes: set[str], reader: CanvasReader, cache: Path) -> None:
    """Per-tensor minimum and maximum of every float tensor the network's nodes read or write, over the set.

    One optimised ONNX Runtime session on the model plus a ReduceMin/ReduceMax per tensor, one image at
    a time; saved in ONNX Runtime's calibration-cache format (MinMax), so quantize_static uses these ranges.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    inferred = onnx.shape_inference.infer_shapes(model)
    float_tensors = {v.name for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
                     if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    initializers = {t.name for t in model.graph.initializer}
    tensors: list[str] = []  # in the order they are computed
    for node in model.graph.node:
        if node.name in network_nodes:
            tensors += [name for name in [*node.input, *node.output]
                        if name in float_tensors and name not in initializers and name not in tensors]
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    del augmented.graph.output[:]
    reductions = []
    for index, tensor in enumerate(tensors):
        for op in ("ReduceMin", "ReduceMax"):
            output = f"trtmass_calib_{index}_{op}"
            reductions.append(helper.make_node(op, [tensor], [output], keepdims=0, name=output))
            augmented.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, []))
    # ONNX Runtime orders nodes by a depth-first walk back from the graph's leaves, highest node index first.
    # Reductions appended latest-tensor-first make the earliest tensor's reduction the first leaf walked, so
    # each tensor is reduced as soon as it exists and freed after its own consumers, not kept to the end.
    augmented.graph.node.extend(reversed(reductions))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(augmented.SerializeToString(), options, providers=["CPUExecutionProvider"])
    lowest = np.full(len(tensors), np.inf, dtype=np.float32)
    highest = np.full(len(tensors), -np.inf, dtype=np.float32)
    reader.set_range(0, len(reader))
    while (feed := reader.get_next()) is not None:
        values = np.asarray(session.run(None, feed), dtype=np.float32).reshape(len(tensors), 2)
        lowest = np.fmin(lowest, values[:, 0])
        highest = np.fmax(highest, values[:, 1])
    if not np.isfinite(lowest).all() or not np.isfinite(highest).all():
        raise ModelError("calibration produced non-finite ranges (NaN/Inf activations on the calibration set)")
    ranges = {tensor: (np.array([lo], np.float32), np.array([hi], np.float32))
              for tensor, lo, hi in zip(tensors, lowest, highest, strict=True)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as temporary:
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), temporary)


def _cache_path(options: QuantizeOptions, calibration: CalibrationSet, source: Path, scheme: Int8Scheme) -> Path | None:
    """Calibration ranges are keyed by everything they depend on: model file, image set, method, scheme."""
    if options.cache_dir is None:
        return None
    key = hashlib.sha256("\n".join([
        file_sha256(source), calibration.content_sha256, options.method, repr(scheme), str(options.reduce_range),
        package_versions(("onnxruntime",)).get("onnxruntime", ""),
    ]).encode()).hexdigest()
    # The set's name is not covered by its content hash and may say "../x": only a plain file name here.
    safe_name = re.sub(r"[^A-Za-z0-9_-]+", "_", calibration.name).strip("_") or "calibration"
    return options.cache_dir / f"{safe_name}-{options.method}-{key[:16]}.json"


def _check_loads(path: Path, source_metadata: ModelMetadata) -> None:
    """The variant must load in ONNX Runtime with the source's inputs and outputs."""
    from trt_mass.runners.ort import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, threads=1) as runner:
        if runner.metadata.inputs != source_metadata.inputs or runner.metadata.outputs != source_metadata.outputs:
            raise ModelError(f"{path}: the variant's inputs/outputs differ from the source's")


def tensorrt_qdq_problems(model: Any, float_convs: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Why `model` is not TensorRT-style explicit INT8 (empty when it is).

    TensorRT needs symmetric quantization (every zero point 0, int8) and takes per-channel weight
    scales along the output-channel axis of Conv weights.  `float_convs`: Conv nodes kept in float on
    purpose (--keep-fp32), whose weights are not quantized.
    """
    from onnx import numpy_helper

    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    problems = []
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        return ["no QuantizeLinear/DequantizeLinear nodes"]
    for node in qdq:
        if len(node.input) < 3 or node.input[2] not in initializers:
            problems.append(f"{node.name}: no constant zero point")
            continue
        zero_point = initializers[node.input[2]]
        if zero_point.dtype.name != "int8" or zero_point.any():
            problems.append(f"{node.name}: zero point {zero_point.dtype.name} {zero_point.ravel()[:4]}")
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name in float_convs:
            continue
        weight_dq = next((n for n in qdq if n.op_type == "DequantizeLinear" and node.input[1] in n.output), None)
        if weight_dq is None:
            problems.append(f"{node.name}: weight is not quantized")
            continue
        scale = initializers.get(weight_dq.input[1])
        weight = initializers.get(weight_dq.input[0])
        if scale is None or weight is None or scale.ndim != 1 or scale.shape[0] != weight.shape[0]:
            problems.append(f"{node.name}: weight scale is not per output channel")
    return problems


def describe(metadata: ModelMetadata) -> str:
    quantization = metadata.quantization
    details = ", ".join(f"{k} {quantization[k]}" for k in ("method", "activation_type", "per_channel",
                                                            "algorithm", "rewritten_convs", "direct_convs")
                        if k in quantization)
    kept = (quantization.get("keep_fp32") or {}).get("groups")
    if kept:
        details += f"; fp32 layers: {', '.join(kept)}"
    return f"{metadata.model_id} for {metadata.target}" + (f" ({details})" if details else "")


def list_layer_groups(source: Path) -> dict[str, list[str]]:
    """The network's layer groups of an exported model (what --keep-fp32 names), with their Conv nodes."""
    if not source.is_file():
        raise ModelError(f"{source}: no such model file")
    model = _load_onnx(source)
    _source_metadata(model, source)  # a variant's groups are already quantized or renamed: nothing to keep
    _name_nodes(model)
    return layer_groups(model.graph, network_node_names(model.graph))


__all__ = ["INT8_SCHEMES", "QuantizeOptions", "list_layer_groups", "network_node_names", "quantize_model",
           "tensorrt_qdq_problems"]
