"""The engine graph: canvas -> 26 views -> network -> fp32 decode -> per-view NMS -> cross-view merge.

With view selection ("tissue"), the graph also takes `view_index` int32 [K] and runs the network, decode
and NMS on those K views only (K dynamic, 1..26); the merge then takes a fixed N candidates (zero-score
padding keeps N <= the candidates whatever K is), so every shape after the network stays static.

Every numeric step after the canvas is a torch module here and is exported as one ONNX graph, so
ONNX Runtime (CPU) and TensorRT (GPU) run exactly the same computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from trt_mass.model.network import RetinaNetNetwork, box_coder, view_anchors
from trt_mass.model.nms_op import view_nms
from trt_mass.spec import GraphSpec, TileGeometry


class ViewBatch(nn.Module):
    """canvas uint16 [1, 1, CH, CW] -> views float32 [V, 1, Th, Tw] in [0, 1].

    View 0 is the full view (the canvas shrunk by `geometry.shrink` with an exact area average);
    views 1.. are the grid x grid tiles, row-major, sliced from the canvas at stride tile/2.
    """

    def __init__(self, geometry: TileGeometry) -> None:
        super().__init__()
        self.geometry = geometry

    def forward(self, canvas: Tensor) -> Tensor:
        image = canvas.to(torch.float32) * (1.0 / 65535.0)
        geometry = self.geometry
        views = [F.avg_pool2d(image, geometry.shrink)]
        for _, y0, x0 in geometry.view_origins()[1:]:
            views.append(image[:, :, y0 : y0 + geometry.tile_h, x0 : x0 + geometry.tile_w])
        return torch.cat(views, dim=0)


class CrossViewMerge(nn.Module):
    """Merge candidates from all views (docs/architecture.md; NumPy oracle: trt_mass.merge_oracle).

    forward(boxes [M, 4] xyxy canvas px, scores [M] (0 = not a candidate))
        -> boxes [N, 4] xyxy canvas px, scores [N], N = min(max_candidates, M), sorted by decreasing
           score; rows without a finding have score 0 and a zero box.

    Connected components come from the transitive closure of the N x N adjacency by repeated
    boolean squaring (static shapes, standard ops).  With `pad` (a dynamic M: view selection), N zero-score
    candidates are appended first and N = max_candidates always; they are never valid, so the result is
    the same.
    """

    def __init__(self, spec: GraphSpec, pad: bool = False) -> None:
        super().__init__()
        self.score_threshold = spec.score_threshold
        self.merge_iou = spec.merge_iou
        self.max_candidates = spec.max_candidates
        self.pad = pad

    def forward(self, boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        if self.pad:
            count = self.max_candidates
            boxes = torch.cat([boxes, boxes.new_zeros((count, 4))])
            scores = torch.cat([scores, scores.new_zeros((count,))])
        else:
            count = min(self.max_candidates, int(scores.shape[0]))
        cand_scores, order = torch.topk(scores, count)
        cand_boxes = boxes[order]
        valid = cand_scores > self.score_threshold
        both_valid = valid[:, None] & valid[None, :]
        adjacency = (torchvision.ops.box_iou(cand_boxes, cand_boxes) > self.merge_iou) & both_valid
        identity = torch.eye(count, dtype=torch.bool, device=boxes.device) & both_valid
        reach = (adjacency | identity).to(torch.float32)
        for _ in range(max(1, (count - 1).bit_length())):
            reach = (reach @ reach > 0).to(torch.float32)
        connected = reach > 0
        areas = (cand_boxes[:, 2] - cand_boxes[:, 0]) * (cand_boxes[:, 3] - cand_boxes[:, 1])
        largest = torch.where(connected, areas[None, :], torch.full_like(reach, -1.0)).argmax(dim=1)
        cluster_score = torch.where(connected, cand_scores[None, :], torch.zeros_like(reach)).amax(dim=1)
        first_member = reach.argmax(dim=1)
        is_representative = valid & (first_member == torch.arange(count, device=boxes.device))
        out_scores = torch.where(is_representative, cluster_score, torch.zeros_like(cluster_score))
        out_boxes = cand_boxes[largest] * is_representative[:, None].to(torch.float32)
        sorted_scores, rank = torch.topk(out_scores, count)
        return out_boxes[rank], sorted_scores


class Postprocess(nn.Module):
    """Network outputs of the view batch -> merged detections on the canvas.

    forward(cls_logits [V, A, 1], box_regression [V, A, 4], view_index [V] int (None: views 0..V-1))
        -> boxes [N, 4] xyxy canvas px, scores [N].
    """

    anchors: Tensor
    view_scale: Tensor
    view_offset: Tensor

    def __init__(self, spec: GraphSpec) -> None:
        super().__init__()
        self.spec = spec
        geometry = spec.geometry
        self.register_buffer("anchors", view_anchors((geometry.tile_h, geometry.tile_w)), persistent=False)
        origins = torch.tensor(geometry.view_origins(), dtype=torch.float32)  # [V, 3] scale, y0, x0
        self.register_buffer("view_scale", origins[:, 0].view(-1, 1, 1), persistent=False)
        offsets = torch.stack([origins[:, 2], origins[:, 1], origins[:, 2], origins[:, 1]], dim=1)
        self.register_buffer("view_offset", offsets.view(-1, 1, 4), persistent=False)
        self.box_coder = box_coder()
        self.merge = CrossViewMerge(spec, pad=spec.selects_views)

    def forward(self, cls_logits: Tensor, box_regression: Tensor,
                view_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        boxes_canvas, candidate_scores = self.candidates(cls_logits, box_regression, view_index)
        return self.merge(boxes_canvas.reshape(-1, 4), candidate_scores.reshape(-1))

    def candidates(self, cls_logits: Tensor, box_regression: Tensor,
                   view_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-view candidates before the merge: boxes [V, K, 4] xyxy canvas px, scores [V, K] (0: suppressed)."""
        spec, geometry = self.spec, self.spec.geometry
        num_anchors = cls_logits.shape[1]
        top_k = min(spec.pre_nms_top_k, int(num_anchors))
        scores = torch.sigmoid(cls_logits[..., 0].to(torch.float32))  # [V, A]
        top_scores, top_index = torch.topk(scores, top_k, dim=1)  # [V, K]
        deltas = torch.gather(box_regression.to(torch.float32), 1, top_index[..., None].expand(-1, -1, 4))
        anchors = self.anchors[top_index]  # [V, K, 4]
        boxes_view = self.box_coder.decode_single(deltas.reshape(-1, 4), anchors.reshape(-1, 4))
        boxes_view = boxes_view.reshape(-1, top_k, 4)
        limits = torch.tensor([geometry.tile_w, geometry.tile_h] * 2, dtype=torch.float32)
        boxes_view = torch.minimum(boxes_view.clamp(min=0.0), limits.to(boxes_view.device))
        # A box that clipping flattened (less than a pixel wide or high) is no detection; dropping it
        # also keeps zero-area ties out of NMS and of the merge's largest-box choice.
        sizes = boxes_view[..., 2:] - boxes_view[..., :2]
        top_scores = top_scores * ((sizes[..., 0] >= 1.0) & (sizes[..., 1] >= 1.0)).to(top_scores.dtype)
        scale, offset = self.view_scale, self.view_offset
        if view_index is not None:
            scale, offset = scale.index_select(0, view_index), offset.index_select(0, view_index)
        boxes_canvas = boxes_view * scale + offset
        keep = view_nms(boxes_canvas, top_scores, spec.nms_iou, spec.score_threshold, spec.max_per_view)
        return boxes_canvas, top_scores * keep


class EngineGraph(nn.Module):
    """canvas uint16 [1, 1, CH, CW] (+ view_index int32 [K] with view selection)
    -> boxes float32 [N, 4] (xyxy, canvas px), scores float32 [N]."""

    def __init__(self, network: RetinaNetNetwork, spec: GraphSpec) -> None:
        super().__init__()
        if network.spec.num_classes != 1:
            raise ValueError("the engine graph merges one foreground class")
        self.spec = spec
        self.views = ViewBatch(spec.geometry)
        self.network = network
        self.postprocess = Postprocess(spec)

    def forward(self, canvas: Tensor, view_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.spec.selects_views != (view_index is not None):
            raise ValueError("view_index is the second input of a graph with view selection, and only of one")
        views = self.views(canvas)
        if view_index is not None:
            views = views.index_select(0, view_index)
        cls_logits, box_regression = self.network(views)
        return self.postprocess(cls_logits, box_regression, view_index)
