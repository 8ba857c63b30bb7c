"""The paper's RetinaNet assembled from torchvision's detection building blocks.

ResNet (18/34/50) + FPN on C3-C5 with P6 from C5 and P7 from ReLU(P6), `head_width` channels,
9 anchors per location, torchvision's RetinaNetHead (four 3x3 convs per subnet, sigmoid classes,
prior-probability bias) and its focal-loss computation.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from trt_mass.spec import (
    ANCHOR_BASE_SIZES,
    ANCHOR_RATIOS,
    ANCHOR_SCALES,
    FPN_STRIDES,
    ModelSpec,
)

# ImageNet statistics: the grayscale view is replicated to RGB so ImageNet backbones apply as they are.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _backbone(spec: ModelSpec) -> BackboneWithFPN:
    resnet = getattr(torchvision.models, spec.arch)(weights=None)
    c5_channels = resnet.inplanes  # 512 (resnet18/34) or 2048 (resnet50)
    extra = LastLevelP6P7(c5_channels, spec.head_width)
    extra.use_P5 = False  # the paper: P6 from C5, even when C5 happens to have head_width channels
    in_channels_list = [c5_channels // 4, c5_channels // 2, c5_channels]
    return BackboneWithFPN(
        resnet,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=in_channels_list,
        out_channels=spec.head_width,
        extra_blocks=extra,
    )


def anchor_generator() -> AnchorGenerator:
    sizes = tuple(tuple(base * scale for scale in ANCHOR_SCALES) for base in ANCHOR_BASE_SIZES)
    return AnchorGenerator(sizes, (ANCHOR_RATIOS,) * len(sizes))


def view_anchors(view_hw: tuple[int, int]) -> Tensor:
    """Anchors of one view, [A, 4] xyxy in view pixels, in the order the head emits its outputs.

    Uses torchvision's AnchorGenerator with the exact FPN strides (its own strides are
    image_size // feature_size, which is off for views that are not multiples of 128).
    """
    generator = anchor_generator()
    grid_sizes = [[math.ceil(view_hw[0] / s), math.ceil(view_hw[1] / s)] for s in FPN_STRIDES]
    strides = [[torch.tensor(s), torch.tensor(s)] for s in FPN_STRIDES]
    per_level = generator.grid_anchors(grid_sizes, strides)
    return torch.cat(per_level, dim=0)


class RetinaNetNetwork(nn.Module):
    """Backbone + FPN + heads.

    forward(views): views float32 [B, 1, H, W], intensities in [0, 1]
        -> cls_logits [B, A, num_classes], box_regression [B, A, 4] (torchvision's BoxCoder deltas,
           weights 1,1,1,1), A = anchors of one H x W view (view_anchors).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = _backbone(spec)
        self.head = RetinaNetHead(spec.head_width, spec.anchors_per_location, spec.num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, views: Tensor) -> tuple[Tensor, Tensor]:
        rgb = (views.expand(-1, 3, -1, -1) - self.mean) / self.std
        features = list(self.backbone(rgb).values())
        outputs = self.head(features)
        return outputs["cls_logits"], outputs["bbox_regression"]

    def loss(
        self, views: Tensor, targets: list[dict[str, Tensor]], anchors: Tensor
    ) -> dict[str, Tensor]:
        """Focal loss (alpha, gamma from the spec) + L1 box loss, torchvision's RetinaNet recipe.

        Args:
            views: [B, 1, H, W] in [0, 1].
            targets: per view {"boxes": [G, 4] xyxy view pixels, "labels": [G] int64 (0 = mass)}.
            anchors: [A, 4] xyxy view pixels (view_anchors).
        """
        cls_logits, box_regression = self(views)
        matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
        matched = []
        for target in targets:
            if target["boxes"].numel() == 0:
                matched.append(torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device))
                continue
            quality = torchvision.ops.box_iou(target["boxes"], anchors)
            matched.append(matcher(quality))
        head_outputs = {"cls_logits": cls_logits, "bbox_regression": box_regression}
        losses = {
            "classification": self._focal_loss(cls_logits, targets, matched),
            "bbox_regression": self.head.regression_head.compute_loss(
                targets, head_outputs, [anchors] * len(targets), matched
            ),
        }
        return losses

    def _focal_loss(self, cls_logits: Tensor, targets: list[dict[str, Tensor]], matched: list[Tensor]) -> Tensor:
        losses = []
        for logits, target, matched_idxs in zip(cls_logits, targets, matched, strict=True):
            foreground = matched_idxs >= 0
            gt = torch.zeros_like(logits)
            gt[foreground, target["labels"][matched_idxs[foreground]]] = 1.0
            valid = matched_idxs != Matcher.BETWEEN_THRESHOLDS
            focal = torchvision.ops.sigmoid_focal_loss(
                logits[valid], gt[valid], alpha=self.spec.focal_alpha, gamma=self.spec.focal_gamma,
                reduction="sum",
            )
            losses.append(focal / max(1, int(foreground.sum())))
        return torch.stack(losses).mean()


def box_coder() -> BoxCoder:
    return BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))


def set_prior_probability(network: RetinaNetNetwork, prior: float) -> None:
    """Set the class-logit bias so every anchor starts at score `prior` (the paper's init: 0.01)."""
    if not 0.0 < prior < 1.0:
        raise ValueError("prior must be in (0, 1)")
    bias = -math.log((1 - prior) / prior)
    nn.init.constant_(network.head.classification_head.cls_logits.bias, bias)
