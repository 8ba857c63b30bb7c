"""During training: the FROC on a validation fold and hard negatives from normal images.

Both run the PyTorch engine graph (trt_mass.model.graph.EngineGraph: the views, decode, NMS and merge
that get exported) on the canvases the trainer has cached, with the host's tissue selection, so an
epoch's checkpoint is judged as it would run after export, without exporting it.  Boxes stay in canvas
pixels: the letterbox keeps the aspect ratio, so IoU and centre hits are the same as in original pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trt_mass.eval.froc import ImageResult, froc_curve
from trt_mass.model.graph import EngineGraph
from trt_mass.model.network import RetinaNetNetwork
from trt_mass.spec import GraphSpec, TileGeometry
from trt_mass.tissue import TissueSpec, views_with_tissue

VALIDATION_FPPI = (0.5, 1.0, 2.0)


@dataclass
class CachedImage:
    """One training or validation image on its canvas.

    Attributes:
        canvas: uint16 [CH, CW], the image letterboxed at the top-left as the deployed graph gets it.
        boxes: [G, 4] xyxy canvas px (masses); empty for images without a mass.
        image_hw: (h, w) the image occupies on the canvas, canvas px.
        image_id, patient_id: as in the data set (patient-level figures).
    """

    canvas: np.ndarray
    boxes: np.ndarray
    image_hw: tuple[int, int] = (0, 0)
    image_id: str = ""
    patient_id: str = ""

    def __post_init__(self) -> None:
        if self.image_hw == (0, 0):
            self.image_hw = (int(self.canvas.shape[0]), int(self.canvas.shape[1]))


@dataclass(frozen=True)
class Validation:
    """The FROC figures of one epoch on the validation images (hit: IoU >= 0.2)."""

    tpr_at_fppi: dict[float, float]
    images: int
    lesions: int

    @property
    def key(self) -> tuple[float, float]:
        """What "better" means: TPR at 1 FPPI, then the mean over 0.5 / 1 / 2 FPPI."""
        return self.tpr_at_fppi[1.0], float(np.mean(list(self.tpr_at_fppi.values())))

    def to_dict(self) -> dict[str, object]:
        return {"tpr_at_fppi": {str(k): v for k, v in self.tpr_at_fppi.items()}, "images": self.images,
                "lesions": self.lesions}


def selecting_graph(network: RetinaNetNetwork, geometry: TileGeometry) -> EngineGraph:
    """The engine graph with view selection around `network` (the export's defaults otherwise)."""
    return EngineGraph(network, GraphSpec(geometry=geometry, view_selection="tissue")).eval()


def detect_cached(graph: EngineGraph, image: CachedImage, device: torch.device,
                  view_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merged detections of one cached image: boxes [D, 4] xyxy canvas px, scores [D] (descending).

    view_index: int32 [K] views to run; None: view 0 and the tiles with tissue (as deployed).
    """
    spec = graph.spec
    if view_index is None:
        view_index = views_with_tissue(image.canvas, image.image_hw, spec.geometry, TissueSpec.of(spec))
    canvas = torch.from_numpy(image.canvas.astype(np.int32)).to(torch.uint16)[None, None].to(device)
    with torch.inference_mode():
        boxes, scores = graph(canvas, torch.from_numpy(view_index.astype(np.int64)).to(device))
    boxes_np, scores_np = boxes.cpu().numpy().astype(np.float64), scores.cpu().numpy().astype(np.float64)
    keep = scores_np > spec.score_threshold
    return boxes_np[keep], scores_np[keep]


def validate(network: RetinaNetNetwork, images: Sequence[CachedImage], geometry: TileGeometry,
             device: torch.device) -> Validation:
    """TPR at 0.5 / 1 / 2 FPPI (IoU >= 0.2) of `network` on `images`; the network is left in eval mode."""
    graph = selecting_graph(network.eval(), geometry).to(device)
    results = []
    for image in images:
        boxes, scores = detect_cached(graph, image, device)
        results.append(ImageResult(image.image_id, image.patient_id, boxes, scores, image.boxes))
    curve = froc_curve(results, "iou", 0.2)
    return Validation({p: curve.tpr_at(p) for p in VALIDATION_FPPI}, len(results), curve.num_lesions)


def mine_hard_negatives(network: RetinaNetNetwork, images: Sequence[CachedImage], geometry: TileGeometry,
                        device: torch.device, rng: np.random.Generator, per_image: int = 1,
                        tiles_per_image: int = 6, min_score: float = 0.2) -> list[tuple[int, float, float]]:
    """Where the network fires on images without a mass: [(image position, centre y, centre x)] canvas px.

    Runs the full view and up to `tiles_per_image` random tiles with tissue of each image (cheaper than
    every tile; the full view sees the whole breast) and returns the centres of its `per_image`
    highest-scoring detections with a score of at least `min_score`: every detection there is a false
    positive, and most of them sit on dense tissue.
    """
    graph = selecting_graph(network.eval(), geometry).to(device)
    spec = graph.spec
    centres: list[tuple[int, float, float]] = []
    for position, image in enumerate(images):
        if len(image.boxes):
            continue
        tiles = views_with_tissue(image.canvas, image.image_hw, spec.geometry, TissueSpec.of(spec))[1:]
        chosen = rng.choice(tiles, size=min(tiles_per_image, len(tiles)), replace=False) if len(tiles) else tiles
        view_index = np.concatenate([[0], np.sort(chosen)]).astype(np.int32)
        boxes, scores = detect_cached(graph, image, device, view_index)
        for box in boxes[scores >= min_score][:per_image]:
            centres.append((position, float(box[1] + box[3]) / 2, float(box[0] + box[2]) / 2))
    return centres
