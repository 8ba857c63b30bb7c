"""Which layers INT8 hurts most: layer groups, `--keep-fp32 NAMES`, and the sensitivity pass of `auto`.

A layer group is one Conv weight of the network, named by its parameter without the wrapper prefix
and ".weight": `backbone.body.conv1`, `backbone.body.layer3.0.downsample.0`, `backbone.fpn.layer_blocks.2.0`,
`head.classification_head.cls_logits`.  A head group covers its five pyramid levels (they share the
weight).  A NAME keeps every group equal to it or below it (`head.classification_head` keeps the whole
classification head).  A kept group's Conv nodes are left out of the quantized nodes: ONNX Runtime and
TensorRT then run them in float (TensorRT's mixed-precision explicit quantization).

The sensitivity pass (`auto`) measures what a FROC sees: the candidate scores.  On the first images of the
calibration set it runs the fp32 graph and, for each group, a variant with only that group in INT8, and
takes the score error: mean |sigmoid(logit_int8) - sigmoid(logit_fp32)| over the anchors where either
score is at least `SCORE_FLOOR` (anchors that can become findings; the millions of background anchors
would drown the figure).  Box regressions are not ranked: shifts of a few per cent of an anchor do not
change an IoU >= 0.2 hit.  Groups are then kept in fp32, most sensitive first, until the mixed model's
error is at most `target_ratio` of the all-INT8 error or `max_groups` are tried, and the prefix with the
lowest measured error is kept (errors of layers interact: one more fp32 layer can raise it).  The default 0.25 is
measured, not derived: on the demo model the TensorRT-target variant with only cls_logits kept (error
0.26 of all-INT8) still lost 1 of 69 held-out masses at 1 FPPI; with the next group kept it lost none
(benchmarks/RESULTS.md, "INT8 at equal FROC").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_mass.errors import ConfigError, ModelError
from trt_mass.progress import ProgressLine

SCORE_FLOOR = 0.05
WRAPPER_PREFIXES = ("network.",)


@dataclass(frozen=True)
class KeepFp32:
    """Which network layers stay fp32 in an INT8 variant (recorded in its metadata).

    Attributes:
        names: layer-group names or prefixes kept in fp32 (see the module docstring).
        auto: add the most INT8-sensitive groups, measured on the calibration set.
        max_groups: auto keeps at most this many groups (each costs INT8 speed).
        images: calibration images the sensitivity pass runs (the first ones of the set).
        target_ratio: auto stops once the mixed model's score error is at most this x the all-INT8 error.
        among: auto considers only these groups (names or prefixes, e.g. "head": fp32 head layers are cheap,
            an fp32 stem costs INT8 speed); empty: every group.
    """

    names: tuple[str, ...] = ()
    auto: bool = False
    max_groups: int = 4
    images: int = 4
    target_ratio: float = 0.25
    among: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_groups < 1 or self.images < 1 or not 0.0 < self.target_ratio <= 1.0:
            raise ConfigError(f"--keep-fp32 auto needs max_groups >= 1, images >= 1 and 0 < target_ratio <= 1, "
                              f"got {self}")

    @classmethod
    def parse(cls, text: str | None, **auto_options: Any) -> KeepFp32:
        """`auto`, `NAME[,NAME...]`, `auto,NAME,...` or None/"" (nothing kept)."""
        items = [item.strip() for item in (text or "").split(",") if item.strip()]
        return cls(tuple(item for item in items if item != "auto"), "auto" in items, **auto_options)

    @property
    def requested(self) -> bool:
        return self.auto or bool(self.names)


def group_name(weight: str) -> str:
    """`network.backbone.body.conv1.weight` -> `backbone.body.conv1`."""
    for prefix in WRAPPER_PREFIXES:
        if weight.startswith(prefix):
            weight = weight[len(prefix):]
    return weight.removesuffix(".weight")


def layer_groups(graph: Any, network_nodes: set[str]) -> dict[str, list[str]]:
    """Group name -> names of its Conv nodes, in graph order (network Conv nodes with a constant weight)."""
    initializers = {tensor.name for tensor in graph.initializer}
    groups: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type == "Conv" and node.name in network_nodes and node.input[1] in initializers:
            groups.setdefault(group_name(node.input[1]), []).append(node.name)
    return groups


def resolve(groups: dict[str, list[str]], names: Sequence[str]) -> list[str]:
    """The groups that `names` keep (exact names or dotted prefixes); an unknown name is an error."""
    chosen: list[str] = []
    for name in names:
        matched = [group for group in groups if group == name or group.startswith(name + ".")]
        if not matched:
            examples = ", ".join([*list(groups)[:3], "…", list(groups)[-1]])
            raise ConfigError(f"--keep-fp32 {name!r} names no layer group of this model (groups look like "
                              f"{examples}; `trtmass quantize MODEL --list-layers` lists them)")
        chosen += [group for group in matched if group not in chosen]
    return chosen


def kept_nodes(groups: dict[str, list[str]], kept: Sequence[str]) -> set[str]:
    return {node for group in kept for node in groups[group]}


def score_taps(graph: Any, network_nodes: set[str], groups: dict[str, list[str]]) -> list[tuple[str, int]]:
    """(consumer node name, input index) where the graph reads each classification logit map.

    The first non-network node that reads a `cls_logits` Conv's output: in a quantized variant the same
    node (names are kept) reads the dequantized logits, which is what the decode sees.
    """
    logit_tensors = {node.output[0] for node in graph.node
                     if node.name in kept_nodes(groups, [g for g in groups if g.endswith("cls_logits")])}
    if not logit_tensors:
        raise ModelError("no classification-logit Conv (a group named ...cls_logits): not a trt_mass RetinaNet graph")
    return [(node.name, index) for node in graph.node if node.name not in network_nodes
            for index, name in enumerate(node.input) if name in logit_tensors]


def scores_of(model_path: Path, taps: list[tuple[str, int]], feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Per image, every anchor's score (sigmoid of the logits at `taps`), float32 [A], from ONNX Runtime."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    by_name = {node.name: node for node in model.graph.node}
    tensors = [by_name[node].input[index] for node, index in taps]
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in tensors)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out = []
    for feed in feeds:
        logits = np.concatenate([np.asarray(value, np.float32).ravel() for value in session.run(None, feed)])
        out.append(1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0))))
    return out


def score_error(reference: list[np.ndarray], variant: list[np.ndarray]) -> float:
    """Mean |score difference| over the anchors where either score >= SCORE_FLOOR, over all images."""
    differences = []
    for ref, var in zip(reference, variant, strict=True):
        candidates = np.maximum(ref, var) >= SCORE_FLOOR
        differences.append(np.abs(ref[candidates] - var[candidates]))
    joined = np.concatenate(differences) if differences else np.zeros(0)
    return float(joined.mean()) if joined.size else 0.0


def enough_kept(errors: Sequence[float], all_int8_error: float, target_ratio: float) -> bool:
    """Stop keeping layers: the score error with the kept ones is at most `target_ratio` of the all-INT8 error.

    `errors[k - 1]`: score error with the k most sensitive groups in fp32.
    """
    return errors[-1] <= target_ratio * all_int8_error


def lowest_error_prefix(errors: Sequence[float]) -> int:
    """How many groups to keep: the prefix with the lowest error, the shorter one on a tie.

    Errors of layers interact, so keeping one more layer can raise the error; it is then not kept.
    """
    return int(np.argmin(errors)) + 1


Quantizer = Callable[[set[str], Path], None]  # (nodes to quantize, output path) -> writes a variant


@dataclass(frozen=True)
class AutoChoice:
    """What the sensitivity pass measured and chose."""

    sensitivity: dict[str, float]  # group -> score error with only that group in INT8, most sensitive first
    all_int8_error: float
    errors_by_kept: list[float]  # score error with the first k chosen groups kept in fp32, k = 1, 2, ...
    chosen: list[str]

    def report(self, top: int = 8) -> dict[str, Any]:
        return {"score_floor": SCORE_FLOOR, "all_int8_score_error": round(self.all_int8_error, 6),
                "score_error_with_kept": [round(e, 6) for e in self.errors_by_kept],
                "most_sensitive": [[group, round(error, 6)] for group, error in list(self.sensitivity.items())[:top]],
                "chosen": self.chosen}


def choose_auto(quantize: Quantizer, fp32_path: Path, feeds: list[dict[str, np.ndarray]], groups: dict[str, list[str]],
                network_nodes: set[str], already_kept: list[str], taps: list[tuple[str, int]], keep: KeepFp32,
                variant: Path, progress: bool = False) -> AutoChoice:
    """Rank the groups one at a time in INT8, then keep the most sensitive until the error target is met."""
    reference = scores_of(fp32_path, taps, feeds)
    allowed = resolve(groups, keep.among) if keep.among else list(groups)
    candidates = [group for group in allowed if group not in already_kept]
    sensitivity: dict[str, float] = {}
    with ProgressLine(progress) as line:
        for number, group in enumerate(candidates, 1):
            line.update(f"sensitivity: {number}/{len(candidates)} layer groups")
            quantize(set(groups[group]), variant)
            sensitivity[group] = score_error(reference, scores_of(variant, taps, feeds))
    ranked = dict(sorted(sensitivity.items(), key=lambda item: -item[1]))

    def mixed_error(kept: list[str]) -> float:
        quantize(network_nodes - kept_nodes(groups, [*already_kept, *kept]), variant)
        return score_error(reference, scores_of(variant, taps, feeds))

    all_int8 = mixed_error([])
    tried: list[str] = []
    errors: list[float] = []
    with ProgressLine(progress) as line:
        for group in list(ranked)[: keep.max_groups]:
            tried.append(group)
            errors.append(mixed_error(tried))
            line.update(f"keep fp32: {', '.join(tried)} -> score error {errors[-1]:.4f} (all int8 {all_int8:.4f})")
            if enough_kept(errors, all_int8, keep.target_ratio):
                break
    best = lowest_error_prefix(errors)
    variant.unlink(missing_ok=True)
    return AutoChoice(ranked, all_int8, errors[:best], tried[:best])
