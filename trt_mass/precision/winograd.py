"""Winograd F(4x4, 3x3) convolutions for ONNX Runtime on CPUs: the fp32 `--target cpu` variant.

ONNX Runtime's x86 convolutions are direct (im2col + SGEMM); on the 3x3 convolutions of the
RetinaNet head and FPN they already run at the FMA peak of the cores, so only fewer multiplications
make them faster.  Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016) computes a 4x4 output tile of a 3x3 convolution with 36 instead of 144
multiplications per input/output channel pair.  This module rewrites eligible Conv nodes of an ONNX
graph into plain ONNX operators (no custom op, so the same file runs on any ONNX Runtime):

    x [N, C, H, W]
      -> Conv, group=C, 36 fixed 6x6 kernels, stride 4     V  [N, C*36, th, tw]  (B^T d B per tile)
      -> Reshape [N, C, 36, T] -> Transpose [N, 36, C, T]
      -> MatMul with U [36, K, C] (G g G^T, from the weights)  M  [N, 36, K, T]
      -> MatMul with A [16, 36] (A^T m A)                       Y  [N, 16, K*T]
      -> Reshape [N, 16K, th, tw] -> DepthToSpace(4, DCR)      [N, K, 4th, 4tw]
      -> Slice to [N, K, Ho, Wo] when Ho or Wo is not a multiple of 4 -> Add bias

The result is the same fp32 convolution with another rounding order (max relative difference about
1e-5 of the output range in tests); precision does not change.  Small convolutions lose: the
transforms cost memory traffic proportional to C + K per pixel while the saving grows with C x K,
so only convolutions with many channels and enough pixels are rewritten (WinogradRule; thresholds
measured on this project's CPU, see benchmarks/RESULTS.md).  TensorRT picks its own algorithms and
gets the plain export, never this variant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trt_mass.errors import ModelError

TILE = 4  # output tile side: F(4x4, 3x3)
KERNEL = 3
INPUT_TILE = TILE + KERNEL - 1  # 6

# Lavin & Gray's F(4, 3) matrices (rows of B^T, G and A^T), exact in float64.
B_T = np.array([
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
], dtype=np.float64)
G = np.array([
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
], dtype=np.float64)
A_T = np.array([
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
], dtype=np.float64)

ALGORITHM = "winograd F(4x4,3x3)"


@dataclass(frozen=True)
class WinogradRule:
    """Which 3x3, stride-1, undilated, ungrouped Conv nodes are rewritten.

    Defaults from `python -m benchmarks.bench_winograd` on the project's 2-core AVX-512 CPU (ONNX Runtime
    1.32, batch 8, per view, each convolution's own nodes): 256 -> 256 channels at 96x80 output 39 -> 23 ms,
    48x40 9.9 -> 6.3 ms, 24x20 2.5 -> 2.1 ms; 512 -> 512 at 24x20 10 -> 5.6 ms.  Slower than direct at
    12x10 output (0.6 -> 1.1 ms), at 64 channels (10 -> 17 ms) and for the 9- and 36-channel prediction
    layers; 128 channels at 96x80 about even (9.8 -> 9.1 ms), so left direct.  Other CPUs may differ: the
    thresholds are options of `trtmass quantize`.
    """

    min_in_channels: int = 256
    min_out_channels: int = 256
    min_output_pixels: int = 400

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Conv:
    """One Conv node with everything the rewrite needs (shapes from ONNX shape inference)."""

    node: Any
    weight: np.ndarray  # [K, C, 3, 3] float32
    bias: np.ndarray | None  # [K]
    input_hw: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right

    @property
    def output_hw(self) -> tuple[int, int]:
        top, left, bottom, right = self.pads
        return self.input_hw[0] + top + bottom - 2, self.input_hw[1] + left + right - 2


def weight_transform(weight: np.ndarray) -> np.ndarray:
    """U = G g G^T for every output/input channel pair: weight [K, C, 3, 3] -> [36, K, C] float32."""
    transformed = np.einsum("ar,kcrs,bs->abkc", G, weight.astype(np.float64), G)
    return transformed.reshape(INPUT_TILE * INPUT_TILE, weight.shape[0], weight.shape[1]).astype(np.float32)


def input_transform_kernels(channels: int) -> np.ndarray:
    """Depthwise kernels computing B^T d B per 6x6 tile: [C * 36, 1, 6, 6], channel c*36 + (a*6 + b)."""
    per_channel = np.einsum("ar,bs->abrs", B_T, B_T).reshape(INPUT_TILE * INPUT_TILE, 1, INPUT_TILE, INPUT_TILE)
    return np.tile(per_channel, (channels, 1, 1, 1)).astype(np.float32)


def output_transform() -> np.ndarray:
    """A^T m A as a matrix: [16, 36], row i*4 + j (output pixel of the tile), column a*6 + b."""
    return np.einsum("ia,jb->ijab", A_T, A_T).reshape(TILE * TILE, INPUT_TILE * INPUT_TILE).astype(np.float32)


def rewrite_model(model: Any, rule: WinogradRule = WinogradRule()) -> dict[str, Any]:
    """Rewrite the eligible Conv nodes of `model` (an onnx.ModelProto, changed in place).

    Returns a report: how many Conv nodes were rewritten, how many stay direct and why.
    Weights shared by several Conv nodes (the RetinaNet head runs on every pyramid level) are
    transformed once; original weights no remaining node reads are dropped.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {value.name: _static_dims(value) for value in
              [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    kept: Counter[str] = Counter()
    new_nodes: list[Any] = []
    transformed: dict[str, str] = {}
    shared: dict[str, str] = {}
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            new_nodes.append(node)
            continue
        conv, reason = _eligible(node, shapes, initializers, rule)
        if conv is None:
            kept[reason] += 1
            new_nodes.append(node)
            continue
        new_nodes.extend(_winograd_nodes(conv, model, transformed, shared))
        rewritten += 1
    if rewritten == 0:
        return {"algorithm": ALGORITHM, "rewritten_convs": 0, "direct_convs": sum(kept.values()),
                "direct_reasons": dict(kept), "rule": rule.to_dict()}
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    _drop_unused_initializers(model)
    return {"algorithm": ALGORITHM, "rewritten_convs": rewritten, "direct_convs": sum(kept.values()),
            "direct_reasons": dict(sorted(kept.items())), "rule": rule.to_dict()}


def _static_dims(value: Any) -> tuple[int | None, ...] | None:
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim)


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _eligible(node: Any, shapes: dict[str, Any], initializers: dict[str, Any],
              rule: WinogradRule) -> tuple[_Conv | None, str]:
    """The Conv as a rewrite candidate, or None and why it stays a direct convolution."""
    from onnx import numpy_helper

    attributes = _attributes(node)
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
        return None, "auto_pad"
    if node.input[1] not in initializers:
        return None, "weight is not a constant"
    weight = numpy_helper.to_array(initializers[node.input[1]])
    if weight.ndim != 4 or weight.shape[2:] != (KERNEL, KERNEL) or weight.dtype != np.float32:
        return None, "not a float32 3x3 kernel"
    if list(attributes.get("strides", [1, 1])) != [1, 1]:
        return None, "strided"
    if list(attributes.get("dilations", [1, 1])) != [1, 1]:
        return None, "dilated"
    if attributes.get("group", 1) != 1:
        return None, "grouped"
    bias = None
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in initializers:
            return None, "bias is not a constant"
        bias = numpy_helper.to_array(initializers[node.input[2]])
    if weight.shape[1] < rule.min_in_channels or weight.shape[0] < rule.min_out_channels:
        return None, "too few channels"
    dims = shapes.get(node.input[0])
    if dims is None or len(dims) != 4 or dims[2] is None or dims[3] is None:
        return None, "input height/width not static"
    top, left, bottom, right = (int(p) for p in attributes.get("pads", [0, 0, 0, 0]))
    conv = _Conv(node, weight, bias, (int(dims[2]), int(dims[3])), (top, left, bottom, right))
    height, width = conv.output_hw
    if height < 1 or width < 1 or height * width < rule.min_output_pixels:
        return None, "too few output pixels"
    return conv, ""


def _winograd_nodes(conv: _Conv, model: Any, transformed: dict[str, str], shared: dict[str, str]) -> list[Any]:
    """The nodes replacing one Conv; adds their constants to `model` (weights shared via `transformed`)."""
    from onnx import helper, numpy_helper

    node = conv.node
    prefix = f"{node.name or node.output[0]}_winograd"
    channels_out, channels_in = conv.weight.shape[:2]
    out_h, out_w = conv.output_hw
    tiles_h, tiles_w = -(-out_h // TILE), -(-out_w // TILE)
    top, left = conv.pads[0], conv.pads[1]
    # the input tiles of the last row/column may need more bottom/right zeros than the Conv's own pads
    bottom = TILE * tiles_h + KERNEL - 1 - conv.input_hw[0] - top
    right = TILE * tiles_w + KERNEL - 1 - conv.input_hw[1] - left

    def constant(name: str, value: np.ndarray) -> str:
        model.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    if node.input[1] not in transformed:
        transformed[node.input[1]] = constant(f"{prefix}_U", weight_transform(conv.weight))
    kernels_key = f"in:{channels_in}"
    if kernels_key not in shared:
        shared[kernels_key] = constant(f"{prefix}_Bt", input_transform_kernels(channels_in))
    if "out" not in shared:
        shared["out"] = constant(f"{prefix}_At", output_transform())
    tiles = tiles_h * tiles_w
    shape_split = constant(f"{prefix}_split", np.array([0, channels_in, INPUT_TILE ** 2, tiles], np.int64))
    shape_flat = constant(f"{prefix}_flat", np.array([0, INPUT_TILE ** 2, channels_out * tiles], np.int64))
    shape_tiles = constant(f"{prefix}_tiles", np.array([0, TILE * TILE * channels_out, tiles_h, tiles_w], np.int64))
    name = f"{prefix}_"
    nodes = [
        helper.make_node("Conv", [node.input[0], shared[kernels_key]], [name + "v"], name=name + "input",
                         group=channels_in, kernel_shape=[INPUT_TILE, INPUT_TILE], strides=[TILE, TILE],
                         pads=[top, left, bottom, right]),
        helper.make_node("Reshape", [name + "v", shape_split], [name + "v_split"], name=name + "split"),
        helper.make_node("Transpose", [name + "v_split"], [name + "v_t"], name=name + "transpose", perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", [transformed[node.input[1]], name + "v_t"], [name + "m"], name=name + "multiply"),
        helper.make_node("Reshape", [name + "m", shape_flat], [name + "m_flat"], name=name + "flat"),
        helper.make_node("MatMul", [shared["out"], name + "m_flat"], [name + "y"], name=name + "output"),
        helper.make_node("Reshape", [name + "y", shape_tiles], [name + "y_tiles"], name=name + "tiles"),
        helper.make_node("DepthToSpace", [name + "y_tiles"], [name + "y_full"], name=name + "depth_to_space",
                         blocksize=TILE, mode="DCR"),
    ]
    return nodes + _crop_and_bias(conv, prefix, name + "y_full", (tiles_h, tiles_w), constant)


def _crop_and_bias(conv: _Conv, prefix: str, tiled: str, tiles_hw: tuple[int, int],
                   constant: Callable[[str, np.ndarray], str]) -> list[Any]:
    """Crop what the last row/column of tiles computed beyond the output, then add the bias (or just name it)."""
    from onnx import helper

    node, name = conv.node, f"{prefix}_"
    out_h, out_w = conv.output_hw
    channels_out = conv.weight.shape[0]
    nodes, current = [], tiled
    if (out_h, out_w) != (TILE * tiles_hw[0], TILE * tiles_hw[1]):
        starts = constant(f"{prefix}_starts", np.array([0, 0], np.int64))
        ends = constant(f"{prefix}_ends", np.array([out_h, out_w], np.int64))
        axes = constant(f"{prefix}_axes", np.array([2, 3], np.int64))
        nodes.append(helper.make_node("Slice", [current, starts, ends, axes], [name + "y_crop"], name=name + "crop"))
        current = name + "y_crop"
    if conv.bias is not None:
        bias = constant(f"{prefix}_bias", conv.bias.astype(np.float32).reshape(1, channels_out, 1, 1))
        nodes.append(helper.make_node("Add", [current, bias], [node.output[0]], name=name + "bias"))
    else:
        nodes.append(helper.make_node("Identity", [current], [node.output[0]], name=name + "out"))
    return nodes


def _drop_unused_initializers(model: Any) -> None:
    used = {name for node in model.graph.node for name in node.input}
    used |= {output.name for output in model.graph.output}
    keep = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def require_rewrites(report: dict[str, Any], source: str) -> None:
    """A CPU variant that rewrote nothing would be the source under another name: refuse it."""
    if report["rewritten_convs"] == 0:
        rule = report["rule"]
        raise ModelError(
            f"{source}: no convolution qualifies for Winograd (3x3, stride 1, ungrouped, >= "
            f"{rule['min_in_channels']} -> {rule['min_out_channels']} channels, >= {rule['min_output_pixels']} "
            f"output pixels; kept direct: {report['direct_reasons']}); the fp32 export is already the fastest "
            "CPU model for this network: use it as it is"
        )


__all__ = ["ALGORITHM", "WinogradRule", "input_transform_kernels", "output_transform", "require_rewrites",
           "rewrite_model", "weight_transform"]
