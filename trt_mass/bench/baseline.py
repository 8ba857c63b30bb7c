"""The paper's way of running the model, as the baseline of `trtmass bench --baseline`.

Jung et al. ran their RetinaNet once per view: the full image and each tile went through the network
one forward pass after another, each view's detections were decoded and filtered by NMS on its own,
and the cross-view merge ran in Python.  EagerBaseline does exactly that with the same weights as the
exported model (rebuilt and checked by SHA-256, see trt_mass.runners.torch_ref.network_for_metadata):

    canvas -> (host to device) -> for each of the 26 views, in ViewBatch's order:
        view [1, 1, Th, Tw] -> network (PyTorch eager) -> sigmoid, top-k, fp32 decode, clip,
        canvas coordinates -> torchvision NMS -> survivors to the host
    -> merge in Python (trt_mass.merge_oracle) with the model's thresholds

so it finds what the engine graph finds (same GraphSpec; tests hold it to the ONNX Runtime pipeline).
It is a Runner (backend "torch-eager"), so bench runs it through the same Detector and output step as
the pipeline it is compared with.  Needs torch and torchvision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from trt_mass.merge_oracle import merge_oracle
from trt_mass.metadata import ModelMetadata
from trt_mass.model.network import RetinaNetNetwork, box_coder, view_anchors
from trt_mass.runners.base import Runner
from trt_mass.runners.torch_ref import network_for_metadata, resolve_device


class EagerBaseline(Runner):
    """The 26 views through the network one after another, per-view decode + NMS, merge in Python.

    `infer({"canvas": canvas})` returns {"boxes": [K, 4] xyxy canvas px, "scores": [K]} of the merged
    findings, sorted by decreasing score (K: as many as there are, not the graph's padded N).  After
    each call `last_stage_ms` holds "inference" (everything the engine graph
    computes: views, 26 forward passes, decode, NMS, merge) and, on a GPU, "h2d" (the canvas) and
    "d2h" (each view's NMS survivors, summed); `last_detail_ms` splits the inference into "network"
    (26 forward passes), "decode_nms" and "merge".

    Args:
        network: the model's network (its weights checked against the metadata).
        metadata: the model's metadata: its tiles and thresholds, and the canvas it takes.
        device: torch device.
    """

    backend = "torch-eager"

    def __init__(self, network: RetinaNetNetwork, metadata: ModelMetadata, device: torch.device) -> None:
        super().__init__()
        self.model_metadata = metadata
        self.spec = graph_spec = metadata.graph_spec
        self.device = device
        self.network = network.eval().to(device)
        geometry = graph_spec.geometry
        self._anchors = view_anchors((geometry.tile_h, geometry.tile_w)).to(device)
        self._coder = box_coder()
        self._limits = torch.tensor([geometry.tile_w, geometry.tile_h] * 2, dtype=torch.float32, device=device)
        self.last_stage_ms: dict[str, float] = {}
        self.last_detail_ms: dict[str, float] = {}

    @classmethod
    def from_metadata(cls, metadata: ModelMetadata, checkpoint: str | Path | None = None, device: str = "auto",
                      threads: int | None = None, source: str = "<model>") -> EagerBaseline:
        """The baseline for a model: its weights rebuilt (and checked) from the metadata."""
        if threads is not None:
            torch.set_num_threads(threads)
        network = network_for_metadata(metadata, checkpoint, source)
        return cls(network, metadata, resolve_device(device))

    def describe(self) -> dict[str, Any]:
        return {"device": str(self.device), "torch_threads": torch.get_num_threads()}

    def _activate(self) -> ModelMetadata:
        return self.model_metadata

    def _deactivate(self) -> None:
        pass  # the network stays loaded: bench activates the baseline once per run

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        boxes, scores = self.run_views(feed["canvas"])
        return {"boxes": boxes, "scores": scores}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run_views(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merged findings (boxes [K, 4], scores [K]) of a canvas [1, 1, CH, CW] (uint16 or int32 intensities)."""
        cuda = self.device.type == "cuda"
        started = time.perf_counter()
        image = torch.from_numpy(canvas)
        if cuda:
            image = image.to(self.device)
            self._sync()
        copied = time.perf_counter()
        network_s = decode_s = d2h_s = 0.0
        candidate_boxes: list[np.ndarray] = []
        candidate_scores: list[np.ndarray] = []
        with torch.inference_mode():
            image = image.to(torch.float32) * (1.0 / 65535.0)
            geometry = self.spec.geometry
            for scale, y0, x0 in geometry.view_origins():
                mark = time.perf_counter()
                if scale == 1:
                    view = image[:, :, y0 : y0 + geometry.tile_h, x0 : x0 + geometry.tile_w]
                else:
                    view = F.avg_pool2d(image, geometry.shrink)
                cls_logits, box_regression = self.network(view)
                self._sync()
                forwarded = time.perf_counter()
                boxes, scores = self._decode_nms(cls_logits[0], box_regression[0], scale, y0, x0)
                self._sync()
                decoded = time.perf_counter()
                candidate_boxes.append(boxes.cpu().numpy())
                candidate_scores.append(scores.cpu().numpy())
                fetched = time.perf_counter()
                network_s += forwarded - mark
                decode_s += decoded - forwarded
                d2h_s += fetched - decoded
        merge_started = time.perf_counter()
        spec = self.spec
        merged_boxes, merged_scores = merge_oracle(
            np.concatenate(candidate_boxes), np.concatenate(candidate_scores),
            score_threshold=spec.score_threshold, merge_iou=spec.merge_iou, max_candidates=spec.max_candidates,
        )
        done = time.perf_counter()
        merge_s = done - merge_started
        total_s = done - started
        h2d_s = copied - started if cuda else 0.0
        self.last_detail_ms = {"network": 1000 * network_s, "decode_nms": 1000 * decode_s, "merge": 1000 * merge_s}
        inference_ms = 1000 * (total_s - h2d_s - (d2h_s if cuda else 0.0))
        self.last_stage_ms = ({"h2d": 1000 * h2d_s, "inference": inference_ms, "d2h": 1000 * d2h_s} if cuda
                              else {"inference": inference_ms})
        return merged_boxes.astype(np.float32), merged_scores.astype(np.float32)

    def _decode_nms(self, cls_logits: torch.Tensor, box_regression: torch.Tensor, scale: int, y0: int,
                    x0: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One view's NMS survivors (boxes in canvas px, scores), as Postprocess + view_nms compute them."""
        spec = self.spec
        scores = torch.sigmoid(cls_logits[:, 0].to(torch.float32))
        top_k = min(spec.pre_nms_top_k, int(scores.shape[0]))
        top_scores, top_index = torch.topk(scores, top_k)
        deltas = box_regression.to(torch.float32)[top_index]
        boxes = self._coder.decode_single(deltas, self._anchors[top_index])
        boxes = torch.minimum(boxes.clamp(min=0.0), self._limits)
        sizes = boxes[:, 2:] - boxes[:, :2]
        top_scores = top_scores * ((sizes[:, 0] >= 1.0) & (sizes[:, 1] >= 1.0)).to(top_scores.dtype)
        offset = torch.tensor([x0, y0, x0, y0], dtype=torch.float32, device=boxes.device)
        boxes = boxes * float(scale) + offset
        eligible = torch.nonzero(top_scores > spec.score_threshold).flatten()
        survivors = torchvision.ops.nms(boxes[eligible], top_scores[eligible], spec.nms_iou)[: spec.max_per_view]
        keep = eligible[survivors]
        return boxes[keep], top_scores[keep]
