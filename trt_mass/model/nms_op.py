"""Per-view NMS for a batch of views as one custom op: torchvision in eager mode, one standard ONNX
NonMaxSuppression (whole view batch) when exported.

The op returns a fixed-shape keep mask instead of data-dependent indices, so everything after it
has static shapes (the data-dependent output is padded before a fixed top-N; docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import Tensor


@torch.library.custom_op("trt_mass::view_nms", mutates_args=())
def view_nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float, max_per_view: int
) -> Tensor:
    """NMS within each view.

    Args:
        boxes: [B, K, 4] float32 xyxy (any common coordinate frame per view).
        scores: [B, K] float32.
        iou_threshold: a box is suppressed by a higher-scoring one with IoU > this.
        score_threshold: only boxes with score > this take part.
        max_per_view: at most this many survivors per view (highest scores).

    Returns:
        keep: [B, K] float32, 1.0 for survivors, 0.0 otherwise.
    """
    keep = torch.zeros_like(scores)
    for view in range(boxes.shape[0]):
        eligible = torch.nonzero(scores[view] > score_threshold).flatten()
        survivors = torchvision.ops.nms(boxes[view, eligible], scores[view, eligible], iou_threshold)
        keep[view, eligible[survivors[:max_per_view]]] = 1.0
    return keep


@view_nms.register_fake
def _view_nms_fake(
    boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float, max_per_view: int
) -> Tensor:
    return torch.empty_like(scores)


def view_nms_onnx(
    boxes: Any, scores: Any, iou_threshold: float, score_threshold: float, max_per_view: int
) -> Any:
    """ONNX translation of view_nms (onnxscript, traced): NonMaxSuppression + ScatterND into a mask."""
    from onnxscript import opset19

    op: Any = opset19  # onnxscript's per-op type stubs do not fit traced (untyped) values

    scores_bck = op.Unsqueeze(scores, op.Constant(value_ints=[1]))  # [B, 1, K]
    selected = op.NonMaxSuppression(
        boxes,
        scores_bck,
        op.Constant(value_ints=[max_per_view]),
        op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[score_threshold]),
        center_point_box=0,
    )  # [M, 3] (view, class, box)
    shape = op.Shape(scores)  # [B, K]
    num_boxes = op.Slice(shape, op.Constant(value_ints=[1]), op.Constant(value_ints=[2]))
    view_index = op.Slice(selected, op.Constant(value_ints=[0]), op.Constant(value_ints=[1]),
                          op.Constant(value_ints=[1]))
    box_index = op.Slice(selected, op.Constant(value_ints=[2]), op.Constant(value_ints=[3]),
                         op.Constant(value_ints=[1]))
    flat_index = op.Add(op.Mul(view_index, num_boxes), box_index)  # [M, 1]
    flat_scores = op.Reshape(scores, op.Constant(value_ints=[-1]))
    zeros = op.Mul(flat_scores, op.Constant(value_float=0.0))
    ones = op.Expand(op.Constant(value_float=1.0), op.Shape(view_index, start=0, end=1))
    keep_flat = op.ScatterND(zeros, flat_index, ones)
    return op.Reshape(keep_flat, shape)


def custom_translation_table() -> dict[Any, Any]:
    return {torch.ops.trt_mass.view_nms.default: view_nms_onnx}
